"""Periodic services of the registry, each on ``theodolite.periodic.PeriodicService``."""

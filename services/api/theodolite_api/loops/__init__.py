"""Periodic services: work the api does on an interval (PeriodicService)."""

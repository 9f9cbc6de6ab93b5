"""Theodolite gateway: the public REST API."""

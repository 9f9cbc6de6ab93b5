"""Theodolite plugin registry."""

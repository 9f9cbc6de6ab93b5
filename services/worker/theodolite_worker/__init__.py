"""Theodolite worker: consumes one job queue and runs MLflow entry points."""

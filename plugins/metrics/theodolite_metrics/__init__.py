"""Metrics for Theodolite: accuracy, attack success, perturbation norms."""

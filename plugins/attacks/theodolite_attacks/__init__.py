"""Attacks for Theodolite, on IBM's adversarial-robustness-toolbox."""

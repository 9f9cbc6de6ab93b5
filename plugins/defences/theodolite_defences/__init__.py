"""Defences for Theodolite on IBM's adversarial-robustness-toolbox."""

"""Models for Theodolite: train and evaluate classifiers."""

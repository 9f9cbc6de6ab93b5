"""Datasets for Theodolite: scikit-learn's bundled digits, split and scaled."""

"""Data tasks. Nothing here downloads: the digits ship with scikit-learn, user data comes from
the entry point archive or an artifact."""

from theodolite_data.digits import Dataset, Split, digits, load_digits, reshape, split
from theodolite_data.files import load_file

__all__ = ["Dataset", "Split", "digits", "load_digits", "load_file", "reshape", "split"]

"""Data tasks. Nothing here downloads: the digits ship with scikit-learn."""

from __future__ import annotations

from typing import TypedDict

import numpy as np
from sklearn.datasets import load_digits as sklearn_digits
from sklearn.model_selection import train_test_split

from theodolite.sdk import task


class Split(TypedDict):
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


@task
def load_digits(test_size: float = 0.25, seed: int = 0) -> Split:
    """scikit-learn's 8x8 digits, flat, scaled to [0, 1], in a seeded stratified split.

    Args:
        test_size: share of the digits held out for testing, in (0, 1)
        seed: seed of the split
    """
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must lie in (0, 1), got {test_size}")
    digits = sklearn_digits()
    x = (digits.data / 16.0).astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(
        x, digits.target, test_size=test_size, random_state=seed, stratify=digits.target
    )
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}

"""The digits split every stage shares: the attacks run on the held-out part train never saw."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

IMAGE_SHAPE = (1, 8, 8)  # channels, height, width
NB_CLASSES = 10
TEST_SIZE = 0.25
# Fixed, not a parameter: an attack stage must see the same held-out digits as its train stage.
SPLIT_SEED = 0


def split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """x_train, y_train, x_test, y_test: 8x8 images scaled to [0, 1], stratified."""
    digits = load_digits()  # ships with scikit-learn: no download
    x = (digits.data / 16.0).astype(np.float32).reshape(-1, *IMAGE_SHAPE)
    x_train, x_test, y_train, y_test = train_test_split(
        x, digits.target, test_size=TEST_SIZE, random_state=SPLIT_SEED, stratify=digits.target
    )
    return x_train, y_train, x_test, y_test


def attack_subset(samples: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``samples`` held-out digits (all 450 at most): the same for every attack."""
    _, _, x_test, y_test = split()
    if not 0 < samples <= len(x_test):
        raise SystemExit(f"samples must lie in [1, {len(x_test)}], got {samples}")
    return x_test[:samples], y_test[:samples]

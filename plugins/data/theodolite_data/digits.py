"""scikit-learn's bundled 8x8 digits (no download): scaled, split, flat or image view."""

from __future__ import annotations

from typing import Literal, TypedDict

import numpy as np
from sklearn.datasets import load_digits as sklearn_digits
from sklearn.model_selection import train_test_split

from theodolite.sdk import task
from theodolite.sdk.checks import bad_input
from theodolite_data._checks import check_labelled, check_size

IMAGE_SHAPE = [1, 8, 8]  # channels, height, width


class Split(TypedDict):
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


class Dataset(TypedDict):
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    image_shape: list[int]
    nb_classes: int


def _digits() -> tuple[np.ndarray, np.ndarray]:
    digits = sklearn_digits()
    return (digits.data / 16.0).astype(np.float32), digits.target


@task
def load_digits(test_size: float = 0.25, seed: int = 0) -> Split:
    """scikit-learn's 8x8 digits, flat, scaled to [0, 1], in a seeded stratified split.

    Args:
        test_size: share of the digits held out for testing, in (0, 1)
        seed: seed of the split
    """
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must lie in (0, 1), got {test_size}")
    x, y = _digits()
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_size, random_state=seed, stratify=y
    )
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


@task
def digits(
    view: Literal["flat", "image"] = "flat",
    test_size: float = 0.25,
    train_size: float | None = 0,
    seed: int = 0,
) -> Dataset:
    """The digits (1797 images of 8x8, scaled to [0, 1]) in a seeded stratified split.

    Args:
        view: "flat" rows of 64 features, or "image" arrays of shape (N, 1, 8, 8)
        test_size: share in (0, 1) or count of digits held out for testing
        train_size: share in (0, 1) or count of digits to train on (0 or none: all the others)
        seed: seed of the split
    """
    task_name = "data.digits"
    x, y = _digits()
    if view not in ("flat", "image"):
        raise bad_input(task_name, "view", f"must be 'flat' or 'image', got {view!r}")
    test = check_size(task_name, "test_size", test_size, len(x))
    train = None if not train_size else check_size(task_name, "train_size", train_size, len(x))
    n_test = test if isinstance(test, int) else int(np.ceil(test * len(x)))
    n_train = (
        len(x) - n_test
        if train is None
        else train
        if isinstance(train, int)
        else int(train * len(x))
    )
    if n_train + n_test > len(x) or n_train < 10 or n_test < 10:
        raise bad_input(
            task_name,
            "train_size",
            f"and test_size ask for {n_train} + {n_test} digits: each needs at least 10 "
            f"(one per class) and together at most {len(x)}",
        )
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=n_test, train_size=n_train, random_state=seed, stratify=y
    )
    if view == "image":
        x_train = x_train.reshape(-1, *IMAGE_SHAPE)
        x_test = x_test.reshape(-1, *IMAGE_SHAPE)
    return {
        "x_train": x_train,
        "y_train": y_train,
        "x_test": x_test,
        "y_test": y_test,
        "image_shape": list(IMAGE_SHAPE),
        "nb_classes": 10,
    }


@task
def reshape(x: np.ndarray, shape: list[int]) -> np.ndarray:
    """The same rows in another shape per row: [1, 8, 8] for images, [64] for flat features.

    Args:
        x: an array of rows (N, ...)
        shape: the shape of one row afterwards
    """
    if not isinstance(x, np.ndarray) or x.ndim < 2:
        raise bad_input("data.reshape", "x", f"must be an array of rows, got {type(x).__name__}")
    row = int(np.prod(x.shape[1:]))
    if not shape or any(d <= 0 for d in shape) or int(np.prod(shape)) != row:
        raise bad_input(
            "data.reshape", "shape", f"{shape} does not hold a row of shape {list(x.shape[1:])}"
        )
    return x.reshape(len(x), *shape)


@task
def split(x: np.ndarray, y: np.ndarray, test_size: float = 0.5, seed: int = 0) -> Split:
    """Split any labelled rows in two, seeded and stratified (e.g. an attacker's query pool and
    held-out rows to score the stolen model on).

    Args:
        x: inputs (N, ...)
        y: their labels
        test_size: share in (0, 1) or count of rows in the second part (x_test, y_test)
        seed: seed of the split
    """
    task_name = "data.split"
    check_labelled(task_name, x, y)
    test = check_size(task_name, "test_size", test_size, len(x))
    labels = np.asarray(y)
    _, counts = np.unique(labels, return_counts=True)
    try:
        x_train, x_test, y_train, y_test = train_test_split(
            x,
            labels,
            test_size=test,
            random_state=seed,
            stratify=labels if counts.min() >= 2 else None,
        )
    except ValueError as exc:
        raise bad_input(task_name, "test_size", f"{test_size}: {exc}") from exc
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}

"""Checks of the data tasks' inputs on top of the SDK's (``theodolite.sdk.checks``)."""

from __future__ import annotations

import numpy as np

from theodolite.sdk.checks import bad_input


def check_labelled(task: str, x: np.ndarray, y: np.ndarray, x_name: str = "x") -> None:
    if not isinstance(x, np.ndarray) or x.ndim < 2:
        shape = getattr(x, "shape", type(x).__name__)
        raise bad_input(task, x_name, f"must be an array of rows (N, ...), got shape {shape}")
    if len(x) != len(y):
        raise bad_input(task, "y", f"has {len(y)} labels but {x_name} has {len(x)} rows")


def check_size(task: str, name: str, value: float, total: int) -> float | int:
    """A share in (0, 1) or a count in [1, total), as scikit-learn's splitters take them."""
    if 0.0 < value < 1.0:
        return float(value)
    if value >= 1.0 and float(value).is_integer() and value < total:
        return int(value)
    raise bad_input(
        task, name, f"must be a share in (0, 1) or a whole count in [1, {total}), got {value}"
    )

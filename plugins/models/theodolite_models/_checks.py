"""Clear errors for bad input: each names the task and the input it concerns."""

from __future__ import annotations

from typing import Any

import numpy as np


def bad_input(task: str, name: str, message: str) -> ValueError:
    return ValueError(f"{task}: input '{name}' {message}")


def check_training_data(
    task: str, x: Any, y: Any, row_shape: tuple[int, ...] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of inputs (N, ...) and N whole-number labels; ``row_shape`` when the model needs one."""
    if not isinstance(x, np.ndarray) or x.ndim < 2 or len(x) == 0:
        shape = getattr(x, "shape", type(x).__name__)
        raise bad_input(task, "x", f"must be a non-empty array of rows (N, ...), got {shape}")
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(x):
        raise bad_input(task, "y", f"must hold one label per row of x ({len(x)}), got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise bad_input(task, "y", "must hold whole-number class labels")
        y = y.astype(np.int64)
    if row_shape is not None and tuple(x.shape[1:]) != tuple(row_shape):
        raise bad_input(
            task,
            "x",
            f"has rows of shape {list(x.shape[1:])}, but the model takes {list(row_shape)} "
            "(data.reshape changes the view)",
        )
    return x, y


def check_positive(task: str, name: str, value: float, *, allow_zero: bool = False) -> None:
    if not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise bad_input(task, name, f"must be {bound}, got {value}")

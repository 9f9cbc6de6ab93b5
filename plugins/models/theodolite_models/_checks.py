"""Checks of the models' inputs on top of the SDK's (``theodolite.sdk.checks``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from theodolite.sdk import checks
from theodolite.sdk.checks import bad_input


def check_training_data(task: str, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """Rows of inputs (N, ...) and N whole-number labels."""
    rows = checks.check_rows(task, x)
    return rows, checks.check_labels(task, rows, y, whole=True)


def check_positive(task: str, name: str, value: float, *, allow_zero: bool = False) -> None:
    """A finite number above zero (or zero too, with ``allow_zero``)."""
    if not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise bad_input(task, name, f"must be {bound}, got {value}")

"""Clear errors for bad task input: each names the task and the input it concerns, as
``<task>: input '<name>' <what is wrong>``, and a task raises them before any work starts.

    from theodolite.sdk.checks import bad_input, check_labels, check_rows

    x = check_rows("models.train_cnn", x, row_shape=(1, 8, 8), taker="the model")
    y = check_labels("models.train_cnn", x, y, whole=True)

numpy is imported by the checks that take arrays, never by the SDK itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import numpy as np

T = TypeVar("T")


def bad_input(task: str, name: str, message: str) -> ValueError:
    """The error for input ``name`` of ``task``."""
    return ValueError(f"{task}: input '{name}' {message}")


def check_type(task: str, name: str, value: Any, kind: type[T], expected: str) -> T:
    """``value`` if it is a ``kind``; otherwise an error saying it must be ``expected``."""
    if not isinstance(value, kind):
        raise bad_input(task, name, f"must be {expected}, got {type(value).__name__}")
    return value


def check_rows(
    task: str,
    x: Any,
    *,
    name: str = "x",
    row_shape: Any = None,
    taker: str = "the classifier",
    hint: str = "",
) -> np.ndarray:
    """A non-empty array of rows (N, ...), each of ``row_shape`` when one is given."""
    import numpy as np

    if not isinstance(x, np.ndarray) or x.ndim < 2 or len(x) == 0:
        shape = getattr(x, "shape", type(x).__name__)
        raise bad_input(task, name, f"must be a non-empty array of rows (N, ...), got {shape}")
    if row_shape is not None and tuple(x.shape[1:]) != tuple(row_shape):
        advice = f" ({hint})" if hint else ""
        raise bad_input(
            task,
            name,
            f"has rows of shape {list(x.shape[1:])}, but {taker} takes {list(row_shape)}{advice}",
        )
    return x


def check_labels(
    task: str, x: np.ndarray, y: Any, *, name: str = "y", whole: bool = False
) -> np.ndarray:
    """One label per row of ``x``; with ``whole``, whole numbers, given back as integers."""
    import numpy as np

    labels = np.asarray(y)
    if labels.ndim != 1 or len(labels) != len(x):
        raise bad_input(
            task, name, f"must hold one label per row ({len(x)}), got shape {labels.shape}"
        )
    if whole and not np.issubdtype(labels.dtype, np.integer):
        if not np.all(np.equal(np.mod(labels, 1), 0)):
            raise bad_input(task, name, "must hold whole-number class labels")
        labels = labels.astype(np.int64)
    return labels

"""The ``@task`` decorator: marks a plain function as a Theodolite task, unchanged otherwise."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, overload

F = TypeVar("F", bound=Callable[..., Any])

TASK_MARKER = "__theodolite_task__"


class TaskOptions(dict[str, Any]):
    """What the decorator was given (name, retries); read by discovery."""


@overload
def task(fn: F) -> F: ...


@overload
def task(*, name: str | None = None, retries: int = 0) -> Callable[[F], F]: ...


def task(fn: F | None = None, *, name: str | None = None, retries: int = 0) -> F | Callable[[F], F]:
    """Declare a task. The function stays callable as it is: tests can call it directly."""

    def mark(function: F) -> F:
        setattr(function, TASK_MARKER, TaskOptions(name=name or function.__name__, retries=retries))
        return function

    return mark(fn) if fn is not None else mark


def is_task(obj: object) -> bool:
    return callable(obj) and isinstance(getattr(obj, TASK_MARKER, None), TaskOptions)


def task_options(obj: object) -> TaskOptions:
    options = getattr(obj, TASK_MARKER)
    assert isinstance(options, TaskOptions)
    return options

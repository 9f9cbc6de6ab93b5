"""The SDK's input checks: errors name the task and the input, and good input comes back."""

from __future__ import annotations

import numpy as np
import pytest

from theodolite.sdk.checks import bad_input, check_labels, check_rows, check_type


def raises(task: str, name: str, more: str):
    return pytest.raises(ValueError, match=f"^{task}: input '{name}' .*{more}")


def test_bad_input_names_the_task_and_the_input() -> None:
    assert str(bad_input("data.digits", "test_size", "must lie in (0, 1)")) == (
        "data.digits: input 'test_size' must lie in (0, 1)"
    )


def test_check_type_gives_back_a_value_of_the_kind() -> None:
    assert check_type("t", "count", 3, int, "a whole number") == 3
    with raises("t", "count", "must be a whole number, got str"):
        check_type("t", "count", "3", int, "a whole number")


@pytest.mark.parametrize("x", [np.zeros(4), np.zeros((0, 4)), [[1.0, 2.0]]])
def test_rows_must_be_a_non_empty_array_of_rows(x) -> None:
    with raises("models.train_mlp", "x", r"non-empty array of rows \(N, \.\.\.\)"):
        check_rows("models.train_mlp", x)


def test_rows_of_another_shape_are_refused_with_the_taker_and_a_hint() -> None:
    x = np.zeros((3, 64))
    assert check_rows("t", x, row_shape=[64]) is x
    with raises("t", "x_adv", r"rows of shape \[64\], but the model takes \[1, 8, 8\] \(reshape\)"):
        check_rows("t", x, name="x_adv", row_shape=(1, 8, 8), taker="the model", hint="reshape")


def test_labels_are_one_per_row() -> None:
    x = np.zeros((3, 2))
    assert check_labels("t", x, [0, 1, 1]).tolist() == [0, 1, 1]
    with raises("t", "y_clean", r"one label per row \(3\), got shape \(2,\)"):
        check_labels("t", x, [0, 1], name="y_clean")


def test_whole_labels_come_back_as_integers() -> None:
    x = np.zeros((2, 2))
    labels = check_labels("t", x, np.array([1.0, 0.0]), whole=True)
    assert labels.dtype == np.int64 and labels.tolist() == [1, 0]
    assert check_labels("t", x, np.array([0.5, 1.0])).dtype == np.float64  # as given
    with raises("t", "y", "whole-number class labels"):
        check_labels("t", x, np.array([0.5, 1.0]), whole=True)

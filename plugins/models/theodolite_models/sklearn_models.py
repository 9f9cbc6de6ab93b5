"""scikit-learn classifiers: logistic regression and a multi-layer perceptron."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier

from theodolite.sdk import current, isolated, task
from theodolite.sdk.checks import bad_input
from theodolite_models._checks import check_positive, check_training_data


def _flat(task_name: str, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = check_training_data(task_name, x, y)
    if x.ndim != 2:
        raise bad_input(
            task_name,
            "x",
            f"has rows of shape {list(x.shape[1:])}; scikit-learn models take flat rows "
            "(data.digits with view 'flat', or data.reshape with shape [features])",
        )
    return x, y


def _fit_quietly(model: LogisticRegression | MLPClassifier, x: np.ndarray, y: np.ndarray) -> None:
    """Fit; a solver that stops at ``max_iter`` is reported as progress, not as a warning. Under
    the process-wide lock: BLAS called from several threads at once may split its work otherwise
    and round differently."""
    with isolated(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(x, y)
    if any(issubclass(w.category, ConvergenceWarning) for w in caught):
        current().progress(None, f"stopped at max_iter={model.max_iter} before converging")


@task
def train_logistic_regression(
    x: np.ndarray, y: np.ndarray, max_iter: int = 500, seed: int = 0
) -> LogisticRegression:
    """Fit a multinomial logistic regression.

    Args:
        x: training inputs, one row per example
        y: training labels
        max_iter: most solver iterations
        seed: seed of the solver
    """
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} rows but y has {len(y)} labels")
    current().progress(0.0, "fitting logistic regression")
    model = LogisticRegression(max_iter=max_iter, random_state=seed)
    with isolated():
        model.fit(x, y)
    current().progress(1.0, "fitted")
    return model


@task
def train_mlp(
    x: np.ndarray,
    y: np.ndarray,
    hidden_layer_sizes: list[int] = [128],  # noqa: B006
    alpha: float = 1e-4,
    max_iter: int = 200,
    seed: int = 0,
) -> MLPClassifier:
    """Fit scikit-learn's multi-layer perceptron (Adam, ReLU); ``alpha`` is its L2 penalty.

    Args:
        x: training inputs, one flat row per example
        y: training labels
        hidden_layer_sizes: width of each hidden layer
        alpha: strength of the L2 penalty (larger: more regularised)
        max_iter: most epochs
        seed: seed of the initial weights and the batches
    """
    task_name = "models.train_mlp"
    x, y = _flat(task_name, x, y)
    check_positive(task_name, "alpha", alpha, allow_zero=True)
    if max_iter < 1:
        raise bad_input(task_name, "max_iter", f"must be >= 1, got {max_iter}")
    if not hidden_layer_sizes or min(hidden_layer_sizes) < 1:
        raise bad_input(
            task_name, "hidden_layer_sizes", f"must be widths >= 1, got {hidden_layer_sizes}"
        )
    current().progress(0.0, "fitting MLP")
    model = MLPClassifier(
        hidden_layer_sizes=tuple(hidden_layer_sizes),
        alpha=alpha,
        max_iter=max_iter,
        random_state=seed,
    )
    _fit_quietly(model, x, y)
    current().progress(1.0, f"fitted in {model.n_iter_} epochs")
    return model

"""Model tasks."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

from theodolite.sdk import current, task


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
    model.fit(x, y)
    current().progress(1.0, "fitted")
    return model

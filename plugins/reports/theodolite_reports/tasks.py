"""Report tasks: figures people would rather look at than read, and a one-page HTML report.
The module names every task; discovery finds them here."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")  # workers have no display

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from sklearn.base import BaseEstimator  # noqa: E402

from theodolite.sdk import task  # noqa: E402
from theodolite_reports._figures import new_figure  # noqa: E402
from theodolite_reports.charts import bar_chart, confusion_matrix, curves, image_grid  # noqa: E402
from theodolite_reports.html import html_report  # noqa: E402

__all__ = [
    "adversarial_examples",
    "bar_chart",
    "confusion_matrix",
    "curves",
    "html_report",
    "image_grid",
    "robustness_curve",
]


@task
def robustness_curve(points: list[dict[str, float]], title: str = "Robustness curve") -> Figure:
    """Accuracy against attack strength, from ``metrics.evaluate`` results.

    Args:
        points: evaluations with ``eps`` and ``accuracy``
        title: the figure's title
    """
    ordered = sorted(points, key=lambda p: p["eps"])
    figure = new_figure(5, 3.5)
    axes = figure.subplots()
    axes.plot([p["eps"] for p in ordered], [p["accuracy"] for p in ordered], marker="o")
    axes.set_xlabel("eps (L-inf)")
    axes.set_ylabel("accuracy")
    axes.set_ylim(0, 1.02)
    axes.grid(alpha=0.3)
    axes.set_title(title)
    return figure


@task
def adversarial_examples(
    model: BaseEstimator,
    x_clean: np.ndarray,
    x_adv: np.ndarray,
    y: np.ndarray,
    count: int = 8,
    image_shape: list[int] = [8, 8],  # noqa: B006
) -> Figure:
    """A grid of clean and adversarial images with the model's predictions (red = wrong).

    Args:
        model: the attacked classifier
        x_clean: clean inputs
        x_adv: their adversarial versions
        y: true labels
        count: how many examples to show
        image_shape: height and width of one image
    """
    count = max(1, min(count, len(x_clean)))
    rows: list[tuple[str, np.ndarray, Any]] = [
        ("clean", x_clean[:count], model.predict(x_clean[:count])),
        ("adversarial", x_adv[:count], model.predict(x_adv[:count])),
    ]
    figure = new_figure(1.6 * count, 4.2)
    axes = figure.subplots(2, count, squeeze=False)
    for row, (label, images, predictions) in enumerate(rows):
        for i in range(count):
            ax = axes[row, i]
            ax.imshow(images[i].reshape(image_shape), cmap="gray", vmin=0, vmax=1)
            ax.set_title(
                f"{label}: {predictions[i]}",
                fontsize=8,
                color="green" if predictions[i] == y[i] else "red",
            )
            ax.axis("off")
    figure.suptitle("Predictions per image (red = wrong)")
    return figure

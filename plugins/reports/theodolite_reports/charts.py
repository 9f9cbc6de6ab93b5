"""Charts: curves with one line per model or defence, grouped bars, a confusion matrix and a
grid of clean, adversarial and perturbation images."""

from __future__ import annotations

import numpy as np
from art.estimators.classification.classifier import ClassifierMixin
from matplotlib.figure import Figure

from theodolite.sdk import isolated, task
from theodolite.sdk.checks import bad_input
from theodolite_reports._figures import new_figure


def _labels(classifier: ClassifierMixin, x: np.ndarray) -> np.ndarray:
    """The predicted class of each row (ART's PyTorch predict draws from torch's generator)."""
    with isolated():
        return np.argmax(classifier.predict(x), axis=1)


def _as_number(task: str, name: str, key: str) -> float:
    try:
        return float(key)
    except ValueError:
        raise bad_input(task, name, f"has x value {key!r}, not a number") from None


@task
def curves(
    series: dict[str, dict[str, float]],
    title: str = "Robustness curve",
    x_label: str = "eps (L-inf)",
    y_label: str = "accuracy",
    y_limits: list[float] | None = [0.0, 1.02],  # noqa: B006
) -> Figure:
    """Line chart with one line per series, e.g. accuracy against eps per model or defence (the
    ``accuracy`` of attacks.robustness_sweep), or fidelity against query budget.

    Args:
        series: line label -> {x value (as text, e.g. "0.05"): y value}
        title: the figure's title
        x_label: label of the x axis
        y_label: label of the y axis
        y_limits: [lowest, highest] of the y axis; none: automatic
    """
    name = "reports.curves"
    if not series:
        raise bad_input(name, "series", "is empty: give at least one line")
    figure = new_figure(5.5, 3.8)
    axes = figure.subplots()
    for label, points in series.items():
        if not points:
            raise bad_input(name, "series", f"line {label!r} has no points")
        xs = sorted((_as_number(name, "series", k), float(v)) for k, v in points.items())
        axes.plot([p[0] for p in xs], [p[1] for p in xs], marker="o", label=label)
    axes.set_xlabel(x_label)
    axes.set_ylabel(y_label)
    if y_limits is not None:
        if len(y_limits) != 2 or y_limits[0] >= y_limits[1]:
            raise bad_input(name, "y_limits", f"must be [low, high] with low < high: {y_limits}")
        axes.set_ylim(*y_limits)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    axes.set_title(title)
    return figure


@task
def bar_chart(
    table: dict[str, dict[str, float]],
    title: str = "",
    y_label: str = "accuracy",
    y_limits: list[float] | None = [0.0, 1.02],  # noqa: B006
) -> Figure:
    """Grouped bars: one group per row of ``table``, one bar per column (e.g. clean, non-adaptive
    and adaptive accuracy per defence).

    Args:
        table: group -> {bar label: value}
        title: the figure's title
        y_label: label of the y axis
        y_limits: [lowest, highest] of the y axis; none: automatic
    """
    name = "reports.bar_chart"
    if not table:
        raise bad_input(name, "table", "is empty")
    columns = list(dict.fromkeys(c for row in table.values() for c in row))
    groups = list(table)
    width = 0.8 / max(1, len(columns))
    figure = new_figure(max(5.0, 1.1 * len(groups) + 2), 3.8)
    axes = figure.subplots()
    positions = np.arange(len(groups))
    for i, column in enumerate(columns):
        values = [float(table[g].get(column, np.nan)) for g in groups]
        bars = axes.bar(
            positions + (i - (len(columns) - 1) / 2) * width, values, width, label=column
        )
        axes.bar_label(bars, fmt="%.2f", fontsize=7)
    axes.set_xticks(positions, groups, fontsize=8)
    axes.set_ylabel(y_label)
    if y_limits is not None:
        axes.set_ylim(*y_limits)
    axes.grid(axis="y", alpha=0.3)
    axes.legend(fontsize=8)
    axes.set_title(title)
    return figure


@task
def confusion_matrix(
    classifier: ClassifierMixin, x: np.ndarray, y: np.ndarray, title: str = "Confusion matrix"
) -> Figure:
    """The classifier's confusion matrix on ``x`` (rows: true class, columns: predicted).

    Args:
        classifier: an ART classifier
        x: inputs (clean or adversarial)
        y: their true labels
        title: the figure's title
    """
    name = "reports.confusion_matrix"
    if not isinstance(classifier, ClassifierMixin):
        raise bad_input(
            name, "classifier", f"must be an ART classifier, got {type(classifier).__name__}"
        )
    labels = np.asarray(y)
    if not isinstance(x, np.ndarray) or len(x) != len(labels) or len(x) == 0:
        raise bad_input(name, "y", f"must hold one label per row of x, got {labels.shape}")
    classes = int(classifier.nb_classes)
    predicted = _labels(classifier, x)
    counts = np.zeros((classes, classes), dtype=int)
    np.add.at(counts, (labels.astype(int), predicted), 1)
    figure = new_figure(4.6, 4.0)
    axes = figure.subplots()
    image = axes.imshow(counts, cmap="Blues")
    for (i, j), value in np.ndenumerate(counts):
        if value:
            color = "white" if value > counts.max() / 2 else "black"
            axes.text(j, i, str(value), ha="center", va="center", fontsize=7, color=color)
    axes.set_xticks(range(classes))
    axes.set_yticks(range(classes))
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    accuracy = np.trace(counts) / counts.sum()
    axes.set_title(f"{title} (accuracy {accuracy:.3f})", fontsize=9)
    figure.colorbar(image, ax=axes, shrink=0.8)
    return figure


@task
def image_grid(
    classifier: ClassifierMixin,
    x_clean: np.ndarray,
    x_adv: np.ndarray,
    y: np.ndarray,
    count: int = 8,
    image_shape: list[int] = [8, 8],  # noqa: B006
    title: str = "Clean, adversarial and perturbation (red: wrong)",
) -> Figure:
    """Three rows of images: clean inputs and the classifier's labels, their adversarial
    versions and labels (red: wrong), and the perturbation (blue -, red +).

    Args:
        classifier: the attacked ART classifier
        x_clean: clean inputs
        x_adv: their adversarial versions, in the same order
        y: true labels
        count: how many columns (examples)
        image_shape: height and width of one image
        title: the figure's title
    """
    name = "reports.image_grid"
    if not isinstance(x_clean, np.ndarray) or not isinstance(x_adv, np.ndarray):
        raise bad_input(name, "x_adv", "and x_clean must be arrays")
    if x_clean.shape != x_adv.shape:
        raise bad_input(name, "x_adv", f"has shape {x_adv.shape}, x_clean {x_clean.shape}")
    if int(np.prod(image_shape)) != int(np.prod(x_clean.shape[1:])):
        raise bad_input(
            name, "image_shape", f"{image_shape} does not hold a row of {x_clean.shape[1:]}"
        )
    count = max(1, min(count, len(x_clean)))
    clean, adv = x_clean[:count], x_adv[:count]
    delta = (adv - clean).reshape(count, *image_shape)
    scale = float(np.abs(delta).max()) or 1.0
    rows = [
        ("clean", clean.reshape(count, *image_shape), _labels(classifier, clean)),
        ("adversarial", adv.reshape(count, *image_shape), _labels(classifier, adv)),
    ]
    figure = new_figure(1.4 * count, 4.6)
    axes = figure.subplots(3, count, squeeze=False)
    for row, (label, images, predictions) in enumerate(rows):
        for i in range(count):
            ax = axes[row, i]
            ax.imshow(images[i], cmap="gray", vmin=0, vmax=1)
            color = "green" if predictions[i] == y[i] else "red"
            ax.set_title(f"{label}: {predictions[i]}", fontsize=7, color=color)
            ax.axis("off")
    for i in range(count):
        ax = axes[2, i]
        ax.imshow(delta[i], cmap="bwr", vmin=-scale, vmax=scale)
        ax.set_title(f"|d|max {np.abs(delta[i]).max():.2f}", fontsize=7)
        ax.axis("off")
    figure.suptitle(title, fontsize=9)
    return figure

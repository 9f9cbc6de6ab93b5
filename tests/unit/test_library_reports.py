"""Report tasks: figures as bare matplotlib figures (thread-safe, no pyplot), a one-page HTML
report with the tables and figures embedded."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure
from theodolite_attacks import tasks as attacks
from theodolite_reports import tasks as reports

from tests.fixtures import library
from tests.fixtures.library import Digits
from tests.fixtures.tasks import running_as
from theodolite.sdk.context import TaskContext

# The shared fixtures (tests/fixtures/library.py), visible to pytest in this module.
cnn_classifier, images = library.cnn_classifier, library.images


def test_library_figures(cnn_classifier, images: Digits) -> None:
    x, y = images.x_test[:30], images.y_test[:30]
    x_adv = attacks.fgm(cnn_classifier, x, eps=0.2, seed=0)
    figures = [
        reports.curves({"CNN": {"0": 0.9, "0.1": 0.5, "0.05": 0.7}, "LR": {"0": 0.95}}),
        reports.bar_chart({"none": {"clean": 0.9, "adaptive": 0.1}, "squeezed": {"clean": 0.8}}),
        reports.confusion_matrix(cnn_classifier, x, y),
        reports.image_grid(cnn_classifier, x, x_adv, y, count=4),
    ]
    for figure in figures:
        assert isinstance(figure, Figure)
        assert reports.html_report("t", figures={"f": figure}).count("data:image/png") == 1
    with pytest.raises(ValueError, match="reports.curves: input 'series' has x value 'low'"):
        reports.curves({"CNN": {"low": 0.9}})
    with pytest.raises(ValueError, match="reports.image_grid: input 'x_adv'"):
        reports.image_grid(cnn_classifier, x, x_adv[:3], y)


def test_library_html_report_has_the_tables_and_figures() -> None:
    with running_as(TaskContext(step="report", seed=5, job_id="job-1")):
        page = reports.html_report(
            "Robustness <of> digits",
            summary="what it shows",
            tables={
                "curve": {
                    "CNN": {"0": 0.97, "0.1": 0.5},
                    "LR": {"0": 0.96, "0.1": np.float64(0.6)},
                },
                "one model": {"auc": 0.61, "advantage": 0.2},
                "count": 3,
            },
            figures={"a curve": reports.curves({"CNN": {"0": 0.9, "0.1": 0.5}})},
        )
    assert page.startswith("<!doctype html>") and "Robustness &lt;of&gt; digits" in page
    assert "job job-1, seed 5" in page
    assert "<th>0.1</th>" in page and "<td>0.6</td>" in page and "<td>0.61</td>" in page
    assert page.count('<img alt="a curve" src="data:image/png;base64,') == 1
    with pytest.raises(ValueError, match="reports.html_report: input 'figures'"):
        reports.html_report("t", figures={"not a figure": "text"})  # type: ignore[dict-item]


def test_library_legacy_reports_keep_their_contract(images: Digits) -> None:
    from sklearn.linear_model import LogisticRegression

    x, y = images.x_train.reshape(-1, 64), images.y_train
    model = LogisticRegression(max_iter=100).fit(x, y)
    curve = reports.robustness_curve([{"eps": 0.1, "accuracy": 0.5}, {"eps": 0, "accuracy": 0.9}])
    grid = reports.adversarial_examples(model, x[:4], x[:4], y[:4], count=4)
    assert isinstance(curve, Figure) and isinstance(grid, Figure)

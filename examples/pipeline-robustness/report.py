"""Draw one figure comparing the three attacks from their metrics (robust accuracy against the
clean one, mean L2 perturbation, time) and log it, with the numbers, as artifacts."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display in a job

import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402

ATTACKS = ("fgsm", "pgd", "cw")
FIGURE = "figures/robustness_comparison.png"
COLOURS = ["#4c72b0", "#dd8452", "#55a868"]


def draw(summary: dict[str, Any], path: Path) -> None:
    """Three panels, one bar per attack: robust accuracy (clean as a line), L2, seconds."""
    rows = [summary["attacks"][name] for name in ATTACKS]
    labels = [row["label"] for row in rows]
    figure, axes = plt.subplots(1, 3, figsize=(12, 4), constrained_layout=True)
    panels = [
        ("robust_accuracy", "accuracy under attack", "{:.2f}"),
        ("mean_perturbation_l2", "mean L2 of the perturbation", "{:.2f}"),
        ("attack_time_s", "attack time (s)", "{:.2f}"),
    ]
    for axis, (key, title, shown) in zip(axes, panels, strict=True):
        values = [row[key] for row in rows]
        bars = axis.bar(labels, values, color=COLOURS)
        axis.bar_label(bars, labels=[shown.format(v) for v in values], padding=2)
        axis.set_title(title)
        axis.tick_params(axis="x", labelsize=9)
        axis.margins(y=0.15)
    axes[0].axhline(summary["clean_accuracy"], color="black", linestyle="--", linewidth=1)
    axes[0].annotate(
        f"clean {summary['clean_accuracy']:.2f}",
        (0.02, summary["clean_accuracy"]),
        xycoords=("axes fraction", "data"),
        xytext=(0, 3),
        textcoords="offset points",
        fontsize=9,
    )
    axes[0].set_ylim(0, 1.1)
    figure.suptitle(
        f"Attacks on the digits CNN, the same {summary['samples']} held-out digits each"
    )
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clean-accuracy", type=float, required=True)
    parser.add_argument("--fgsm-eps", type=float, default=0.1)
    parser.add_argument("--pgd-eps", type=float, default=0.1)
    parser.add_argument("--samples", type=int, default=100, help="digits each attack ran on")
    for name in ATTACKS:
        parser.add_argument(f"--{name}-robust-accuracy", type=float, required=True)
        parser.add_argument(f"--{name}-l2", type=float, required=True)
        parser.add_argument(f"--{name}-time-s", type=float, required=True)
        parser.add_argument(f"--{name}-run-id", default="")
    args = vars(parser.parse_args())
    labels = {
        "fgsm": f"FGSM\nL-inf eps {args['fgsm_eps']:g}",
        "pgd": f"PGD\nL-inf eps {args['pgd_eps']:g}",
        "cw": "Carlini-Wagner L2\nno bound",
    }
    summary: dict[str, Any] = {
        "clean_accuracy": args["clean_accuracy"],
        "samples": args["samples"],
        "attacks": {
            name: {
                "label": labels[name],
                "robust_accuracy": args[f"{name}_robust_accuracy"],
                "mean_perturbation_l2": args[f"{name}_l2"],
                "attack_time_s": args[f"{name}_time_s"],
                "run_id": args[f"{name}_run_id"] or None,
            }
            for name in ATTACKS
        },
    }
    with mlflow.start_run(), tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / Path(FIGURE).name
        draw(summary, path)
        mlflow.log_artifact(str(path), str(Path(FIGURE).parent))
        mlflow.log_dict(summary, "summary.json")
        mlflow.log_metrics(
            {
                f"{name}_robust_accuracy": row["robust_accuracy"]
                for name, row in summary["attacks"].items()
            }
        )
        print(json.dumps(summary, indent=2))
        print(f"logged {FIGURE}")


if __name__ == "__main__":
    main()

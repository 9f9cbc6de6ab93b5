"""FGSM evasion against logistic regression on scikit-learn's bundled digits.

Logs clean and adversarial accuracy, the attack's success rate and perturbation size, and a PNG
of clean and adversarial examples with their predictions.
"""

import argparse
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on workers

import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import numpy as np  # noqa: E402
from art.attacks.evasion import FastGradientMethod  # noqa: E402
from art.estimators.classification import SklearnClassifier  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--test-size", type=float, default=0.25)
    parser.add_argument("--max-iter", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--examples", type=int, default=8)
    args = parser.parse_args()
    if not 0.0 <= args.eps <= 1.0:
        parser.error(f"--eps must lie in [0, 1], got {args.eps}")
    return args


def plot_examples(clean, adversarial, clean_pred, adv_pred, labels, path: Path) -> None:
    count = len(clean)
    figure, axes = plt.subplots(2, count, figsize=(1.6 * count, 4.2))
    axes = np.atleast_2d(axes).reshape(2, count)
    for i in range(count):
        for row, (images, preds, title) in enumerate(
            ((clean, clean_pred, "clean"), (adversarial, adv_pred, "adversarial"))
        ):
            ax = axes[row, i]
            ax.imshow(images[i].reshape(8, 8), cmap="gray", vmin=0, vmax=1)
            colour = "green" if preds[i] == labels[i] else "red"
            ax.set_title(f"{title}: {preds[i]}", fontsize=8, color=colour)
            ax.axis("off")
    figure.suptitle("FGSM on digits: prediction per image (red = wrong)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main() -> None:
    args = parse_args()
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=args.test_size, random_state=args.seed, stratify=y
    )
    print(f"train {len(x_train)} / test {len(x_test)} digits, eps={args.eps}")

    model = LogisticRegression(max_iter=args.max_iter, random_state=args.seed)
    model.fit(x_train, y_train)
    classifier = SklearnClassifier(model=model, clip_values=(0.0, 1.0))
    attack = FastGradientMethod(estimator=classifier, eps=args.eps)
    x_adv = attack.generate(x=x_test)

    clean_pred = model.predict(x_test)
    adv_pred = model.predict(x_adv)
    clean_accuracy = float(np.mean(clean_pred == y_test))
    adversarial_accuracy = float(np.mean(adv_pred == y_test))
    correct = clean_pred == y_test
    success_rate = float(np.mean(adv_pred[correct] != y_test[correct])) if correct.any() else 0.0
    linf = float(np.max(np.abs(x_adv - x_test)))

    with mlflow.start_run():
        mlflow.log_metrics(
            {
                "clean_accuracy": clean_accuracy,
                "adversarial_accuracy": adversarial_accuracy,
                "attack_success_rate": success_rate,
                "perturbation_linf": linf,
            }
        )
        with tempfile.TemporaryDirectory() as tmp:
            figure = Path(tmp) / "adversarial_examples.png"
            n = min(args.examples, len(x_test))
            plot_examples(x_test[:n], x_adv[:n], clean_pred[:n], adv_pred[:n], y_test[:n], figure)
            mlflow.log_artifact(str(figure), "figures")
    print(f"clean accuracy       {clean_accuracy:.4f}")
    print(f"adversarial accuracy {adversarial_accuracy:.4f}")
    print(f"attack success rate  {success_rate:.4f}")


if __name__ == "__main__":
    main()

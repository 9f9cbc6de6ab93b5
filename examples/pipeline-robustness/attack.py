"""Run one ART evasion attack (FGSM, PGD or Carlini-Wagner L2) on a model loaded through MLflow,
on a fixed subset of the held-out digits, and log clean and robust accuracy, the mean L2 size of
the perturbation and the attack's time."""

from __future__ import annotations

import argparse
import os
import random
import time

import mlflow
import mlflow.pytorch
import numpy as np
import torch
from art.attacks.evasion import CarliniL2Method, FastGradientMethod, ProjectedGradientDescent
from art.estimators.classification import PyTorchClassifier
from digits_split import IMAGE_SHAPE, NB_CLASSES, attack_subset

# Progress bars of artifact downloads are noise in a job's log.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
from torch import nn

ATTACKS = ("fgsm", "pgd", "cw")


def load_classifier(model_uri: str) -> PyTorchClassifier:
    """The logged torch module as an ART classifier on inputs in [0, 1]."""
    model = mlflow.pytorch.load_model(model_uri, map_location="cpu")
    model.eval()
    return PyTorchClassifier(
        model=model,
        loss=nn.CrossEntropyLoss(),
        input_shape=IMAGE_SHAPE,
        nb_classes=NB_CLASSES,
        clip_values=(0.0, 1.0),
        device_type="cpu",
    )


def build_attack(
    name: str,
    classifier: PyTorchClassifier,
    *,
    eps: float,
    max_iter: int,
    binary_search_steps: int,
    learning_rate: float,
    initial_const: float,
) -> FastGradientMethod | ProjectedGradientDescent | CarliniL2Method:
    """FGSM and PGD are bounded by ``eps`` in L-inf; Carlini-Wagner looks for the smallest L2
    change that flips the prediction (it has no eps)."""
    if name == "fgsm":
        return FastGradientMethod(estimator=classifier, norm=np.inf, eps=eps, batch_size=128)
    if name == "pgd":
        return ProjectedGradientDescent(
            estimator=classifier,
            norm=np.inf,
            eps=eps,
            eps_step=eps / 4,
            max_iter=max_iter,
            batch_size=128,
            verbose=False,
        )
    return CarliniL2Method(
        classifier=classifier,
        confidence=0.0,
        learning_rate=learning_rate,
        binary_search_steps=binary_search_steps,
        max_iter=max_iter,
        initial_const=initial_const,
        batch_size=128,
        verbose=False,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-uri", required=True, help="runs:/<run id>/model or models:/...")
    parser.add_argument("--attack", choices=ATTACKS, required=True)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--eps", type=float, default=0.1, help="L-inf bound (fgsm, pgd)")
    parser.add_argument("--max-iter", type=int, default=10, help="steps (pgd, cw)")
    parser.add_argument("--binary-search-steps", type=int, default=4, help="(cw)")
    parser.add_argument("--learning-rate", type=float, default=0.05, help="(cw)")
    parser.add_argument("--initial-const", type=float, default=0.3, help="(cw)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    # A meaningless setting fails the stage (and skips the report) instead of logging numbers
    # that look real: ART runs PGD with max_iter 0 and returns the digits unchanged.
    if args.attack != "cw" and not 0.0 < args.eps <= 1.0:
        parser.error(f"--eps must lie in (0, 1], got {args.eps}")
    for flag, value in (
        ("--max-iter", args.max_iter),
        ("--binary-search-steps", args.binary_search_steps),
    ):
        if value < 1:
            parser.error(f"{flag} must be at least 1, got {value}")
    for flag, number in (
        ("--learning-rate", args.learning_rate),
        ("--initial-const", args.initial_const),
    ):
        if not number > 0:
            parser.error(f"{flag} must be above 0, got {number}")
    # The three attack stages run at once, often on fewer cores than torch would take threads
    # each; the network is tiny, so one thread apiece loses nothing and avoids oversubscription.
    torch.set_num_threads(1)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    x, y = attack_subset(args.samples)
    with mlflow.start_run():
        classifier = load_classifier(args.model_uri)
        attack = build_attack(
            args.attack,
            classifier,
            eps=args.eps,
            max_iter=args.max_iter,
            binary_search_steps=args.binary_search_steps,
            learning_rate=args.learning_rate,
            initial_const=args.initial_const,
        )
        started = time.perf_counter()
        # The true labels: no label leaking question, and the same targets for every attack.
        x_adv = attack.generate(x=x, y=y)
        attack_time = time.perf_counter() - started
        clean = float(np.mean(classifier.predict(x).argmax(axis=1) == y))
        robust = float(np.mean(classifier.predict(x_adv).argmax(axis=1) == y))
        l2 = float(np.mean(np.linalg.norm((x_adv - x).reshape(len(x), -1), axis=1)))
        mlflow.log_metrics(
            {
                "clean_accuracy": clean,
                "robust_accuracy": robust,
                "mean_perturbation_l2": l2,
                "attack_time_s": attack_time,
            }
        )
        print(
            f"{args.attack} on {len(x)} digits: clean {clean:.4f}, robust {robust:.4f}, "
            f"mean L2 {l2:.3f}, {attack_time:.2f} s"
        )


if __name__ == "__main__":
    main()

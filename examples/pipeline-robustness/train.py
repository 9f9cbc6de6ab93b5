"""Train a small CNN on the digits, log it as the MLflow model "model", register it and log its
clean accuracy on the held-out digits."""

from __future__ import annotations

import argparse
import time

import mlflow
import mlflow.pytorch
import numpy as np
import torch
from digits_split import IMAGE_SHAPE, NB_CLASSES, SPLIT_SEED, TEST_SIZE, split
from torch import nn
from torch.nn import functional


def build_cnn() -> nn.Module:
    """Two 3x3 convolutions, a max-pool and two dense layers: built from torch's own modules
    only, so a later job unpickles it without this file."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 64),
        nn.ReLU(),
        nn.Linear(64, NB_CLASSES),
    )


def fit(
    model: nn.Module, x: np.ndarray, y: np.ndarray, *, epochs: int, learning_rate: float
) -> float:
    """Adam on cross-entropy in batches of 64; the last epoch's mean loss."""
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    inputs, labels = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    loss_sum = 0.0
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(inputs))
        loss_sum = 0.0
        for start in range(0, len(order), 64):
            batch = order[start : start + 64]
            optimizer.zero_grad()
            loss = functional.cross_entropy(model(inputs[batch]), labels[batch])
            loss.backward()
            optimizer.step()
            loss_sum += float(loss.item()) * len(batch)
        mlflow.log_metric("train_loss", loss_sum / len(inputs), step=epoch)
    model.eval()
    return loss_sum / len(inputs)


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        predicted = model(torch.from_numpy(x)).argmax(dim=1).numpy()
    return float(np.mean(predicted == y))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--learning-rate", type=float, default=0.003)
    parser.add_argument("--register-as", default="digits-robustness-cnn")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    x_train, y_train, x_test, y_test = split()
    # The worker sets MLFLOW_RUN_ID: start_run() continues the job's run.
    with mlflow.start_run():
        mlflow.log_params({"split_seed": SPLIT_SEED, "test_size": TEST_SIZE})
        model = build_cnn()
        started = time.perf_counter()
        loss = fit(model, x_train, y_train, epochs=args.epochs, learning_rate=args.learning_rate)
        train_time = time.perf_counter() - started
        clean = accuracy(model, x_test, y_test)
        mlflow.log_metrics(
            {"clean_accuracy": clean, "final_train_loss": loss, "train_time_s": train_time}
        )
        print(f"trained {args.epochs} epochs in {train_time:.1f} s: clean accuracy {clean:.4f}")
        # "pickle": the default pt2 export gives back a graph ART cannot switch to eval mode.
        info = mlflow.pytorch.log_model(
            model,
            name="model",
            registered_model_name=args.register_as or None,
            serialization_format="pickle",
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
            metadata={"input_shape": list(IMAGE_SHAPE), "nb_classes": NB_CLASSES},
        )
        print(
            f"logged {info.model_uri} (registered as {args.register_as!r}, version "
            f"{info.registered_model_version})"
        )


if __name__ == "__main__":
    main()

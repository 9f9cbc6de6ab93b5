"""PyTorch classifiers: build a network, train it with a seed on the job's device."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from theodolite.sdk import current, resolve_seed, seeded, task
from theodolite.sdk.checks import bad_input
from theodolite_models._checks import check_positive, check_training_data
from theodolite_models.nets import DigitsCNN, MLPNet


@dataclass(frozen=True)
class Training:
    """How a network is trained: Adam on cross-entropy in mini-batches."""

    epochs: int
    batch_size: int
    learning_rate: float
    weight_decay: float


def fit_module(
    module: nn.Module, x: np.ndarray, y: np.ndarray, training: Training, *, seed: int, device: str
) -> nn.Module:
    """Adam on cross-entropy, batches in a seeded order; progress after every epoch."""
    epochs, batch_size = training.epochs, training.batch_size
    generator = torch.Generator().manual_seed(seed)
    module.to(device)
    optimizer = torch.optim.Adam(
        module.parameters(), lr=training.learning_rate, weight_decay=training.weight_decay
    )
    inputs = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    labels = torch.from_numpy(np.asarray(y, dtype=np.int64))
    for epoch in range(epochs):
        module.train()
        order = torch.randperm(len(inputs), generator=generator)
        total = 0.0
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            optimizer.zero_grad()
            loss = functional.cross_entropy(
                module(inputs[batch].to(device)), labels[batch].to(device)
            )
            loss.backward()
            optimizer.step()
            total += float(loss.item()) * len(batch)
        current().progress(
            (epoch + 1) / epochs, f"epoch {epoch + 1}/{epochs}: loss {total / len(inputs):.4f}"
        )
    module.eval()
    return module.to("cpu")


def _check_training(
    task_name: str, epochs: int, batch_size: int, learning_rate: float, weight_decay: float
) -> Training:
    if epochs < 0:
        raise bad_input(task_name, "epochs", f"must be >= 0, got {epochs}")
    if batch_size < 1:
        raise bad_input(task_name, "batch_size", f"must be >= 1, got {batch_size}")
    check_positive(task_name, "learning_rate", learning_rate)
    check_positive(task_name, "weight_decay", weight_decay, allow_zero=True)
    return Training(epochs, batch_size, learning_rate, weight_decay)


def _check_mlp(task_name: str, hidden: list[int], dropout: float) -> None:
    if not 0.0 <= dropout < 1.0:
        raise bad_input(task_name, "dropout", f"must lie in [0, 1), got {dropout}")
    if not hidden or min(hidden) < 1:
        raise bad_input(task_name, "hidden", f"must be widths >= 1, got {hidden}")


def _classes(task_name: str, y: np.ndarray, nb_classes: int | None) -> int:
    found = int(y.max()) + 1 if len(y) else 0
    if y.min() < 0:
        raise bad_input(task_name, "y", f"must hold labels 0..C-1, got {int(y.min())}")
    if nb_classes is None:
        return found
    if nb_classes < found:
        raise bad_input(task_name, "nb_classes", f"is {nb_classes}, but y has label {found - 1}")
    return nb_classes


def _image_shape(
    task_name: str, name: str, shape: list[int] | tuple[int, ...]
) -> tuple[int, int, int]:
    if len(shape) != 3 or min(shape) < 1:
        raise bad_input(
            task_name,
            name,
            f"has rows of shape {list(shape)}; the CNN takes images (channels, height, width): "
            "data.digits with view 'image', or data.reshape with shape [1, 8, 8]",
        )
    return int(shape[0]), int(shape[1]), int(shape[2])


@task
def build_cnn(
    input_shape: list[int] = [1, 8, 8],  # noqa: B006
    nb_classes: int = 10,
    channels: int = 16,
    hidden: int = 64,
    seed: int | None = None,
) -> nn.Module:
    """An untrained CNN (e.g. the thief of a model extraction, or for adversarial training).

    Args:
        input_shape: shape of one image (channels, height, width)
        nb_classes: number of classes
        channels: filters of the first convolution (the second has twice as many)
        hidden: width of the dense layer
        seed: seed of the initial weights (default: the step's seed)
    """
    task_name = "models.build_cnn"
    shape = _image_shape(task_name, "input_shape", input_shape)
    if nb_classes < 2 or channels < 1 or hidden < 1:
        raise bad_input(task_name, "nb_classes", "channels and hidden must be >= 2, 1 and 1")
    with seeded(resolve_seed(task_name, seed)):
        return DigitsCNN(shape, nb_classes, channels, hidden).eval()


@task
def build_torch_mlp(
    input_shape: list[int] = [64],  # noqa: B006
    nb_classes: int = 10,
    hidden: list[int] = [128],  # noqa: B006
    dropout: float = 0.0,
    seed: int | None = None,
) -> nn.Module:
    """An untrained PyTorch MLP over flattened inputs.

    Args:
        input_shape: shape of one input row (e.g. [64] or [1, 8, 8])
        nb_classes: number of classes
        hidden: width of each hidden layer
        dropout: dropout after each hidden layer, in [0, 1)
        seed: seed of the initial weights (default: the step's seed)
    """
    task_name = "models.build_torch_mlp"
    if not input_shape or min(input_shape) < 1:
        raise bad_input(task_name, "input_shape", f"must be positive sizes, got {input_shape}")
    _check_mlp(task_name, hidden, dropout)
    with seeded(resolve_seed(task_name, seed)):
        return MLPNet(tuple(input_shape), nb_classes, tuple(hidden), dropout).eval()


@task
def train_cnn(
    x: np.ndarray,
    y: np.ndarray,
    epochs: int = 15,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    weight_decay: float = 0.0,
    channels: int = 16,
    hidden: int = 64,
    nb_classes: int | None = None,
    seed: int | None = None,
) -> nn.Module:
    """Train a small CNN (two convolutions, max-pool, two dense layers) on images.

    Args:
        x: training images (N, channels, height, width), in [0, 1]
        y: training labels 0..C-1
        epochs: passes over the training data
        batch_size: examples per step
        learning_rate: Adam's learning rate
        weight_decay: Adam's L2 penalty
        channels: filters of the first convolution
        hidden: width of the dense layer
        nb_classes: number of classes (default: the largest label + 1)
        seed: seed of the initial weights and the batch order (default: the step's seed)
    """
    task_name = "models.train_cnn"
    x, y = check_training_data(task_name, x, y)
    shape = _image_shape(task_name, "x", x.shape[1:])
    training = _check_training(task_name, epochs, batch_size, learning_rate, weight_decay)
    classes = _classes(task_name, y, nb_classes)
    seed = resolve_seed(task_name, seed)
    with seeded(seed):
        module = DigitsCNN(shape, classes, channels, hidden)
        return fit_module(module, x, y, training, seed=seed, device=current().device)


@task
def train_torch_mlp(
    x: np.ndarray,
    y: np.ndarray,
    hidden: list[int] = [128],  # noqa: B006
    dropout: float = 0.0,
    epochs: int = 30,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    weight_decay: float = 0.0,
    nb_classes: int | None = None,
    seed: int | None = None,
) -> nn.Module:
    """Train a PyTorch MLP (dense ReLU layers over the flattened input).

    Args:
        x: training inputs (N, ...), in [0, 1]
        y: training labels 0..C-1
        hidden: width of each hidden layer
        dropout: dropout after each hidden layer, in [0, 1)
        epochs: passes over the training data
        batch_size: examples per step
        learning_rate: Adam's learning rate
        weight_decay: Adam's L2 penalty (larger: more regularised)
        nb_classes: number of classes (default: the largest label + 1)
        seed: seed of the initial weights, dropout and the batch order (default: the step's seed)
    """
    task_name = "models.train_torch_mlp"
    x, y = check_training_data(task_name, x, y)
    training = _check_training(task_name, epochs, batch_size, learning_rate, weight_decay)
    _check_mlp(task_name, hidden, dropout)
    classes = _classes(task_name, y, nb_classes)
    seed = resolve_seed(task_name, seed)
    with seeded(seed):
        module = MLPNet(tuple(x.shape[1:]), classes, tuple(hidden), dropout)
        return fit_module(module, x, y, training, seed=seed, device=current().device)

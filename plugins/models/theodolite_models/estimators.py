"""Any model as an ART classifier: what attacks, defences and metrics take."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from art.estimators.classification import PyTorchClassifier, SklearnClassifier
from art.estimators.classification.classifier import ClassifierMixin
from sklearn.base import BaseEstimator
from torch import nn

from theodolite.sdk import current, task
from theodolite.sdk.checks import bad_input

TASK = "models.art_classifier"


def art_device() -> str:
    """ART's name for the job's device: ``gpu`` on a GPU worker, else ``cpu``."""
    return "gpu" if current().device.startswith("cuda") else "cpu"


def to_art(
    task_name: str,
    model: Any,
    clip_values: tuple[float, float] = (0.0, 1.0),
    input_shape: list[int] | None = None,
    nb_classes: int | None = None,
    learning_rate: float = 1e-3,
) -> ClassifierMixin:
    """Wrap a fitted scikit-learn classifier or a PyTorch module for ART."""
    low, high = clip_values
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise bad_input(task_name, "clip_min", f"must be below clip_max, got {low} and {high}")
    if isinstance(model, ClassifierMixin):
        return model
    if isinstance(model, BaseEstimator):
        if not hasattr(model, "classes_"):
            raise bad_input(task_name, "model", f"{type(model).__name__} is not fitted yet")
        try:
            return SklearnClassifier(model=model, clip_values=(float(low), float(high)))
        except TypeError as exc:
            raise bad_input(task_name, "model", f"is not supported by ART: {exc}") from exc
    if isinstance(model, nn.Module):
        shape = input_shape or list(getattr(model, "input_shape", []) or [])
        classes = nb_classes or getattr(model, "nb_classes", None)
        if not shape:
            raise bad_input(task_name, "input_shape", "is needed: the module does not say")
        if not classes:
            raise bad_input(task_name, "nb_classes", "is needed: the module does not say")
        return PyTorchClassifier(
            model=model,
            loss=nn.CrossEntropyLoss(),
            optimizer=torch.optim.Adam(model.parameters(), lr=learning_rate),
            input_shape=tuple(int(d) for d in shape),
            nb_classes=int(classes),
            clip_values=(float(low), float(high)),
            device_type=art_device(),
        )
    raise bad_input(
        task_name,
        "model",
        f"must be a scikit-learn classifier or a torch module, got {type(model).__name__}",
    )


def unwrap(model: Any) -> Any:
    """The scikit-learn model or torch module inside an ART classifier (or the model itself)."""
    if isinstance(model, PyTorchClassifier):
        return model.model
    if isinstance(model, ClassifierMixin):
        return getattr(model, "model", model)
    return model


def describe(model: Any) -> dict[str, Any]:
    """What wrapping needs besides the model: stored with it in the registry."""
    info: dict[str, Any] = {}
    if isinstance(model, ClassifierMixin):
        info["nb_classes"] = int(model.nb_classes)
        if model.input_shape is not None:
            info["input_shape"] = [int(d) for d in model.input_shape]
        if model.clip_values is not None:
            info["clip_values"] = [float(np.min(v)) for v in model.clip_values]
        model = unwrap(model)
    if isinstance(model, nn.Module):
        info.setdefault("input_shape", list(getattr(model, "input_shape", []) or []))
        info.setdefault("nb_classes", getattr(model, "nb_classes", None))
    elif hasattr(model, "classes_"):
        info.setdefault("nb_classes", len(model.classes_))
        info.setdefault("input_shape", [int(getattr(model, "n_features_in_", 0))])
    return {k: v for k, v in info.items() if v}


@task
def art_classifier(
    model: BaseEstimator | nn.Module,
    clip_min: float = 0.0,
    clip_max: float = 1.0,
    input_shape: list[int] | None = None,
    nb_classes: int | None = None,
    learning_rate: float = 1e-3,
) -> ClassifierMixin:
    """Wrap a model as an ART classifier (SklearnClassifier or PyTorchClassifier on the job's
    device): attacks, defences and metrics take it.

    Args:
        model: a fitted scikit-learn classifier or a PyTorch module
        clip_min: smallest valid input value
        clip_max: largest valid input value
        input_shape: shape of one input (PyTorch; default: the module's own input_shape)
        nb_classes: number of classes (PyTorch; default: the module's own nb_classes)
        learning_rate: Adam's learning rate when ART trains it further (adversarial training,
            model extraction)
    """
    return to_art(TASK, model, (clip_min, clip_max), input_shape, nb_classes, learning_rate)

"""Model tasks: scikit-learn and PyTorch classifiers, ART wrapping, the MLflow model registry."""

from theodolite_models.estimators import art_classifier
from theodolite_models.registry import ModelRef, load_model, log_model
from theodolite_models.sklearn_models import train_logistic_regression, train_mlp
from theodolite_models.torch_models import (
    build_cnn,
    build_torch_mlp,
    train_cnn,
    train_torch_mlp,
)

__all__ = [
    "ModelRef",
    "art_classifier",
    "build_cnn",
    "build_torch_mlp",
    "load_model",
    "log_model",
    "train_cnn",
    "train_logistic_regression",
    "train_mlp",
    "train_torch_mlp",
]

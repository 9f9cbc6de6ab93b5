"""Models as MLflow models: logged in the job's run, registered, loaded back by URI."""

from __future__ import annotations

import re
import shutil
from typing import Any, TypedDict

import sklearn
import torch
from art.estimators.classification.classifier import ClassifierMixin
from sklearn.base import BaseEstimator
from torch import nn

from theodolite.sdk import current, task
from theodolite.sdk.checks import bad_input
from theodolite_models.estimators import describe, to_art, unwrap

# MLflow refuses / : . % " ' in model names.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")
_SCHEMES = ("models:/", "runs:/", "mlflow-artifacts:/", "s3://", "file://", "/")


class ModelRef(TypedDict):
    uri: str
    flavor: str
    registered_name: str | None
    version: int | None
    registry_uri: str | None


def _flavor(model: Any) -> tuple[Any, dict[str, Any]]:
    """The MLflow flavor module for ``model`` and what its log_model/save_model need."""
    if isinstance(model, nn.Module):
        import mlflow.pytorch

        # "pickle": the default "pt2" export gives back a graph that ART cannot train or switch
        # to eval mode. The module's class lives in an installed plugin, so it unpickles.
        version = torch.__version__.split("+")[0]
        return mlflow.pytorch, {
            "serialization_format": "pickle",
            "pip_requirements": [f"torch=={version}"],
        }
    import mlflow.sklearn

    return mlflow.sklearn, {"pip_requirements": [f"scikit-learn=={sklearn.__version__}"]}


@task
def log_model(
    model: BaseEstimator | nn.Module | ClassifierMixin,
    name: str,
    register_as: str | None = None,
) -> ModelRef:
    """Log a model as an MLflow model in the job's run (sklearn or pytorch flavor), and register
    it in the model registry under ``register_as``. Outside a job it is saved under ./outputs.

    Args:
        model: a scikit-learn classifier, a PyTorch module or an ART classifier around one
        name: the logged model's name (letters, digits, '_' and '-')
        register_as: a registered model name: adds a new version of it
    """
    task_name = "models.log_model"
    for field, value in (("name", name), ("register_as", register_as)):
        if value is not None and not _NAME.match(value):
            raise bad_input(
                task_name, field, f"must be letters, digits, '_' and '-', got {value!r}"
            )
    metadata = {"theodolite": describe(model)}
    raw = unwrap(model)
    if not isinstance(raw, BaseEstimator | nn.Module):
        raise bad_input(task_name, "model", f"cannot be logged: {type(raw).__name__}")
    flavor, options = _flavor(raw)
    context = current()
    if context.mlflow_run_id is None:
        target = (context.output_dir / "models" / name).resolve()
        if target.exists():
            shutil.rmtree(target)
        flavor.save_model(raw, path=str(target), metadata=metadata, **options)
        if register_as:
            print(f"[{context.step}] no MLflow run: {name} saved at {target}, not registered")
        return {
            "uri": str(target),
            "flavor": flavor.FLAVOR_NAME,
            "registered_name": None,
            "version": None,
            "registry_uri": None,
        }
    info = flavor.log_model(
        raw,
        name=name,
        run_id=context.mlflow_run_id,
        registered_model_name=register_as,
        metadata=metadata,
        **options,
    )
    version = info.registered_model_version
    return {
        "uri": info.model_uri,
        "flavor": flavor.FLAVOR_NAME,
        "registered_name": register_as,
        "version": int(version) if version is not None else None,
        "registry_uri": f"models:/{register_as}/{version}" if register_as else None,
    }


@task
def load_model(uri: str, clip_min: float = 0.0, clip_max: float = 1.0) -> ClassifierMixin:
    """Load an MLflow model (sklearn or pytorch flavor) and wrap it as an ART classifier.

    Args:
        uri: models:/<name>/<version>, models:/<name>@<alias>, models:/<model id>,
            runs:/<run id>/<name>, or a local folder
        clip_min: smallest valid input value
        clip_max: largest valid input value
    """
    task_name = "models.load_model"
    if not uri or not uri.strip():
        raise bad_input(task_name, "uri", "is empty: give models:/<name>/<version> or runs:/...")
    if not uri.startswith(_SCHEMES) and "://" in uri:
        raise bad_input(task_name, "uri", f"{uri!r}: expected models:/, runs:/ or a local folder")
    import mlflow.models

    try:
        info = mlflow.models.get_model_info(uri)
    except Exception as exc:
        reason = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        raise bad_input(task_name, "uri", f"names no MLflow model: {uri!r} ({reason})") from exc
    metadata = (info.metadata or {}).get("theodolite", {})
    if "pytorch" in info.flavors:
        import mlflow.pytorch

        raw = mlflow.pytorch.load_model(uri, map_location="cpu")
    elif "sklearn" in info.flavors:
        import mlflow.sklearn

        raw = mlflow.sklearn.load_model(uri)
    else:
        flavors = ", ".join(info.flavors)
        raise bad_input(task_name, "uri", f"{uri!r} is a {flavors} model: only sklearn and pytorch")
    return to_art(
        task_name,
        raw,
        (clip_min, clip_max),
        metadata.get("input_shape"),
        metadata.get("nb_classes"),
    )

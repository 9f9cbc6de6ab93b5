"""The MLflow model registry, read through the gateway: a training job's registered model can be
attacked by later jobs through a ``uri`` parameter ``models:/<name>/<version>``."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter

from theodolite_api.deps import StateDep
from theodolite_api.schemas.common import Limit, Offset, Page
from theodolite_api.schemas.models import ModelPublic, ModelVersionPublic

router = APIRouter(prefix="/models", tags=["models"])


@router.get("")
async def list_models(state: StateDep, limit: Limit = 50, offset: Offset = 0) -> Page[ModelPublic]:
    """Registered models, by name."""
    models = await state.mlflow.registered_models()
    data = []
    for model in models[offset : offset + limit]:
        latest = max((int(v["version"]) for v in model.get("latest_versions", [])), default=None)
        data.append(
            ModelPublic(
                name=model["name"],
                description=model.get("description") or None,
                latest_version=str(latest) if latest is not None else None,
                created_at_ms=model.get("creation_timestamp"),
                mlflow_url=f"{state.settings.mlflow.ui_url}/#/models/{quote(model['name'])}",
            )
        )
    return Page(data=data, count=len(models))


@router.get("/{name}/versions", responses={404: {"description": "No such registered model"}})
async def list_model_versions(name: str, state: StateDep) -> Page[ModelVersionPublic]:
    """Every version of one registered model, newest first."""
    versions = await state.mlflow.model_versions(name)
    data = [
        ModelVersionPublic(
            name=v["name"],
            version=str(v["version"]),
            uri=f"models:/{v['name']}/{v['version']}",
            run_id=v.get("run_id") or None,
            source=v.get("source"),
            status=v.get("status"),
            created_at_ms=v.get("creation_timestamp"),
        )
        for v in versions
    ]
    return Page(data=data, count=len(data))

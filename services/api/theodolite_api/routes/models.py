"""The MLflow model registry, read through the gateway: a training job's registered model can be
attacked by later jobs through a ``uri`` parameter ``models:/<name>/<version>``. A caller sees
the versions logged by runs of their groups' jobs, and the models that have one."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter

from theodolite.web.errors import NotFound
from theodolite_api.auth.authenticate import CallerDep
from theodolite_api.deps import SessionDep, StateDep
from theodolite_api.repositories import jobs as job_repo
from theodolite_api.schemas.common import Limit, Offset, Page
from theodolite_api.schemas.models import ModelPublic, ModelVersionPublic

router = APIRouter(prefix="/models", tags=["models"])


@router.get("")
async def list_models(
    state: StateDep, session: SessionDep, caller: CallerDep, limit: Limit = 50, offset: Offset = 0
) -> Page[ModelPublic]:
    """Registered models, by name."""
    every = await state.mlflow.registered_models()
    runs = await job_repo.visible_run_ids(
        session=session,
        run_ids=[
            v["run_id"] for m in every for v in m.get("latest_versions", []) if v.get("run_id")
        ],
        groups=caller.visible_groups(),
    )
    models = [
        m
        for m in every
        if caller.is_admin or any(v.get("run_id") in runs for v in m.get("latest_versions", []))
    ]
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
async def list_model_versions(
    name: str, state: StateDep, session: SessionDep, caller: CallerDep
) -> Page[ModelVersionPublic]:
    """Every version of one registered model the caller may see, newest first."""
    every = await state.mlflow.model_versions(name)
    runs = await job_repo.visible_run_ids(
        session=session,
        run_ids=[v["run_id"] for v in every if v.get("run_id")],
        groups=caller.visible_groups(),
    )
    versions = [v for v in every if caller.is_admin or v.get("run_id") in runs]
    if not versions:
        raise NotFound(f"no registered model {name!r}")
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

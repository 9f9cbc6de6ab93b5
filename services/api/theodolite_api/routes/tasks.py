from __future__ import annotations

from fastapi import APIRouter

from theodolite.sdk.discovery import PluginSpec
from theodolite_api.deps import SessionDep, StateDep
from theodolite_api.repositories import plugins as plugin_repo
from theodolite_api.schemas.common import Page
from theodolite_api.schemas.tasks import TaskPublic

router = APIRouter(prefix="/tasks", tags=["tasks"])


@router.get("")
async def list_tasks(session: SessionDep, state: StateDep) -> Page[TaskPublic]:
    """Every task graphs can call now: the registry's latest versions, and the plugins
    installed where workers run jobs."""
    catalogue = await plugin_repo.catalogue(session=session)
    for name, found in (await state.registry.catalogue()).items():
        catalogue.plugins[name] = PluginSpec(
            name=name, version=found["version"], module=found["module"], tasks=found["tasks"]
        )
    data = [
        TaskPublic(
            reference=f"{plugin.name}.{name}",
            plugin=plugin.name,
            version=plugin.version,
            description=spec.description,
            retries=spec.retries,
            inputs={
                k: v.model_dump(by_alias=True, exclude_defaults=True)
                for k, v in spec.inputs.items()
            },
            output=spec.output.model_dump(by_alias=True, exclude_defaults=True),
        )
        for plugin in sorted(catalogue.plugins.values(), key=lambda p: p.name)
        for name, spec in sorted(plugin.tasks.items())
    ]
    return Page(data=data, count=len(data))

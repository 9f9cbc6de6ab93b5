"""The client's generated modules are what their generators write today: ``sync.py`` from
``aio.py`` (unasync, at build time: the module imported here is the one the install made),
``openapi.json`` from the api's app and ``_wire.py`` from ``openapi.json`` (datamodel-codegen).
A change to one side that is not regenerated fails here, naming the command that regenerates it."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from theodolite.client import aio, sync

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "shared" / "client" / "scripts"


def _script(name: str) -> ModuleType:
    """A generator script (they are part of no installed distribution)."""
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _generator() -> ModuleType:
    return _script("generate_client")


def _differences(committed: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Which paths and schemas differ, to say where the api changed."""
    names = []
    for section, left, right in (
        ("path", committed.get("paths", {}), current.get("paths", {})),
        (
            "schema",
            committed.get("components", {}).get("schemas", {}),
            current.get("components", {}).get("schemas", {}),
        ),
    ):
        names += [
            f"{section} {k}"
            for k in sorted(left.keys() | right.keys())
            if left.get(k) != right.get(k)
        ]
    return names or ["the document's other parts"]


def test_the_sync_client_is_aio_py_unasynced() -> None:
    generator = _script("unasync_aio")
    installed = Path(sync.__file__)
    assert installed.read_text() == generator.sync_source(Path(aio.__file__)), (
        f"{installed} is not what aio.py generates: change aio.py (never sync.py), "
        f"then run `{generator.REGENERATE}` (or reinstall the client)"
    )
    assert ROOT not in installed.parents or not _tracked(installed), "sync.py is never committed"


def _tracked(path: Path) -> bool:
    done = subprocess.run(
        ["git", "ls-files", "--error-unmatch", str(path)], cwd=ROOT, capture_output=True
    )
    return done.returncode == 0


def test_the_committed_openapi_document_is_the_apis() -> None:
    generator = _generator()
    committed = json.loads(generator.OPENAPI.read_text())
    current = generator.api_document()
    assert committed == current, (
        "theodolite/client/openapi.json is behind the api ("
        + ", ".join(_differences(committed, current))
        + f"): run `{generator.REGENERATE_MODELS}` and commit openapi.json and _wire.py"
    )


def test_the_wire_models_are_generated_from_the_committed_document(tmp_path: Path) -> None:
    generator = _generator()
    regenerated = tmp_path / "_wire.py"
    regenerated.write_text(generator.wire_source(json.loads(generator.OPENAPI.read_text())))
    assert regenerated.read_text() == generator.WIRE.read_text(), (
        "theodolite/client/_wire.py is not what openapi.json generates (never edit it by hand): "
        f"run `{generator.REGENERATE_MODELS}`"
    )


def _answer(schema: str) -> dict[str, Any]:
    content = {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}
    return {"get": {"responses": {"200": {"description": "OK", "content": content}}}}


def test_answers_are_read_leniently_and_derived_as_the_api_derives_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    thing = {
        "id": {"type": "string", "format": "uuid"},
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "tags": {"type": "array", "items": {"type": "string"}},
        "runs": {"type": "integer"},
        "score": {"type": "number"},
    }
    document = {
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "paths": {"/things": _answer("Thing"), "/things/new": _answer("ThingCreated")},
        "components": {
            "schemas": {
                "Thing": {"type": "object", "properties": thing, "required": list(thing)},
                "ThingCreated": {
                    "type": "object",
                    "properties": {**thing, "secret": {"type": "string"}},
                    "required": [*thing, "secret"],
                },
                "ThingCreate": {"type": "object", "properties": {"note": {"type": "string"}}},
            }
        },
    }
    wire = tmp_path / "wire_example.py"
    wire.write_text(_generator().wire_source(document))
    spec = importlib.util.spec_from_file_location("wire_example", wire)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "wire_example", module)  # pydantic resolves names there
    spec.loader.exec_module(module)

    created = module.ThingCreated.model_validate(
        {"id": "8d4e0a52-3a8e-4f0e-9d7c-2b1f6f0c9a11", "score": 0.5, "secret": "s", "new": 1}
    )
    assert isinstance(created, module.Thing)  # FastAPI flattened the subclass: derived again
    assert (created.note, created.tags, created.runs) == (
        None,
        [],
        0,
    )  # empty values may be missing
    assert created.model_extra == {"new": 1} and created["score"] == 0.5  # the client's ApiModel
    assert not hasattr(module, "ThingCreate")  # request bodies are calls.py's

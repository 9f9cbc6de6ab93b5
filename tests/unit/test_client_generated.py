"""The client's generated modules are what their generators write today: ``sync.py`` from
``aio.py`` (unasync), ``openapi.json`` from the api's app and ``_wire.py`` from ``openapi.json``
(datamodel-codegen). A change to one side that is not regenerated fails here, naming the command
that regenerates it."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = ROOT / "shared" / "client" / "scripts" / "generate_client.py"


def _generator() -> ModuleType:
    """The generator script (it is part of no installed distribution)."""
    spec = importlib.util.spec_from_file_location("generate_client", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def test_the_sync_client_is_aio_py_unasynced(tmp_path: Path) -> None:
    generator = _generator()
    regenerated = tmp_path / "sync.py"
    regenerated.write_text(generator.sync_source())
    assert regenerated.read_text() == generator.SYNC.read_text(), (
        "theodolite/client/sync.py is not what aio.py generates: change aio.py (never sync.py), "
        f"then run `{generator.REGENERATE_SYNC}`"
    )


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

"""Write the client's generated modules: ``make client-sync``, ``make client-models``.

``sync``: ``theodolite/client/sync.py`` from ``aio.py`` (unasync_aio.py, which the build hook
runs too), for an editable install whose aio.py changed. sync.py is not committed.

``models``: the api's OpenAPI document, ``create_app().openapi()`` (the app is built, nothing is
started), goes to ``theodolite/client/openapi.json``; datamodel-codegen turns its answer schemas,
as the client reads them, into ``theodolite/client/_wire.py``, on which ``models.py`` adds the
client's behaviour. Both are committed, so the client needs neither the api nor a generator;
ruff sorts and formats _wire.py as the repository's code.

``tests/unit/test_client_generated.py`` fails when a generated module is not what this writes now.
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import unasync_aio  # noqa: E402  # beside this script, which the build hook runs too

ROOT = Path(__file__).resolve().parents[3]
CLIENT = ROOT / "shared" / "client" / "theodolite" / "client"
OPENAPI = CLIENT / "openapi.json"
WIRE = CLIENT / "_wire.py"
REGENERATE_MODELS = "make client-models"

WIRE_HEADER = f"""\
# Generated from openapi.json by shared/client/scripts/generate_client.py: do not edit.
# Regenerate with `{REGENERATE_MODELS}` after a change to the api's schemas."""


def _tidied(source: str, path: Path) -> str:
    """The source with its imports sorted and formatted by ruff, as if it were ``path``."""
    fixed = _ruff(source, path, "check", "--fix", "--select=I,F401", "--exit-zero", "--quiet")
    return _ruff(fixed, path, "format", "--quiet")


def _ruff(source: str, path: Path, *args: str) -> str:
    """``ruff`` over the source as if it were ``path``, with the repository's settings."""
    done = subprocess.run(
        [sys.executable, "-m", "ruff", *args, "--stdin-filename", str(path), "-"],
        input=source,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    return done.stdout


# --- openapi.json and _wire.py ----------------------------------------------------------------


# The client reads leniently: the api always sends every field, but a field with an empty value
# to fall back on may be missing (an older api, a trimmed answer, a test's fake), so it reads as
# that value. Identities, names, times and measurements stay required.
EMPTY_VALUES: dict[str, Any] = {"array": [], "object": {}, "boolean": False, "integer": 0}

CODEGEN_OPTIONS = [
    "--input-file-type=openapi",
    "--output-model-type=pydantic_v2.BaseModel",
    "--base-class=theodolite.client._base.ApiModel",
    "--target-python-version=3.11",
    "--output-datetime-class=datetime",
    "--use-standard-collections",
    "--use-union-operator",
    "--use-subclass-enum",
    # A field with a default is not also nullable: `history: list[...] = []`, not `| None`.
    "--strict-nullable",
    "--use-schema-description",
    "--use-single-line-docstring",
    "--disable-timestamp",
    "--formatters=builtin",
]


def api_document() -> dict[str, Any]:
    """The api's OpenAPI document, as the running api serves it at /openapi.json."""
    from theodolite_api.app import create_app

    return create_app().openapi()


def document_text(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _refs(node: Any) -> set[str]:
    """The component schemas a part of the document refers to."""
    if isinstance(node, dict):
        found = {node["$ref"].rsplit("/", 1)[1]} if "$ref" in node else set()
        return found.union(*(_refs(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(value) for value in node))
    return set()


def _answers(document: dict[str, Any]) -> set[str]:
    """The schemas the api answers with (successful responses and what they contain)."""
    schemas = document["components"]["schemas"]
    todo = {
        name
        for operations in document["paths"].values()
        for operation in operations.values()
        for code, response in operation.get("responses", {}).items()
        if code.startswith("2")
        for name in _refs(response)
    }
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        seen.add(name)
        todo |= _refs(schemas[name]) - seen
    return seen


def _nullable(field: dict[str, Any]) -> bool:
    return any(branch.get("type") == "null" for branch in field.get("anyOf", []))


def _as_the_client_reads(schema: dict[str, Any]) -> dict[str, Any]:
    """One schema: titles dropped (noise in code), fields with an empty value optional."""
    schema = copy.deepcopy(schema)
    schema.pop("title", None)
    required = schema.get("required", [])
    for name, field in schema.get("properties", {}).items():
        field.pop("title", None)
        if name not in required:
            continue
        if _nullable(field):
            field.setdefault("default", None)
        elif field.get("type") in EMPTY_VALUES:
            field.setdefault("default", EMPTY_VALUES[field["type"]])
        else:
            continue
        required.remove(name)
    if "required" in schema and not required:
        del schema["required"]
    return schema


def _fields(schema: dict[str, Any]) -> dict[str, Any]:
    """A schema's fields, each with whether it is required."""
    required = set(schema.get("required", []))
    return {name: (field, name in required) for name, field in schema.get("properties", {}).items()}


def _base_of(name: str, schemas: dict[str, dict[str, Any]]) -> str | None:
    """The largest other schema whose fields the schema begins with, unchanged."""
    # FastAPI writes a subclass's schema out in full (JobCreated holds every field of JobPublic):
    # deriving it again keeps the client's classes related as the api's are.
    fields = list(_fields(schemas[name]).items())
    bases = [
        other
        for other, schema in schemas.items()
        if other != name
        and 1 < len(_fields(schema)) < len(fields)
        and list(_fields(schema).items()) == fields[: len(_fields(schema))]
    ]
    return max(bases, key=lambda other: len(_fields(schemas[other])), default=None)


def _extending(schema: dict[str, Any], base: str, base_schema: dict[str, Any]) -> dict[str, Any]:
    """The schema as the base and what it adds, so the generated class derives from the base's."""
    own = {k: v for k, v in schema["properties"].items() if k not in base_schema["properties"]}
    added: dict[str, Any] = {"type": "object", "properties": own}
    required = [name for name in schema.get("required", []) if name in own]
    if required:
        added["required"] = required
    extended = {k: v for k, v in schema.items() if k not in ("properties", "required", "type")}
    return {**extended, "allOf": [{"$ref": f"#/components/schemas/{base}"}, added]}


def client_document(document: dict[str, Any]) -> dict[str, Any]:
    """The answer schemas and the enums, as the client reads them."""
    # Request bodies are built by calls.py; Page_* are read by the client's one generic Page.
    schemas = document["components"]["schemas"]
    kept = {
        name: _as_the_client_reads(schema)
        for name, schema in schemas.items()
        if (name in _answers(document) and not name.startswith("Page_")) or "enum" in schema
    }
    flat = dict(kept)
    for name in flat:
        base = _base_of(name, flat)
        if base is not None:
            kept[name] = _extending(flat[name], base, flat[base])
    return {
        "openapi": document["openapi"],
        "info": document["info"],
        "paths": {},
        "components": {"schemas": kept},
    }


def wire_source(document: dict[str, Any]) -> str:
    """The text of ``_wire.py`` for an OpenAPI document."""
    with tempfile.TemporaryDirectory() as folder:
        schema = Path(folder) / "openapi.json"
        schema.write_text(document_text(client_document(document)))
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "datamodel_code_generator",
                f"--input={schema}",
                f"--custom-file-header={WIRE_HEADER}",
                *CODEGEN_OPTIONS,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    return _tidied(done.stdout, WIRE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["sync", "models"])
    if parser.parse_args().what == "sync":
        print(f"wrote {unasync_aio.write_sync().relative_to(ROOT)}")
        return
    document = api_document()
    OPENAPI.write_text(document_text(document))
    WIRE.write_text(wire_source(document))
    print(f"wrote {OPENAPI.relative_to(ROOT)} and {WIRE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

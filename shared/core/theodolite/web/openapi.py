"""The OpenAPI document says what the errors look like: every refusal is RFC 9457 problem+json
(``errors.problem_response``), so each operation's 4xx and 5xx answers are declared with that
media type and schema, and the ones any route may give (no key, a body that does not parse, a
rate limit, a dependency away) are declared everywhere. Clients and schemathesis then find
every status and content type they meet in the document."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from theodolite.problems import Problem
from theodolite.web.errors import PROBLEM_JSON

# What any operation may answer, besides what it declares itself.
EVERYWHERE = {
    400: "The body could not be read (not JSON, or not the form expected)",
    401: "No API key, or one that does not hold (unknown, expired, revoked)",
    403: "The key lacks the scope, or the caller's role does not allow it",
    404: "No such thing (named in the path, the query or the body), or one of another group",
    422: "The request has problems: each one is named",
    429: "Too many writes with this key: see Retry-After",
    503: "A service the answer needs (database, broker, MLflow, registry) does not answer",
}


class ProblemDetails(BaseModel):
    """RFC 9457 problem details, with the problems of the request one by one."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str
    problems: list[Problem] | None = None
    problems_omitted: int | None = None  # problems past the first 100, not listed


def _declare(operation: dict[str, Any]) -> None:
    responses: dict[Any, Any] = operation.setdefault("responses", {})
    for code, description in EVERYWHERE.items():
        responses.setdefault(str(code), {"description": description})
    content = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}}
    for code, response in responses.items():
        if str(code)[0] in "45":
            response["content"] = content


def declare_problem_responses(app: FastAPI, prefix: str = "/api/") -> None:
    """Make ``app``'s document declare problem+json on the operations under ``prefix``."""
    build = app.openapi

    def document() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()  # FastAPI keeps it in app.openapi_schema: changed in place, once
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        described = ProblemDetails.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(described.pop("$defs", {}))
        schemas["ProblemDetails"] = described
        for path, operations in schema.get("paths", {}).items():
            if path.startswith(prefix):
                for operation in operations.values():
                    _declare(operation)
        return schema

    app.openapi = document  # type: ignore[method-assign]

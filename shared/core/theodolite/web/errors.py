"""Domain errors, raised anywhere and mapped to RFC 9457 problem+json once, here."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from theodolite.problems import Problem, ProblemsError

PROBLEM_JSON = "application/problem+json"


class DomainError(Exception):
    status_code = 400
    title = "Bad request"

    def __init__(self, detail: str, problems: list[Problem] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.problems = problems or []


class NotFound(DomainError):
    status_code = 404
    title = "Not found"


class Conflict(DomainError):
    status_code = 409
    title = "Conflict"


class InvalidSubmission(DomainError):
    status_code = 422
    title = "Invalid submission"


class InvalidArchive(DomainError):
    status_code = 422
    title = "Invalid archive"


class PayloadTooLarge(DomainError):
    status_code = 413
    title = "Payload too large"


class DependencyUnavailable(DomainError):
    status_code = 503
    title = "Service unavailable"


def problem_response(
    status: int, title: str, detail: str, request: Request, problems: list[Problem] | None = None
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": str(request.url.path),
    }
    if problems:
        body["problems"] = [p.model_dump() for p in problems]
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def _field_of(location: tuple[Any, ...]) -> str:
    parts = [str(p) for p in location if p not in ("body", "query", "path")]
    return ".".join(parts) or "request"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        return problem_response(exc.status_code, exc.title, exc.detail, request, exc.problems)

    @app.exception_handler(ProblemsError)
    async def _problems(request: Request, exc: ProblemsError) -> JSONResponse:
        return problem_response(422, exc.title, str(exc), request, exc.problems)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            Problem(field=_field_of(tuple(e["loc"])), message=e["msg"]) for e in exc.errors()
        ]
        return problem_response(
            422, "Invalid request", f"{len(problems)} problem(s) in the request", request, problems
        )

    @app.exception_handler(SQLAlchemyError)
    async def _database(request: Request, exc: SQLAlchemyError) -> JSONResponse:
        # The database being away is not the client's fault nor a bug: say so, and recover
        # by itself once it is back (the pool pre-pings).
        if isinstance(exc, (OperationalError, InterfaceError, SATimeoutError)) or isinstance(
            getattr(exc, "orig", None), OSError
        ):
            return problem_response(
                503, "Service unavailable", "the database does not answer; retry shortly", request
            )
        raise exc

    @app.exception_handler(OSError)
    async def _connection(request: Request, exc: OSError) -> JSONResponse:
        return problem_response(
            503, "Service unavailable", f"a dependency does not answer: {exc}", request
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem_response(exc.status_code, str(exc.detail), str(exc.detail), request)

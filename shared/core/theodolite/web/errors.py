"""Domain errors, raised anywhere and mapped to RFC 9457 problem+json once, here."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, ClassVar, TypeVar

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Message

from theodolite.problems import Problem, ProblemsError

PROBLEM_JSON = "application/problem+json"
# An answer lists at most this many problems (a hostile body can have millions) and says how
# many it left out.
MAX_PROBLEMS = 100

T = TypeVar("T")


class DomainError(Exception):
    """An error to answer as problem+json: its ``status_code`` and ``title`` are class keywords
    (``class Gone(DomainError, status_code=410, title="Gone")``) or class attributes."""

    status_code: ClassVar[int] = 400
    title: ClassVar[str] = "Bad request"

    def __init_subclass__(
        cls, *, status_code: int | None = None, title: str | None = None, **kwargs: Any
    ) -> None:
        super().__init_subclass__(**kwargs)
        if status_code is not None:
            cls.status_code = status_code
        if title is not None:
            cls.title = title

    def __init__(self, detail: str, problems: list[Problem] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.problems = problems or []


class NotFound(DomainError, status_code=404, title="Not found"):
    """No such thing, or none the caller may see."""


def found_or_404(value: T | None, detail: str) -> T:
    """``value``, or ``NotFound(detail)`` when a lookup found nothing."""
    if value is None:
        raise NotFound(detail)
    return value


class Conflict(DomainError, status_code=409, title="Conflict"):
    """The request clashes with what exists (a name taken, a state that forbids it)."""


class InvalidSubmission(DomainError, status_code=422, title="Invalid submission"):
    """A job or sweep whose parameters or graph do not check."""


class InvalidArchive(DomainError, status_code=422, title="Invalid archive"):
    """An uploaded archive that is unsafe or unreadable."""


class PayloadTooLarge(DomainError, status_code=413, title="Payload too large"):
    """A body over its limit."""


class DependencyUnavailable(DomainError, status_code=503, title="Service unavailable"):
    """A service the answer needs (the database, MLflow, the registry) does not answer."""


# A multipart form's own bytes around the archive (boundaries, part headers, other fields).
FORM_OVERHEAD_BYTES = 64 * 1024


def _body_too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the request body is larger than the limit of {limit} bytes",
        [Problem(field="body", message=f"larger than the limit of {limit} bytes")],
    )


class ArchiveUploadRoute(APIRoute):
    """A route class for routers that take archive uploads: a body longer than the service's
    ``settings.archive_limits.max_bytes`` (plus the form's overhead) is refused with 413 before
    it is spooled, by its Content-Length, or as it streams when it has none or lies."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def bounded(request: Request) -> Response:
            limit = request.app.state.settings.archive_limits.max_bytes + FORM_OVERHEAD_BYTES
            declared = request.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise _body_too_large(limit)
            received = 0
            receive = request.receive

            async def capped() -> Message:
                nonlocal received
                message = await receive()
                received += len(message.get("body", b""))
                if received > limit:
                    raise _body_too_large(limit)
                return message

            try:
                return await handler(Request(request.scope, capped))
            except StarletteHTTPException as exc:
                # FastAPI answers any failure while parsing a form with a 400: say why.
                if received > limit:
                    raise _body_too_large(limit) from exc
                raise

        return bounded


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
        body["problems"] = [p.model_dump() for p in problems[:MAX_PROBLEMS]]
        if len(problems) > MAX_PROBLEMS:
            body["problems_omitted"] = len(problems) - MAX_PROBLEMS
            body["detail"] = f"{detail} (the first {MAX_PROBLEMS} of {len(problems)} shown)"
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def _field_of(location: tuple[Any, ...]) -> str:
    parts = [str(p) for p in location if p not in ("body", "query", "path")]
    return ".".join(parts) or "request"


def _validation_problem(error: Any) -> Problem:
    field = _field_of(tuple(error["loc"]))
    if error.get("type") == "extra_forbidden":
        # pydantic says "Extra inputs are not permitted": say which, so a typo is found.
        return Problem(field=field, message=f"unknown field {field.rsplit('.', 1)[-1]!r}")
    return Problem(field=field, message=error["msg"])


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        return problem_response(exc.status_code, exc.title, exc.detail, request, exc.problems)

    @app.exception_handler(ProblemsError)
    async def _problems(request: Request, exc: ProblemsError) -> JSONResponse:
        return problem_response(422, exc.title, str(exc), request, exc.problems)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [_validation_problem(e) for e in exc.errors()]
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
            return await _domain(
                request, DependencyUnavailable("the database does not answer; retry shortly")
            )
        raise exc

    @app.exception_handler(OSError)
    async def _connection(request: Request, exc: OSError) -> JSONResponse:
        return await _domain(request, DependencyUnavailable(f"a dependency does not answer: {exc}"))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem_response(exc.status_code, str(exc.detail), str(exc.detail), request)

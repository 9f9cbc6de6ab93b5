"""Worker credentials on the internal listener: each worker holds only its own token,
``<worker id>.<HMAC-SHA256(worker secret, worker id)>``, so it cannot act as another worker."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, Header, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from theodolite.web.errors import problem_response
from theodolite_api.auth.worker_keys import token_worker, worker_secret
from theodolite_api.deps import SettingsDep

WORKER_ID_HEADER = "Theodolite-Worker-Id"

worker_bearer = HTTPBearer(auto_error=False, scheme_name="worker")


class WorkerRefused(Exception):
    """401 (no valid worker token) or 403 (the token is another worker's)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def install_worker_auth_error_handler(app: FastAPI) -> None:
    @app.exception_handler(WorkerRefused)
    async def _refused(request: Request, exc: WorkerRefused) -> JSONResponse:
        title = "Unauthorized" if exc.status == 401 else "Forbidden"
        response = problem_response(exc.status, title, exc.detail, request)
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="theodolite-workers"'
        return response


async def authenticated_worker(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(worker_bearer)],
    named: Annotated[str | None, Header(alias=WORKER_ID_HEADER)] = None,
) -> str:
    """The worker whose token the request carries (401 without a valid one; 403 when the request
    names another worker)."""
    if credentials is None:
        raise WorkerRefused(401, "a worker token is required")
    worker_id = token_worker(worker_secret(settings), credentials.credentials)
    if worker_id is None:
        raise WorkerRefused(401, "the worker token is not valid")
    if named is not None and named != worker_id:
        raise WorkerRefused(403, f"the token is not {named!r}'s")
    return worker_id


WorkerDep = Annotated[str, Depends(authenticated_worker)]

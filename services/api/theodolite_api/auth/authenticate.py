"""``Authorization: Bearer <API key or OIDC token>`` to a ``Caller``, once per request."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Security
from fastapi.params import Depends as DependsParam
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel.ext.asyncio.session import AsyncSession

from theodolite.db.identity_tables import User
from theodolite.db.tables import utcnow
from theodolite.web.errors import problem_response
from theodolite_api.auth.callers import Caller, Role, Scope, Unauthorized, expand
from theodolite_api.auth.keys import secret_matches, split_key
from theodolite_api.auth.oidc import OidcVerifier
from theodolite_api.auth.rate_limits import TooManyRequests, write_limiter
from theodolite_api.deps import SessionDep, StateDep
from theodolite_api.repositories import identity as identity_repo

log = logging.getLogger(__name__)

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="An API key (`thd_...`, from `theodolite admin keys create`) or, where the "
    "testbed is configured for it, an OIDC access token.",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]
READING_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def _caller_of(
    session: AsyncSession, user: User, scopes: frozenset[Scope], key_id: uuid.UUID | None = None
) -> Caller:
    if user.disabled:
        raise Unauthorized(f"user {user.name!r} is disabled")
    memberships = await identity_repo.memberships(session=session, user_id=user.id)
    return Caller(
        user_id=user.id,
        name=user.name,
        is_admin=user.is_admin,
        roles={m.group_id: Role(m.role) for m, _, _ in memberships},
        scopes=scopes,
        group_names={g.id: g.name for _, _, g in memberships},
        key_id=key_id,
    )


async def _key_caller(session: AsyncSession, token: str, touch_after: timedelta) -> Caller:
    parts = split_key(token)
    key = (
        None
        if parts is None
        else await identity_repo.key_by_prefix(session=session, prefix=parts[0])
    )
    if parts is None or key is None or not secret_matches(parts[1], key.secret_sha256):
        raise Unauthorized("unknown API key")
    now = utcnow()
    if key.revoked_at is not None:
        raise Unauthorized(f"API key {key.prefix} was revoked")
    if key.expires_at is not None and key.expires_at <= now:
        raise Unauthorized(f"API key {key.prefix} expired at {key.expires_at.isoformat()}")
    user = await identity_repo.get_user(session=session, user_id=key.user_id)
    assert user is not None, "keys are deleted with their user"
    caller = await _caller_of(session, user, expand(key.scopes), key.id)
    if key.last_used_at is None or now - key.last_used_at >= touch_after:
        key.last_used_at = now  # committed by authenticate
    return caller


async def _token_caller(session: AsyncSession, verifier: OidcVerifier, token: str) -> Caller:
    claims = await verifier.claims(token)
    subject = f"{claims['iss']} {claims['sub']}"
    name = str(claims.get(verifier.settings.username_claim) or claims["sub"])
    claimed = verifier.groups_of(claims)
    user = await identity_repo.user_by_subject(session=session, subject=subject)
    if user is None:
        if await identity_repo.user_by_name(session=session, name=name) is not None:
            raise Unauthorized(f"the user name {name!r} belongs to another account")
        user = User(name=name, oidc_subject=subject)
        session.add(user)
        await session.flush()
    user.is_admin = verifier.settings.admin_group in claimed
    await _sync_memberships(session, user, claimed)
    return await _caller_of(session, user, frozenset(Scope))


async def _sync_memberships(session: AsyncSession, user: User, claimed: dict[str, str]) -> None:
    """The token's groups are the user's memberships: groups it names that exist (others are
    ignored: administrators create groups), at the role it names."""
    held = {
        group.name: group
        for _, _, group in await identity_repo.memberships(session=session, user_id=user.id)
    }
    for name, role in claimed.items():
        group = held.get(name) or await identity_repo.group_by_name(session=session, name=name)
        if group is None or role not in {r.value for r in Role}:
            continue
        await identity_repo.set_membership(
            session=session, user_id=user.id, group_id=group.id, role=role
        )
    for name, group in held.items():
        if name not in claimed:
            await identity_repo.remove_membership(
                session=session, user_id=user.id, group_id=group.id
            )


async def authenticate(
    request: Request, credentials: Credentials, state: StateDep, session: SessionDep
) -> Caller:
    if credentials is None:
        raise Unauthorized("an API key is needed: send Authorization: Bearer <key>")
    token = credentials.credentials
    if split_key(token) is not None or state.oidc is None:
        touch_after = timedelta(seconds=state.settings.auth.key_last_used_resolution_s)
        caller = await _key_caller(session, token, touch_after)
    else:
        caller = await _token_caller(session, state.oidc, token)
    # End the look-up's transaction: its connection goes back to the pool now, not when a
    # long response (an event stream) ends.
    await session.commit()
    return caller


CallerDep = Annotated[Caller, Depends(authenticate)]


def authorized(write_scope: Scope, read_scope: Scope = Scope.READ) -> Any:
    """A router's check: every route needs a caller; reading needs ``read_scope``, anything else
    ``write_scope``. Routes check ownership of what they touch on top."""

    async def check(request: Request, caller: CallerDep, state: StateDep) -> None:
        if request.method in READING_METHODS:
            caller.require(read_scope)
            return
        caller.require(write_scope)
        auth = state.settings.auth
        write_limiter(auth.write_rate_limit, auth.rate_limit_storage).hit(caller)

    dependency: DependsParam = Depends(check)
    return dependency


def install_auth_error_handler(app: FastAPI) -> None:
    """401s say how to authenticate (RFC 6750: ``WWW-Authenticate: Bearer``), 429s when to come
    back (``Retry-After``)."""

    @app.exception_handler(Unauthorized)
    async def _unauthorized(request: Request, exc: Unauthorized) -> JSONResponse:
        response = problem_response(401, exc.title, exc.detail, request, exc.problems)
        response.headers["WWW-Authenticate"] = 'Bearer realm="theodolite"'
        return response

    @app.exception_handler(TooManyRequests)
    async def _too_many(request: Request, exc: TooManyRequests) -> JSONResponse:
        response = problem_response(429, exc.title, exc.detail, request)
        response.headers["Retry-After"] = str(exc.retry_after_s)
        return response

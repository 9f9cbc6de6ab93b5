"""Keys, scopes and callers, the route check on every /api/v1 route, and OIDC tokens checked
against a JWKS the test serves from a key pair it makes."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from theodolite.web.errors import NotFound
from theodolite_api.app import create_app
from theodolite_api.auth.callers import Caller, Forbidden, Role, Scope, Unauthorized, expand
from theodolite_api.auth.keys import new_key, secret_matches, split_key
from theodolite_api.auth.oidc import OidcVerifier
from theodolite_api.auth.settings import OidcSettings


def test_a_key_is_shown_once_and_only_its_hash_is_kept() -> None:
    made = new_key()
    parts = split_key(made.key)
    assert parts is not None and parts[0] == made.prefix and len(made.prefix) == 12
    assert made.key.split("_", 2)[2] not in made.secret_sha256
    assert secret_matches(parts[1], made.secret_sha256)
    assert not secret_matches(parts[1] + "x", made.secret_sha256)
    assert split_key("thd_short_x") is None and split_key("Bearer abc") is None


def test_scopes_include_what_they_imply() -> None:
    assert expand(["read"]) == {Scope.READ}
    assert expand(["submit"]) == {Scope.SUBMIT, Scope.READ}
    assert expand(["admin"]) == set(Scope)


def _caller(roles: dict[uuid.UUID, Role], scopes: list[str], admin: bool = False) -> Caller:
    return Caller(uuid.uuid4(), "u", admin, roles, expand(scopes), {g: "g" for g in roles})


def test_callers_see_their_groups_and_write_where_their_role_allows() -> None:
    mine, viewed, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    caller = _caller({mine: Role.MEMBER, viewed: Role.VIEWER}, ["submit"])
    caller.check_writes(mine, "x")
    with pytest.raises(Forbidden, match="viewer"):
        caller.check_writes(viewed, "x")
    with pytest.raises(NotFound):  # another group's: as if it did not exist
        caller.check_writes(other, "x")
    assert caller.writable_groups() == [mine]
    with pytest.raises(Forbidden, match="admin"):
        caller.require(Scope.ADMIN)
    reader = _caller({mine: Role.MEMBER}, ["read"])
    with pytest.raises(Forbidden, match="submit"):
        reader.check_writes(mine, "x")
    administrator = _caller({}, ["admin"], admin=True)
    assert administrator.visible_groups() is None and administrator.sees(other)


def test_every_api_operation_needs_a_bearer_key() -> None:
    """The security requirement is in the document only where the key check is in the route's
    dependencies: an /api/v1 route added without it fails here."""
    spec = create_app().openapi()
    assert spec["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": spec["components"]["securitySchemes"]["bearer"]["description"],
    }
    operations = {
        f"{method.upper()} {path}": op.get("security")
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
    }
    api = {name: security for name, security in operations.items() if " /api/v1/" in name}
    assert len(api) > 40
    assert {name: s for name, s in api.items() if s != [{"bearer": []}]} == {}
    assert {name for name, s in operations.items() if s is None} == {
        "GET /healthz",
        "GET /readyz",
    }


# --- OIDC ----------------------------------------------------------------------------------


class _Issuer:
    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        self.jwks = {"keys": [{**public, "kid": "k1", "use": "sig", "alg": "RS256"}]}
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                body = json.dumps(issuer.jwks).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def token(self, key: Any = None, kid: str = "k1", **claims: Any) -> str:
        now = int(time.time())
        body = {
            "iss": self.url,
            "sub": "s-1",
            "aud": "theodolite",
            "exp": now + 300,
            "iat": now,
            "preferred_username": "olga",
            "groups": ["alpha", "beta:viewer", "ops"],
            **claims,
        }
        return jwt.encode(body, key or self.key, algorithm="RS256", headers={"kid": kid})


@pytest.fixture(scope="module")
def issuer() -> Iterator[_Issuer]:
    made = _Issuer()
    yield made
    made.server.shutdown()
    made.server.server_close()


def _verifier(issuer: _Issuer) -> OidcVerifier:
    return OidcVerifier(
        OidcSettings(
            issuer=issuer.url,
            audience="theodolite",
            jwks_url=f"{issuer.url}/jwks",
            admin_group="ops",
        )
    )


async def test_a_token_of_the_issuer_gives_its_claims_and_groups(issuer: _Issuer) -> None:
    verifier = _verifier(issuer)
    claims = await verifier.claims(issuer.token())
    assert claims["preferred_username"] == "olga"
    assert verifier.groups_of(claims) == {"alpha": "member", "beta": "viewer", "ops": "member"}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"aud": "someone-else"}, "Audience"),
        ({"iss": "http://elsewhere"}, "issuer"),
    ],
)
async def test_a_token_that_does_not_hold_is_refused(
    issuer: _Issuer, change: dict[str, Any], reason: str
) -> None:
    with pytest.raises(Unauthorized, match=reason):
        await _verifier(issuer).claims(issuer.token(**change))


async def test_a_token_signed_by_another_key_is_refused(issuer: _Issuer) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(Unauthorized, match="does not verify"):
        await _verifier(issuer).claims(issuer.token(key=stranger))
    with pytest.raises(Unauthorized, match="does not verify"):
        await _verifier(issuer).claims(issuer.token(kid="unknown"))


async def test_admin_lookups_refuse_control_characters_before_the_database() -> None:
    """A NUL in a user or group name is a 422 (PostgreSQL would refuse it: a 500)."""
    import httpx
    from fastapi import FastAPI

    from theodolite.web.deps import get_session
    from theodolite.web.errors import install_error_handlers
    from theodolite_api.routes import admin

    app = FastAPI()
    install_error_handlers(app)

    async def no_database() -> Any:
        yield None

    app.dependency_overrides[get_session] = no_database
    app.include_router(admin.router)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for url in ("/admin/keys?user=a%00b", "/admin/groups/a%00b/members"):
            response = await client.get(url)
            assert response.status_code == 422, url
            assert "U+0000" in response.json()["problems"][0]["message"]

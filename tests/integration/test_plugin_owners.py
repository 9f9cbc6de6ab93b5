"""A plugin name belongs to the group that first published it (real stack): another group's
publish of a higher version, re-upload of the same bytes and yank are refused with 403 and
change nothing; the owner publishes on; an administrator may publish any name; the built-in
plugins belong to the system group."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.fixtures.plugins import make_wheel
from tests.fixtures.stack import Stack
from tests.integration.helpers import unique
from theodolite.db.identity_tables import SYSTEM_GROUP, SYSTEM_GROUP_ID


def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


def _upload(client: httpx.Client, data: bytes) -> httpx.Response:
    return client.post("/plugins", files={"archive": ("plugin.whl", data)}, timeout=300)


@dataclass
class Publisher:
    group: str
    client: httpx.Client


@pytest.fixture(scope="module")
def publishers(stack: Stack) -> Iterator[dict[str, Publisher]]:
    """A member of each of two new groups, each with a key that may publish plugins."""
    found: dict[str, Publisher] = {}
    with httpx.Client(base_url=stack.api, headers=stack.headers, timeout=60) as admin:
        for who in ("alpha", "beta"):
            group, user = unique(who), unique(f"{who}-publisher")
            _ok(admin.post("/admin/groups", json={"name": group}))
            _ok(admin.post("/admin/users", json={"name": user}))
            _ok(admin.put(f"/admin/groups/{group}/members/{user}", json={"role": "member"}))
            body = {"user": user, "name": "plugin owners", "scopes": ["publish-plugins"]}
            key = _ok(admin.post("/admin/keys", json=body))["key"]
            headers = {"Authorization": f"Bearer {key}"}
            found[who] = Publisher(
                group, httpx.Client(base_url=stack.api, headers=headers, timeout=60)
            )
    yield found
    for publisher in found.values():
        publisher.client.close()


def test_another_groups_publish_and_yank_are_refused_and_store_nothing(
    publishers: dict[str, Publisher], api: httpx.Client
) -> None:
    alpha, beta = publishers["alpha"].client, publishers["beta"].client
    alpha_group = publishers["alpha"].group
    name = f"owned{unique('p').replace('-', '')}"
    first = make_wheel(name, "1.0.0", number=1)
    assert _upload(alpha, first).status_code == 201
    assert _ok(alpha.get(f"/plugins/{name}"))["group"] == alpha_group

    refusal = f"plugin name {name!r} belongs to group {alpha_group!r}"
    for attempt in (
        _upload(beta, make_wheel(name, "2.0.0", number=2)),  # a higher version
        _upload(beta, first),  # the very same bytes
        _upload(beta, make_wheel(name, "1.0.0", number=9)),  # 403 before 409
        beta.post(f"/plugins/{name}/1.0.0/yank"),
    ):
        assert attempt.status_code == 403, attempt.text
        assert attempt.json()["detail"] == refusal
    versions = _ok(alpha.get(f"/plugins/{name}"))["data"]
    assert [(v["version"], v["status"]) for v in versions] == [("1.0.0", "published")]
    assert beta.get(f"/plugins/{name}/2.0.0").status_code == 404  # names are public to read

    # The owner: idempotent re-upload, 409 for other bytes, its next version, its yank.
    assert _upload(alpha, first).status_code == 200
    assert _upload(alpha, make_wheel(name, "1.0.0", number=9)).status_code == 409
    assert _upload(alpha, make_wheel(name, "2.0.0", number=2)).status_code == 201
    assert _ok(alpha.post(f"/plugins/{name}/1.0.0/yank"))["status"] == "yanked"
    listed = {p["name"]: p for p in _ok(alpha.get("/plugins"))["data"]}
    assert listed[name]["latest_version"] == "2.0.0"

    # An administrator publishes and yanks any name; the name stays the group's.
    assert _upload(api, make_wheel(name, "3.0.0", number=3)).status_code == 201
    assert _ok(api.post(f"/plugins/{name}/3.0.0/yank"))["status"] == "yanked"
    assert _ok(api.get(f"/plugins/{name}"))["group"] == alpha_group


def test_the_built_in_plugins_belong_to_the_system_group(
    publishers: dict[str, Publisher],
) -> None:
    beta = publishers["beta"].client
    for name in ("data", "models", "attacks"):
        owner = _ok(beta.get(f"/plugins/{name}"))
        assert (owner["group"], owner["group_id"]) == (SYSTEM_GROUP, str(SYSTEM_GROUP_ID))
    refused = _upload(beta, make_wheel("data", "999.0.0", number=999))
    assert refused.status_code == 403, refused.text
    assert refused.json()["detail"] == f"plugin name 'data' belongs to group {SYSTEM_GROUP!r}"
    assert beta.get("/plugins/data/999.0.0").status_code == 404

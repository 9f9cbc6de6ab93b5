"""Who may do what, over every operation the OpenAPI document lists (real stack).

Two groups, alpha and beta. Alice submits in alpha, Rita only reads there, Bob submits in beta.
Alpha's resources are made once; then every operation is called without a key (401), with a
read-only key (403 on writes) and with Bob's key (404 on alpha's resources: ids leak nothing).
A route added without the check fails here, since the matrix is built from the live document."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.fixtures.archives import make_tar, mlproject
from tests.fixtures.stack import Stack
from tests.integration.helpers import unique, wait_for_end

READING = {"get", "head"}
# Path parameters naming a resource owned by a group.
OWNED = {"experiment_id", "entrypoint_id", "job_id", "sweep_id", "pipeline_id"}
ARCHIVE = make_tar({"MLproject": mlproject("authz", "echo hello")})


@dataclass
class World:
    stack: Stack
    keys: dict[str, str]  # who -> key
    ids: dict[str, str]  # path parameter -> alpha's value

    def job(self, **fields: str) -> dict[str, Any]:
        """A submission of alpha's entry point in alpha's experiment."""
        ids = {k: self.ids[k] for k in ("experiment_id", "entrypoint_id")}
        return {**ids, "params": {}, **fields}

    def client(self, who: str | None) -> httpx.Client:
        headers = {} if who is None else {"Authorization": f"Bearer {self.keys[who]}"}
        return httpx.Client(base_url=self.stack.config.api_url, headers=headers, timeout=60)


def _created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code in (200, 201, 202), response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture(scope="module")
def world(stack: Stack) -> Iterator[World]:
    with httpx.Client(base_url=stack.api, headers=stack.headers, timeout=60) as admin:
        alpha, beta = unique("alpha"), unique("beta")
        for group in (alpha, beta):
            _created(admin.post("/admin/groups", json={"name": group}))
        people = {"alice": (alpha, "member"), "rita": (alpha, "viewer"), "bob": (beta, "member")}
        names = {who: unique(who) for who in people}
        for who, (group, role) in people.items():
            _created(admin.post("/admin/users", json={"name": names[who]}))
            put = admin.put(f"/admin/groups/{group}/members/{names[who]}", json={"role": role})
            assert put.status_code == 200, put.text

        def key(who: str, *scopes: str) -> str:
            body = {"user": names[who], "name": "authz test", "scopes": list(scopes)}
            return str(_created(admin.post("/admin/keys", json=body))["key"])

        keys = {
            "alice": key("alice", "submit"),
            "alice-read": key("alice", "read"),
            "rita": key("rita", "submit"),  # a viewer: the key's scope does not lift the role
            "bob": key("bob", "submit"),
        }
    world = World(stack=stack, keys=keys, ids={})
    with world.client("alice") as alice:
        experiment = _created(alice.post("/api/v1/experiments", json={"name": unique("authz")}))
        entrypoint = _created(
            alice.post("/api/v1/entrypoints", files={"archive": ("p.tar.gz", ARCHIVE)})
        )
        target = {"experiment_id": experiment["id"], "entrypoint_id": entrypoint["id"]}
        job = _created(alice.post("/api/v1/jobs", json={**target, "params": {}}))
        sweep = _created(alice.post("/api/v1/sweeps", json={**target, "params": {}, "repeats": 2}))
        stage = {"entrypoint_id": entrypoint["id"]}
        pipeline = _created(
            alice.post(
                "/api/v1/pipelines",
                json={"experiment_id": experiment["id"], "name": "authz", "stages": {"a": stage}},
            )
        )
        webhook = _created(
            alice.post(
                f"/api/v1/experiments/{experiment['id']}/webhooks",
                json={"url": "https://8.8.8.8/hook", "event_types": ["job.cancelled"]},
            )
        )
    with httpx.Client(base_url=stack.api, headers=world.client("alice").headers) as alice_v1:
        wait_for_end(alice_v1, job["id"])
    world.ids = {
        "experiment_id": experiment["id"],
        "entrypoint_id": entrypoint["id"],
        "job_id": job["id"],
        "sweep_id": sweep["id"],
        "pipeline_id": pipeline["id"],
        "webhook": webhook["id"],
        "delivery": str(uuid.uuid4()),
        "name": "cpu",
        "version": "1.0.0",
        "path": "x.txt",
        "group": alpha,
        "user": names["alice"],
        "key_id": str(uuid.uuid4()),
    }
    yield world


def operations(stack: Stack) -> list[tuple[str, str, dict[str, Any]]]:
    spec = httpx.get(f"{stack.config.api_url}/openapi.json").json()
    return [
        (method, path, op)
        for path, ops in spec["paths"].items()
        if path.startswith("/api/v1/")
        for method, op in ops.items()
    ]


def status_of(client: httpx.Client, method: str, target: str) -> int:
    """The answer's status, without reading its body (an event stream never ends)."""
    with client.stream(method, target) as response:
        return response.status_code


def url(world: World, path: str) -> str:
    return re.sub(r"\{(\w+)(?::path)?\}", lambda m: world.ids[m.group(1)], path)


def test_every_operation_declares_bearer_and_refuses_a_missing_key(world: World) -> None:
    ops = operations(world.stack)
    assert len(ops) > 40
    answered = {}
    with world.client(None) as anonymous:
        for method, path, op in ops:
            assert op.get("security") == [{"bearer": []}], f"{method} {path} declares no key"
            with anonymous.stream(method, url(world, path)) as response:
                answered[f"{method.upper()} {path}"] = response.status_code
                if response.status_code == 401:
                    assert response.headers["www-authenticate"].startswith("Bearer")
                    assert response.headers["content-type"] == "application/problem+json"
    assert {op: code for op, code in answered.items() if code != 401} == {}


def test_a_bad_expired_or_revoked_key_is_refused(world: World, stack: Stack) -> None:
    cases = {"thd_000000000000_nope": "unknown API key", "not-a-key": "unknown API key"}
    for key, reason in cases.items():
        response = httpx.get(f"{stack.api}/experiments", headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 401 and reason in response.json()["detail"]
    with httpx.Client(base_url=stack.api, headers=stack.headers) as admin:
        made = _created(
            admin.post(
                "/admin/keys", json={"user": world.ids["user"], "name": "short", "scopes": ["read"]}
            )
        )
        headers = {"Authorization": f"Bearer {made['key']}"}
        assert httpx.get(f"{stack.api}/experiments", headers=headers).status_code == 200
        assert admin.post(f"/admin/keys/{made['id']}/revoke").status_code == 200
        response = httpx.get(f"{stack.api}/experiments", headers=headers)
        assert response.status_code == 401 and "revoked" in response.json()["detail"]


def test_a_read_only_key_reads_but_every_write_is_forbidden(world: World) -> None:
    refused, read = {}, {}
    with world.client("alice-read") as reader:
        for method, path, _ in operations(world.stack):
            code = status_of(reader, method, url(world, path))
            if method in READING:
                read[f"{method} {path}"] = code
            else:
                refused[f"{method.upper()} {path}"] = code
    assert refused and {op: code for op, code in refused.items() if code != 403} == {}
    # Reads pass the scope check (admin routes need the admin scope: 403 there too).
    assert read["get /api/v1/experiments/{experiment_id}"] == 200
    assert read["get /api/v1/jobs/{job_id}/logs"] == 200
    assert read["get /api/v1/admin/users"] == 403


def test_another_groups_resources_are_not_found_by_any_operation(world: World) -> None:
    owned = [
        (method, path)
        for method, path, _ in operations(world.stack)
        if OWNED & set(re.findall(r"\{(\w+)", path))
    ]
    assert len(owned) >= 20
    with world.client("bob") as bob:
        answered = {f"{m.upper()} {p}": status_of(bob, m, url(world, p)) for m, p in owned}
    assert {op: code for op, code in answered.items() if code != 404} == {}


def test_lists_show_only_the_callers_groups(world: World) -> None:
    lists = {
        "/api/v1/experiments": "experiment_id",
        "/api/v1/entrypoints": "entrypoint_id",
        "/api/v1/jobs": "job_id",
        "/api/v1/sweeps": "sweep_id",
        "/api/v1/pipelines": "pipeline_id",
    }
    for who, sees in (("alice", True), ("rita", True), ("bob", False)):
        with world.client(who) as client:
            for path, param in lists.items():
                ids = {row["id"] for row in client.get(path).json()["data"]}
                assert (world.ids[param] in ids) is sees, (who, path)


def test_a_viewer_reads_but_may_not_submit_or_change(world: World) -> None:
    with world.client("rita") as rita:
        assert rita.get(f"/api/v1/jobs/{world.ids['job_id']}").status_code == 200
        submit = rita.post("/api/v1/jobs", json=world.job())
        assert submit.status_code == 403 and "viewer" in submit.json()["detail"]
        cancel = rita.post(f"/api/v1/jobs/{world.ids['job_id']}/cancel")
        assert cancel.status_code == 403
        created = rita.post("/api/v1/experiments", json={"name": unique("nope")})
        assert created.status_code == 403


def test_queues_are_made_by_administrators_and_may_be_kept_to_groups(
    world: World, stack: Stack
) -> None:
    with world.client("alice") as alice:
        refused = alice.post("/api/v1/queues", json={"name": unique("q")})
        assert refused.status_code == 403
    with httpx.Client(base_url=stack.api, headers=stack.headers) as admin:
        beta = next(
            g["name"]
            for g in admin.get("/admin/groups").json()["data"]
            if g["name"].startswith("beta-")
        )
        name = unique("q")
        made = admin.post("/queues", json={"name": name, "groups": [beta]})
        assert made.status_code == 201, made.text
        unknown = admin.post("/queues", json={"name": unique("q"), "groups": ["no-such-group"]})
        assert unknown.status_code == 422 and "no-such-group" in unknown.text
    with world.client("alice") as alice:
        submit = alice.post("/api/v1/jobs", json=world.job(queue=name))
        assert submit.status_code == 403 and name in submit.json()["detail"]


def test_another_groups_job_is_no_dependency_and_only_administrators_see_workers(
    world: World, stack: Stack
) -> None:
    alices_job = world.ids["job_id"]
    with world.client("bob") as bob:
        experiment = _created(bob.post("/api/v1/experiments", json={"name": unique("bob")}))
        entrypoint = _created(
            bob.post("/api/v1/entrypoints", files={"archive": ("p.tar.gz", ARCHIVE)})
        )
        target = {"experiment_id": experiment["id"], "entrypoint_id": entrypoint["id"]}
        refused = bob.post(
            "/api/v1/jobs", json={**target, "params": {}, "depends_on": [alices_job]}
        )
        # As unknown as a job that does not exist: nothing tells bob it does.
        assert refused.status_code == 422
        assert refused.json()["problems"] == [
            {"field": "depends_on.0", "message": f"no such job {alices_job}"}
        ]
        assert bob.get("/api/v1/queues/cpu").json()["workers"] is None
    with httpx.Client(base_url=stack.api, headers=stack.headers) as admin:
        (worker,) = admin.get("/queues/cpu").json()["workers"]
        assert worker["hostname"] and worker["isolation"] is not None


def test_a_pipeline_reaches_no_other_groups_experiment_or_archive(world: World) -> None:
    alices = {
        "experiment_id": world.ids["experiment_id"],
        "entrypoint_id": world.ids["entrypoint_id"],
    }
    with world.client("bob") as bob:
        own = _created(bob.post("/api/v1/experiments", json={"name": unique("bob")}))
        archive = _created(
            bob.post("/api/v1/entrypoints", files={"archive": ("p.tar.gz", ARCHIVE)})
        )

        def refused(experiment_id: str, entrypoint_id: str) -> list[dict[str, Any]]:
            body = {
                "experiment_id": experiment_id,
                "name": "reach",
                "stages": {"a": {"entrypoint_id": entrypoint_id}},
            }
            response = bob.post("/api/v1/pipelines", json=body)
            assert response.status_code == 422, response.text
            problems: list[dict[str, Any]] = response.json()["problems"]
            return problems

        # As unknown as ones that do not exist: nothing tells bob they do.
        assert refused(alices["experiment_id"], archive["id"]) == [
            {"field": "experiment_id", "message": "no such experiment"}
        ]
        assert refused(own["id"], alices["entrypoint_id"]) == [
            {"field": "stages.a.entrypoint_id", "message": "no such entry point archive"}
        ]
        assert (
            bob.get("/api/v1/pipelines", params={"experiment_id": own["id"]}).json()["count"] == 0
        )
    with world.client("rita") as rita:  # a viewer of alice's group
        body = {
            "experiment_id": alices["experiment_id"],
            "name": "viewer",
            "stages": {"a": {"entrypoint_id": alices["entrypoint_id"]}},
        }
        assert rita.post("/api/v1/pipelines", json=body).status_code == 403
        cancel = rita.post(f"/api/v1/pipelines/{world.ids['pipeline_id']}/cancel")
        assert cancel.status_code == 403

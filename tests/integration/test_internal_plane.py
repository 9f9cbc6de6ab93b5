"""The workers' plane on a real stack: claims are served only by the internal listener, and only
to a worker holding its own token, claiming for itself."""

from __future__ import annotations

import uuid

import httpx

from tests.fixtures.stack import Stack
from theodolite.devstack.services import worker_env


def _claim(url: str, worker_id: str, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(
        f"{url}/internal/jobs/{uuid.uuid4()}/claim",
        json={"attempt": 1, "worker_id": worker_id},
        headers=headers,
        timeout=30,
    )


def test_claims_are_only_the_internal_listeners_and_only_a_workers_own(stack: Stack) -> None:
    config = stack.config
    a, b = "plane-worker-a", "plane-worker-b"

    def holding(token_of: str, named: str) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {config.worker_token(token_of)}",
            "Theodolite-Worker-Id": named,
        }

    # The public port has no internal route, whatever the caller holds.
    assert _claim(config.api_url, a, {**holding(a, a), **stack.headers}).status_code == 404
    answers = {
        "no token": _claim(config.api_internal_url, a, {}),
        "forged token": _claim(config.api_internal_url, a, {"Authorization": f"Bearer {a}.00"}),
        "another's token": _claim(config.api_internal_url, a, holding(b, a)),
        "A claiming as B": _claim(config.api_internal_url, b, holding(a, a)),
        "its own": _claim(config.api_internal_url, a, holding(a, a)),
    }
    assert {name: answer.status_code for name, answer in answers.items()} == {
        "no token": 401,
        "forged token": 401,
        "another's token": 403,
        "A claiming as B": 403,
        "its own": 404,  # let through to the arbiter, which knows no such job
    }
    assert answers["its own"].json()["reason"] == "no such job"


def test_the_stack_gives_each_worker_the_internal_listener_and_its_own_token(
    stack: Stack,
) -> None:
    env = worker_env(stack.config, "cpu", "worker-cpu-7")
    assert env["THEODOLITE_WORKER_API_URL"] == stack.config.api_internal_url
    worker_id = env["THEODOLITE_WORKER_WORKER_ID"]
    assert env["THEODOLITE_WORKER_TOKEN"] == stack.config.worker_token(worker_id)
    assert stack.config.api_internal_port != stack.config.api_port

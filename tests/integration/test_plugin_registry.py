"""The plugin registry through the gateway: upload, validation, immutability, yank, bucket
watching, and jobs that use exactly the versions resolved at their submission."""

from __future__ import annotations

import secrets
import time
from typing import Any

import httpx
import pytest

from tests.fixtures.archives import make_tar
from tests.fixtures.plugins import make_source_archive, make_wheel
from tests.fixtures.stack import Stack
from tests.integration.helpers import create_experiment, submit, upload_ok, wait_for_end, wait_until


def plugin_name() -> str:
    return f"p{secrets.token_hex(3)}"


def upload_plugin(api: httpx.Client, data: bytes, filename: str = "plugin.whl") -> httpx.Response:
    return api.post("/plugins", files={"archive": (filename, data)}, timeout=300)


def graph_using(name: str, pin: str | None = None) -> bytes:
    pins = f"plugins: ['{name}=={pin}']\n" if pin else ""
    graph = (
        f"{pins}steps:\n  which: {{task: {name}.version_number}}\n"
        "outputs:\n  reported_version: {from: $which, kind: metric}\n"
    )
    mlproject = "name: uses-plugin\nentry_points:\n  main:\n    command: 'theodolite run-graph graph.yaml'\n"
    return make_tar({"MLproject": mlproject, "graph.yaml": graph})


def test_upload_list_show_download_and_idempotency(api: httpx.Client) -> None:
    name = plugin_name()
    wheel = make_wheel(name, "1.0.0", number=1)
    created = upload_plugin(api, wheel)
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["name"], body["version"], body["status"]) == (name, "1.0.0", "published")
    assert body["tasks"]["version_number"]["inputs"]["salt"]["schema"] == {"type": "integer"}

    again = upload_plugin(api, wheel)
    assert again.status_code == 200 and again.json()["sha256"] == body["sha256"]

    other_bytes = make_wheel(name, "1.0.0", number=2)
    conflict = upload_plugin(api, other_bytes)
    assert conflict.status_code == 409
    assert "exists already with other bytes" in conflict.json()["detail"]

    listed = {p["name"]: p for p in api.get("/plugins").json()["data"]}
    assert listed[name] == {"name": name, "latest_version": "1.0.0", "versions": ["1.0.0"]}
    assert api.get(f"/plugins/{name}/1.0.0/archive").content == wheel
    assert api.get(f"/plugins/{name}/9.9.9").status_code == 404


def test_source_archives_are_built_into_wheels(api: httpx.Client) -> None:
    name = plugin_name()
    response = upload_plugin(api, make_source_archive(name, "0.3.0", number=3), "src.tar.gz")
    assert response.status_code == 201, response.text
    assert list(response.json()["tasks"]) == ["version_number"]


BAD_PLUGINS = {
    "syntax error": (
        {
            "tasks_source": "from theodolite.sdk import task\n\n@task\ndef f(x: int) -> int\n    return x\n"
        },
        "syntax",
        "_plugin/tasks.py:4",
    ),
    "import error": (
        {"tasks_source": "import no_such_module_anywhere\n"},
        "import",
        "ModuleNotFoundError: No module named 'no_such_module_anywhere'",
    ),
    "missing type hints": (
        {
            "tasks_source": "from theodolite.sdk import task\n\n@task\ndef f(x, y: int = 1) -> int:\n    return y\n"
        },
        "hints",
        "task f: input 'x' has no type hint",
    ),
    "no tasks": ({"tasks_source": "X = 1\n"}, "tasks", "defines no @task functions"),
    "no entry point": ({"entry_points": ""}, "metadata", "declare exactly one"),
    "import hangs": (
        {"tasks_source": "import time\nwhile True:\n    time.sleep(1)\n"},
        "timeout",
        "time limit",
    ),
    "import allocates without bound": (
        {"tasks_source": "hoard = []\nwhile True:\n    hoard.append(bytearray(64 * 2**20))\n"},
        "memory",
        "memory",
    ),
}


@pytest.mark.parametrize("case", list(BAD_PLUGINS))
def test_bad_plugins_get_their_reason_and_nothing_is_stored(
    api: httpx.Client, stack: Stack, case: str
) -> None:
    kwargs, kind, reason = BAD_PLUGINS[case]
    name = plugin_name()
    keys_before = set(stack.object_store().list_keys(stack.config.plugin_bucket))
    response = upload_plugin(api, make_wheel(name, "1.0.0", **kwargs))
    assert response.status_code == 422, response.text
    problem = response.json()["problems"][0]
    assert problem["field"] == f"archive ({kind})"
    assert reason in problem["message"]
    assert name not in {p["name"] for p in api.get("/plugins").json()["data"]}
    assert set(stack.object_store().list_keys(stack.config.plugin_bucket)) == keys_before
    assert httpx.get(f"{stack.config.registry_url}/healthz").status_code == 200


def test_a_yanked_version_cannot_be_pinned_and_latest_skips_it(api: httpx.Client) -> None:
    name = plugin_name()
    for number in (1, 2):
        assert (
            upload_plugin(api, make_wheel(name, f"1.0.{number}", number=number)).status_code == 201
        )
    yanked = api.post(f"/plugins/{name}/1.0.2/yank")
    assert yanked.json()["status"] == "yanked"
    experiment = create_experiment(api)

    pinned = upload_ok(api, graph_using(name, pin="1.0.2"))
    refused = submit(api, experiment_id=experiment["id"], entrypoint_id=pinned["id"])
    assert refused.status_code == 422
    assert {
        "field": "graph.plugins." + name,
        "message": f"{name}==1.0.2 is yanked",
    } in refused.json()["problems"]

    latest = upload_ok(api, graph_using(name))
    job = wait_for_end(
        api, submit(api, experiment_id=experiment["id"], entrypoint_id=latest["id"]).json()["id"]
    )
    assert job["status"] == "succeeded", job["log_tail"]
    assert job["plugin_versions"][name]["version"] == "1.0.1"
    assert _reported(api, job) == 1.0


def _reported(api: httpx.Client, job: dict[str, Any]) -> float:
    metrics = {
        m["key"]: m["latest"]["value"] for m in api.get(f"/jobs/{job['id']}/metrics").json()["data"]
    }
    return metrics["reported_version"]


def test_a_plugin_dropped_in_the_bucket_is_usable_without_the_registry_api(
    api: httpx.Client, stack: Stack
) -> None:
    name = plugin_name()
    store = stack.object_store()
    store.put_bytes(
        stack.config.plugin_bucket,
        f"drops/{name}-2.0.0.whl",
        make_wheel(name, "2.0.0", number=7),
        "application/zip",
    )
    bad_key = f"drops/{name}-broken.whl"
    store.put_bytes(
        stack.config.plugin_bucket,
        bad_key,
        make_wheel(name + "x", "1.0.0", tasks_source="import nope_nope\n"),
        "application/zip",
    )

    wait_until(
        lambda: any(p["name"] == name for p in api.get("/plugins").json()["data"]),
        timeout_s=60,
        what="the dropped plugin to be published",
    )
    drops = {d["key"]: d for d in api.get("/plugins/drops").json()["data"]}
    wait_until(
        lambda: bad_key in {d["key"] for d in api.get("/plugins/drops").json()["data"]},
        timeout_s=60,
    )
    drops = {d["key"]: d for d in api.get("/plugins/drops").json()["data"]}
    assert drops[bad_key]["status"] == "rejected"
    assert "No module named 'nope_nope'" in drops[bad_key]["reason"]
    first_seen = drops[bad_key]["seen_at"]
    time.sleep(5)  # two more reconcile rounds: a rejected archive is not tried again
    assert {d["key"]: d for d in api.get("/plugins/drops").json()["data"]}[bad_key][
        "seen_at"
    ] == first_seen

    experiment = create_experiment(api)
    entrypoint = upload_ok(api, graph_using(name))
    job = wait_for_end(
        api,
        submit(api, experiment_id=experiment["id"], entrypoint_id=entrypoint["id"]).json()["id"],
    )
    assert job["status"] == "succeeded", job["log_tail"]
    assert _reported(api, job) == 7.0


def _pids(stack: Stack) -> dict[str, str]:
    folder = stack.config.state_dir / "pids"
    return {p.stem: p.read_text() for p in folder.glob("*.pid")}


@pytest.mark.timeout(900)  # 110 jobs one after another on one worker: minutes on 2 cores
def test_zero_downtime_publishing_under_a_stream_of_jobs(api: httpx.Client, stack: Stack) -> None:
    name = plugin_name()
    assert upload_plugin(api, make_wheel(name, "1.0.0", number=0)).status_code == 201
    experiment = create_experiment(api)
    entrypoint = upload_ok(api, graph_using(name))
    pids_before = _pids(stack)

    submitted: list[tuple[str, int]] = []  # (job id, newest version number acknowledged before)
    acknowledged = 0
    publish_at = {20: 1, 40: 2, 60: 3, 80: 4, 95: 5}  # after that many submissions
    for index in range(110):
        if index in publish_at:
            number = publish_at[index]
            response = upload_plugin(api, make_wheel(name, f"1.0.{number}", number=number))
            assert response.status_code == 201, response.text
            acknowledged = number
        job = submit(api, experiment_id=experiment["id"], entrypoint_id=entrypoint["id"])
        assert job.status_code == 202, job.text
        submitted.append((job.json()["id"], acknowledged))
        time.sleep(0.05)

    failures = []
    for job_id, newest_acknowledged in submitted:
        job = wait_for_end(api, job_id, timeout_s=600)
        pinned = job["plugin_versions"][name]["version"]
        if job["status"] != "succeeded":
            failures.append((job_id, job["status"], job["error"]))
            continue
        assert pinned == f"1.0.{newest_acknowledged}", (job_id, pinned, newest_acknowledged)
        assert _reported(api, job) == float(newest_acknowledged), job_id
    assert failures == []
    assert _pids(stack) == pids_before  # no service was restarted

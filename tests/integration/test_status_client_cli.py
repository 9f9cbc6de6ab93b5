"""The Python clients and the command line drive whole workflows against the running stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.archives import EXAMPLES, SCRIPT, SCRIPT_PROJECT, make_tar
from tests.fixtures.stack import Stack
from tests.integration.helpers import unique, wait_until
from tests.integration.test_status_events import SLOW_PROJECT, SLOW_SCRIPT
from theodolite.client import ApiError, AsyncTheodoliteClient, JobEvent, TheodoliteClient

SLOW_ARCHIVE = make_tar({"MLproject": SLOW_PROJECT, "slow.py": SLOW_SCRIPT})


def test_sync_client_workflow(stack: Stack, tmp_path: Path) -> None:
    with TheodoliteClient(stack.config.api_url, api_key=stack.admin_key) as client:
        experiment = client.create_experiment(unique("client"), "driven by the client")
        entrypoint = client.upload_entrypoint(EXAMPLES / "hello")
        assert client.upload_entrypoint(EXAMPLES / "hello").id == entrypoint.id
        assert [e.name for e in entrypoint.entry_points] == ["main"]

        job = client.submit_job(
            experiment.id, entrypoint.id, params={"greeting": "hej", "count": 3}
        )
        assert job.status == "queued"
        seen: list[JobEvent] = []
        final = job.wait(on_event=seen.append, timeout_s=120)
        assert final.status == "succeeded" and final.finished
        assert [e.status for e in seen if e.event == "status"] == ["queued", "running", "succeeded"]
        assert seen[-1].event == "end"
        assert "done" in [line for e in seen if e.event == "log" for line in e.lines]

        assert {m.key: m.latest.value for m in final.metrics()} == {"hello_score": 4.5}
        assert {a.path for a in final.artifacts()} >= {"greeting.txt", "logs/output.log"}
        assert final.download("greeting.txt") == b"hej, world\n" * 3
        written = final.download("greeting.txt", to=tmp_path)
        assert isinstance(written, Path) and written.read_text() == "hej, world\n" * 3
        assert final.logs(tail=1) == ["done"]
        assert client.list_jobs(experiment_id=experiment.id).count == 1
        assert client.get_job(job.id)["status"] == "succeeded"  # reads like the JSON too

        with pytest.raises(ApiError) as refused:
            client.submit_job(experiment.id, entrypoint.id, params={"count": "many", "x": 1})
        assert refused.value.status == 422
        assert {p["field"] for p in refused.value.problems} == {"params.count", "params.x"}

        # Cancel a running job; its progress is seen on the way.
        slow = client.upload_archive(SLOW_ARCHIVE)
        running = client.submit_job(experiment.id, slow.id, params={"lines": 300, "pause": 0.1})
        progress: list[JobEvent] = []
        for event in running.events():
            if event.event == "progress":
                progress.append(event)
            if len(progress) >= 3:
                break
        assert 0 < progress[-1].fraction < 1  # type: ignore[operator]
        assert running.cancel().status in ("running", "cancelled")
        ended = running.wait(timeout_s=60)
        assert ended.status == "cancelled"
        with pytest.raises(ApiError) as again:
            running.cancel()
        assert again.value.status == 409

        assert any(q.name == "cpu" and q.live_workers >= 1 for q in client.queues())
        assert client.plugins() and client.tasks()


async def test_async_client_workflow(stack: Stack, tmp_path: Path) -> None:
    async with AsyncTheodoliteClient(stack.config.api_url, api_key=stack.admin_key) as client:
        experiment = await client.ensure_experiment(unique("async"))
        entrypoint = await client.upload_entrypoint(EXAMPLES / "hello")
        job = await client.submit_job(experiment.id, entrypoint.id, params={"count": 2})
        seen: list[JobEvent] = []
        final = await job.wait(on_event=seen.append, timeout_s=120)
        assert final.status == "succeeded"
        assert [e.status for e in seen if e.event == "status"] == ["queued", "running", "succeeded"]
        assert [m.key for m in await final.metrics()] == ["hello_score"]
        assert await final.download("greeting.txt") == b"hello, world\n" * 2
        assert (await final.download("greeting.txt", to=tmp_path / "g.txt")) == tmp_path / "g.txt"

        # Resuming from an id: exactly what came after it.
        everything = [e async for e in client.job_events(job.id)]
        middle = everything[2].id
        rest = [e async for e in client.job_events(job.id, last_event_id=middle)]
        assert [e.id for e in rest] == [e.id for e in everything[3:]]

        with pytest.raises(ApiError) as refused:
            await client.get_job("00000000-0000-0000-0000-000000000000")
        assert refused.value.status == 404


def _cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "THEODOLITE_API_URL": stack.config.api_url,
        "THEODOLITE_API_KEY": stack.admin_key,
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "theodolite", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )


def _json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_command_line_workflow(stack: Stack, tmp_path: Path) -> None:
    name = unique("cli")
    experiment = _json(_cli(stack, "experiments", "create", name, "--json"))
    assert experiment["name"] == name
    assert name in _cli(stack, "experiments", "list").stdout
    pushed = _json(_cli(stack, "entrypoints", "push", str(EXAMPLES / "hello"), "--json"))

    done = _cli(
        stack,
        "submit",
        pushed["id"],
        "-P",
        "count=2",
        "--experiment-name",
        name,
        "--wait",
        "--json",
    )
    job = _json(done)
    assert job["status"] == "succeeded"
    assert "status: running" in done.stderr and "status: succeeded" in done.stderr

    scripted = tmp_path / "scripted"
    scripted.mkdir()
    (scripted / "MLproject").write_text(SCRIPT_PROJECT)
    (scripted / "run.py").write_text(SCRIPT)
    failed = _cli(
        stack, "submit", str(scripted), "-P", "code=3", "--experiment-name", name, "--wait"
    )
    assert failed.returncode == 1, failed.stderr
    assert "failed" in failed.stdout

    refused = _cli(stack, "submit", str(scripted), "-P", "code=x", "--experiment-name", name)
    assert refused.returncode == 2
    assert "params.code" in refused.stderr

    listed = _json(_cli(stack, "jobs", "list", "--experiment-name", name, "--json"))
    assert listed["count"] == 2
    shown = _cli(stack, "jobs", "show", job["id"])
    assert "succeeded" in shown.stdout and "history" in shown.stdout
    assert _cli(stack, "jobs", "logs", job["id"], "--tail", "1").stdout == "done\n"
    followed = _cli(stack, "jobs", "logs", job["id"], "--follow")
    assert followed.returncode == 0 and "done" in followed.stdout.splitlines()
    metrics = _json(_cli(stack, "jobs", "metrics", job["id"], "--json"))
    assert [(m["key"], m["latest"]["value"]) for m in metrics] == [("hello_score", 3.0)]
    artifacts = _json(_cli(stack, "jobs", "artifacts", job["id"], "--json"))
    assert "greeting.txt" in {a["path"] for a in artifacts}
    downloaded = _cli(
        stack, "jobs", "artifacts", job["id"], "--download", "greeting.txt", "-o", str(tmp_path)
    )
    assert downloaded.returncode == 0, downloaded.stderr
    assert (tmp_path / "greeting.txt").read_text() == "hello, world\n" * 2

    slow = tmp_path / "slow"
    slow.mkdir()
    (slow / "MLproject").write_text(SLOW_PROJECT)
    (slow / "slow.py").write_text(SLOW_SCRIPT)
    started = _cli(
        stack, "submit", str(slow), "-P", "lines=300", "-P", "pause=0.1", "--experiment-name", name
    )
    assert started.returncode == 0, started.stderr
    slow_id = started.stdout.strip()
    with TheodoliteClient(stack.config.api_url, api_key=stack.admin_key) as client:
        wait_until(lambda: client.get_job(slow_id).status == "running", what="the job to run")
    cancelled = _cli(stack, "jobs", "cancel", slow_id)
    assert cancelled.returncode == 0, cancelled.stderr
    followed = _cli(stack, "jobs", "logs", slow_id, "--follow")
    assert followed.returncode == 3  # cancelled
    again = _cli(stack, "jobs", "cancel", slow_id)
    assert again.returncode == 2 and "409" in again.stderr

    queues = _json(_cli(stack, "queues", "--json"))
    assert "cpu" in {q["name"] for q in queues}
    plugins = _json(_cli(stack, "plugins", "list", "--json"))
    assert plugins and all("latest_version" in p for p in plugins)


def test_command_line_sweep(stack: Stack, tmp_path: Path) -> None:
    name = unique("cli-sweep")
    result = _cli(
        stack,
        "sweeps",
        "submit",
        str(EXAMPLES / "hello"),
        "-G",
        "scale=1,2.5",
        "--seeds",
        "2,3",
        "--seed-param",
        "count",
        "-m",
        "hello_score",
        "--experiment-name",
        name,
        "--wait",
        "--json",
    )
    sweep = _json(result)
    assert sweep["status"] == "succeeded" and len(sweep["points"]) == 4
    rows = {row["values"]["scale"]: row["metrics"]["hello_score"] for row in sweep["table"]}
    assert rows[1]["mean"] == pytest.approx(2.5) and rows[1]["n"] == 2  # (2 + 3) / 2
    assert rows[2.5]["mean"] == pytest.approx(6.25) and rows[2.5]["min"] == pytest.approx(5.0)
    shown = _cli(stack, "sweeps", "show", sweep["id"])
    assert shown.returncode == 0 and "hello_score" in shown.stdout and "n=2" in shown.stdout
    figure = tmp_path / "sweep.svg"
    drawn = _cli(stack, "sweeps", "figure", sweep["id"], "-o", str(figure))
    assert drawn.returncode == 0, drawn.stderr
    assert figure.read_text().startswith("<svg")

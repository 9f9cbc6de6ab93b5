"""A job's MLflow tracking proxy against a real MLflow server (3.17, artifacts proxied by the
server): through the proxy and its loopback forwarder, an MLflow client logs to its own run;
what it may not do is refused with a 403 naming the rule, and MLflow, asked directly, shows that
nothing changed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

from tests.fixtures.mlflow_server import mlflow_server
from theodolite.sandbox.bwrap import bwrap_command
from theodolite.sandbox.policy import SandboxPolicy, interpreter_paths
from theodolite_worker.tracking_proxy.forward import start_forwarder
from theodolite_worker.tracking_proxy.server import TrackingProxy, job_tracking_proxy


@pytest.fixture(scope="module")
def tracking_server() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="tp-mlflow-") as state:
        with mlflow_server(Path(state)) as url:
            yield url


@pytest.fixture(autouse=True)
def _no_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """A refusal is final: the client would retry a 5xx for minutes."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")


@dataclass
class Job:
    """One job's runs: its own, another job's in the same experiment, one in another group's."""

    server: MlflowClient  # straight to MLflow, as the worker is
    experiment_id: str
    run_id: str
    other_run_id: str
    foreign_experiment_id: str
    foreign_run_id: str
    proxy: TrackingProxy
    tracking_uri: str  # the forwarder's: what the job's MLFLOW_TRACKING_URI is
    socket_path: Path

    @property
    def client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.tracking_uri)


@pytest.fixture
async def open_job(tracking_server: str) -> AsyncIterator[Callable[..., Awaitable[Job]]]:
    """Opens jobs, each in an experiment of its own with its proxy and forwarder, until the
    test ends."""
    async with contextlib.AsyncExitStack() as stack:

        async def open_one(max_upload_bytes: int | None = None) -> Job:
            server = MlflowClient(tracking_uri=tracking_server)
            name = uuid.uuid4().hex[:8]
            experiment = server.create_experiment(f"job-{name}")
            foreign = server.create_experiment(f"foreign-{name}")
            run, other = server.create_run(experiment), server.create_run(experiment)
            foreign_run = server.create_run(foreign)
            # A short path: a unix socket's path holds 107 bytes at most.
            job_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="tp-job-"))
            socket_path = Path(job_dir) / ".theodolite" / "mlflow.sock"
            proxy = await stack.enter_async_context(
                job_tracking_proxy(
                    socket_path=socket_path,
                    upstream=tracking_server,
                    run_id=run.info.run_id,
                    experiment_id=experiment,
                    # As the worker, which made the run: MLflow is not asked at the start.
                    run_artifact_uri=run.info.artifact_uri,
                    max_upload_bytes=max_upload_bytes,
                )
            )
            forwarder = start_forwarder(socket_path)
            stack.callback(forwarder.close)
            return Job(
                server=server,
                experiment_id=experiment,
                run_id=run.info.run_id,
                other_run_id=other.info.run_id,
                foreign_experiment_id=foreign,
                foreign_run_id=foreign_run.info.run_id,
                proxy=proxy,
                tracking_uri=forwarder.tracking_uri,
                socket_path=socket_path,
            )

        yield open_one


@pytest.fixture
async def job(open_job: Callable[..., Awaitable[Job]]) -> Job:
    return await open_job()


async def in_thread(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """The MLflow client blocks; the proxy serves on this test's event loop meanwhile."""
    return await asyncio.to_thread(call, *args, **kwargs)


async def test_a_job_logs_metrics_params_tags_and_artifacts_to_its_own_run(
    job: Job, tmp_path: Path
) -> None:
    client = job.client
    await in_thread(client.log_metric, job.run_id, "accuracy", 0.93, step=2)
    await in_thread(client.log_param, job.run_id, "epsilon", "0.3")
    await in_thread(
        client.log_batch,
        job.run_id,
        metrics=[Metric("loss", 0.1, 0, 1)],
        params=[Param("attack", "fgsm")],
        tags=[RunTag("note", "through the proxy")],
    )
    report = tmp_path / "report.json"
    report.write_text('{"robust_accuracy": 0.41}')
    await in_thread(client.log_artifact, job.run_id, str(report), "reports")
    # Past the proxy's limit for a JSON body: artifacts stream through, unread.
    weights = tmp_path / "weights.bin"
    weights.write_bytes(os.urandom(20 * 1024 * 1024))
    await in_thread(client.log_artifact, job.run_id, str(weights), "reports")
    listed = await in_thread(client.list_artifacts, job.run_id, "reports")
    assert [entry.path for entry in listed] == ["reports/report.json", "reports/weights.bin"]
    back = await in_thread(
        client.download_artifacts, job.run_id, "reports/weights.bin", str(tmp_path / "back")
    )
    assert await in_thread(Path(back).read_bytes) == await in_thread(weights.read_bytes)
    # The worker ends the run: a job's end_run() succeeds, the run stays RUNNING.
    await in_thread(client.set_terminated, job.run_id, "FINISHED")

    stored = job.server.get_run(job.run_id)
    assert stored.data.metrics == {"accuracy": 0.93, "loss": 0.1}
    assert stored.data.params == {"epsilon": "0.3", "attack": "fgsm"}
    assert stored.data.tags["note"] == "through the proxy"
    assert stored.info.status == "RUNNING"
    fetched = Path(job.server.download_artifacts(job.run_id, "reports/report.json", str(tmp_path)))
    assert await in_thread(fetched.read_text) == '{"robust_accuracy": 0.41}'


async def test_a_job_logs_registers_and_loads_a_model(job: Job, tmp_path: Path) -> None:
    """MLflow 3's path: a logged model in the job's experiment, its artifacts, a registered
    version, and loading it back by ``models:/`` as a later pipeline stage would."""
    script = tmp_path / "model_job.py"
    name = f"proxy-model-{uuid.uuid4().hex[:8]}"
    script.write_text(
        "import os, mlflow, mlflow.sklearn\n"
        "from sklearn.dummy import DummyClassifier\n"
        "model = DummyClassifier().fit([[0], [1]], [0, 1])\n"
        "with mlflow.start_run(run_id=os.environ['MLFLOW_RUN_ID']):\n"
        f"    info = mlflow.sklearn.log_model(model, name='model', registered_model_name={name!r})\n"
        f"    loaded = mlflow.sklearn.load_model('models:/{name}/1')\n"
        "    print('predicted', list(loaded.predict([[0]])))\n"
    )
    code, output = await run_cold_job(job, [sys.executable, str(script)])
    assert code == 0, output
    assert "predicted [" in output
    (version,) = job.server.search_model_versions(f"name='{name}'")
    assert version.run_id == job.run_id
    assert job.proxy.rules.owned.owns(str(version.source).removeprefix("models:/"))


async def test_a_later_job_loads_a_registered_model_of_another_experiment_only(
    open_job: Callable[..., Awaitable[Job]], tmp_path: Path
) -> None:
    """A job attacks a model that a training job registered (another experiment): it loads the
    registered version, not the trainer's unregistered models, and adds no version to it."""
    trainer, attacker = await open_job(), await open_job()
    name = f"target-{uuid.uuid4().hex[:8]}"
    train = tmp_path / "train.py"
    train.write_text(
        "import os, mlflow, mlflow.sklearn\n"
        "from sklearn.dummy import DummyClassifier\n"
        "model = DummyClassifier().fit([[0], [1]], [0, 1])\n"
        "with mlflow.start_run(run_id=os.environ['MLFLOW_RUN_ID']):\n"
        f"    mlflow.sklearn.log_model(model, name='model', registered_model_name={name!r})\n"
        "    scratch = mlflow.sklearn.log_model(model, name='scratch')\n"
        "    print('scratch', scratch.model_id)\n"
    )
    code, output = await run_cold_job(trainer, [sys.executable, str(train)])
    assert code == 0, output
    scratch = output.split("scratch ")[-1].split()[0]
    attack = tmp_path / "attack.py"
    attack.write_text(
        "import mlflow, mlflow.sklearn\n"
        "from mlflow.exceptions import MlflowException\n"
        f"print('predicted', list(mlflow.sklearn.load_model('models:/{name}/1').predict([[0]])))\n"
        "for what, call in (\n"
        f"    ('scratch', lambda: mlflow.sklearn.load_model('models:/{scratch}')),\n"
        f"    ('version', lambda: mlflow.register_model('models:/{scratch}', {name!r})),\n"
        "):\n"
        "    try:\n"
        "        call()\n"
        "        print(what, 'allowed')\n"
        "    except MlflowException as exc:\n"
        "        print(what, 'refused', exc.error_code)\n"
    )
    code, output = await run_cold_job(attacker, [sys.executable, str(attack)])
    assert code == 0, output
    assert "predicted [" in output
    assert "scratch refused PERMISSION_DENIED" in output, output
    assert "version refused PERMISSION_DENIED" in output, output
    assert len(attacker.server.search_model_versions(f"name='{name}'")) == 1


def refusal(exc: pytest.ExceptionInfo[MlflowException]) -> str:
    assert exc.value.get_http_status_code() == 403, exc.value
    assert exc.value.error_code == "PERMISSION_DENIED"
    return exc.value.message


async def test_another_runs_and_experiments_are_refused_and_unchanged(job: Job) -> None:
    client, other = job.client, job.other_run_id
    before = job.server.get_run(other)
    with pytest.raises(MlflowException) as tagged:
        await in_thread(client.set_tag, other, "owned", "by me")
    assert f"not {other}" in refusal(tagged)
    with pytest.raises(MlflowException) as logged:
        await in_thread(client.log_metric, other, "accuracy", 0.0)
    refusal(logged)
    with pytest.raises(MlflowException) as deleted:
        await in_thread(client.delete_run, other)
    refusal(deleted)
    with pytest.raises(MlflowException) as created:
        await in_thread(client.create_experiment, f"squat-{uuid.uuid4().hex[:8]}")
    refusal(created)
    with pytest.raises(MlflowException) as read:
        await in_thread(client.get_run, job.foreign_run_id)
    assert "not in an experiment this job may read" in refusal(read)
    with pytest.raises(MlflowException) as forged:
        await in_thread(client.set_tag, job.run_id, "theodolite.job_id", "someone-else")
    refusal(forged)

    after = job.server.get_run(other)
    assert after.data.tags == before.data.tags and after.data.metrics == {}
    assert after.info.lifecycle_stage == "active"
    names = [e.name for e in job.server.search_experiments()]
    assert not [n for n in names if n.startswith("squat-")]
    assert "theodolite.job_id" not in job.server.get_run(job.run_id).data.tags


async def test_artifacts_outside_its_run_are_refused_and_not_written(
    job: Job, tmp_path: Path
) -> None:
    planted = tmp_path / "planted.txt"
    planted.write_text("not yours")
    with pytest.raises(Exception, match="403"):
        await in_thread(job.client.log_artifact, job.other_run_id, str(planted))
    base = f"{job.tracking_uri}/api/2.0/mlflow-artifacts/artifacts/{job.experiment_id}"
    async with httpx.AsyncClient(timeout=30) as http:
        for path, status in (
            (f"{job.other_run_id}/artifacts/planted.txt", 403),
            (f"{job.run_id}/planted.txt", 403),  # its run, but outside artifacts/
            (f"{job.run_id}/artifacts/%2e%2e/%2e%2e/{job.other_run_id}/artifacts/p.txt", 400),
        ):
            answer = await http.put(f"{base}/{path}", content=b"not yours")
            assert answer.status_code == status, (path, answer.text)
            assert answer.json()["message"].startswith("theodolite tracking proxy: ")
    # httpx removes dot segments before sending: a hostile job need not.
    traversal = f"{job.run_id}/artifacts/../../{job.other_run_id}/artifacts/planted.txt"
    assert await raw_put(job.tracking_uri, f"{base}/{traversal}", b"not yours") == 400
    assert job.server.list_artifacts(job.other_run_id) == []
    assert job.server.list_artifacts(job.run_id) == []


async def raw_put(tracking_uri: str, url: str, body: bytes) -> int:
    """PUT ``url``'s path exactly as written; the status MLflow's proxy answers."""
    host, port = httpx.URL(tracking_uri).host, httpx.URL(tracking_uri).port
    path = url.removeprefix(tracking_uri)
    reader, writer = await asyncio.open_connection(host, port)
    head = f"PUT {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n"
    writer.write(f"{head}Connection: close\r\n\r\n".encode() + body)
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    await writer.wait_closed()
    return int(status_line.split()[1])


async def run_cold_job(job: Job, command: list[str]) -> tuple[int, str]:
    """A cold job: the worker's wrapper runs ``command`` with its own loopback forwarder."""
    env = {**os.environ, "MLFLOW_RUN_ID": job.run_id, "MLFLOW_EXPERIMENT_ID": job.experiment_id}
    env.pop("MLFLOW_TRACKING_URI", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "theodolite_worker.sandbox_entry",
        f"--forward=0,MLFLOW_TRACKING_URI,,{job.socket_path}",
        "--",
        *command,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=240)
    assert process.returncode is not None
    return process.returncode, output.decode()


async def test_a_cold_job_logs_through_the_wrapper_which_returns_its_exit_status(
    job: Job,
) -> None:
    script = (
        "import os, sys, mlflow\n"
        "from mlflow.exceptions import MlflowException\n"
        "assert os.environ['MLFLOW_TRACKING_URI'].startswith('http://127.0.0.1:')\n"
        "mlflow.MlflowClient().log_metric(os.environ['MLFLOW_RUN_ID'], 'cold', 1.0)\n"
        "try:\n"
        f"    mlflow.MlflowClient().set_tag({job.other_run_id!r}, 'k', 'v')\n"
        "except MlflowException as exc:\n"
        "    print('refused', exc.error_code)\n"
        "sys.exit(3)\n"
    )
    code, output = await run_cold_job(job, [sys.executable, "-c", script])
    assert code == 3, output
    assert "refused PERMISSION_DENIED" in output
    assert job.server.get_run(job.run_id).data.metrics == {"cold": 1.0}
    assert "k" not in job.server.get_run(job.other_run_id).data.tags


async def test_a_sandboxed_job_reaches_mlflow_only_through_its_proxy(
    job: Job, tracking_server: str
) -> None:
    """The cold form in a real sandbox (bwrap: its own uid and network namespace, the job
    folder bound): the proxy's socket is all it reaches, and it logs through it."""
    job_dir = job.socket_path.parent.parent
    job_dir.chmod(0o755)  # the sandbox's uid walks to its socket
    script = (
        "import os, sys, httpx, mlflow\n"
        "from mlflow.exceptions import MlflowException\n"
        "try:\n"
        f"    httpx.get({tracking_server + '/health'!r}, timeout=5)\n"
        "    print('reached MLflow directly')\n"
        "except httpx.HTTPError as exc:\n"
        "    print('no direct route:', type(exc).__name__)\n"
        "client = mlflow.MlflowClient()\n"
        "client.log_metric(os.environ['MLFLOW_RUN_ID'], 'sandboxed', 1.0)\n"
        "try:\n"
        f"    client.set_tag({job.other_run_id!r}, 'k', 'v')\n"
        "except MlflowException as exc:\n"
        "    print('refused', exc.error_code)\n"
    )
    policy = SandboxPolicy(
        uid=200_999,
        gid=200_999,
        work_dir=job_dir,
        read_only=interpreter_paths(),
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(job_dir),
            "MLFLOW_RUN_ID": job.run_id,
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
            "MLFLOW_DISABLE_TELEMETRY": "true",
        },
    )
    wrapped = [
        sys.executable,
        "-m",
        "theodolite_worker.sandbox_entry",
        f"--forward=0,MLFLOW_TRACKING_URI,,{job.socket_path}",
        "--",
        sys.executable,
        "-c",
        script,
    ]
    process = await asyncio.create_subprocess_exec(
        *bwrap_command(policy, wrapped),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output = (await asyncio.wait_for(process.communicate(), timeout=240))[0].decode()
    assert process.returncode == 0, output
    assert "no direct route" in output and "refused PERMISSION_DENIED" in output, output
    assert job.server.get_run(job.run_id).data.metrics == {"sandboxed": 1.0}
    assert "k" not in job.server.get_run(job.other_run_id).data.tags


async def test_a_job_killed_mid_upload_does_not_hold_its_proxy_open(
    tracking_server: str,
) -> None:
    """The worker ends the proxy when the job ends: an upload left half-sent (a killed job)
    does not keep it waiting."""
    server = MlflowClient(tracking_uri=tracking_server)
    experiment = server.create_experiment(f"killed-{uuid.uuid4().hex[:8]}")
    run_id = server.create_run(experiment).info.run_id
    with tempfile.TemporaryDirectory(prefix="tp-job-") as job_dir:
        socket_path = Path(job_dir) / ".theodolite" / "mlflow.sock"
        proxy = job_tracking_proxy(  # without the run's artifact URI: the proxy asks MLflow
            socket_path=socket_path,
            upstream=tracking_server,
            run_id=run_id,
            experiment_id=experiment,
        )
        await proxy.__aenter__()
        reader, writer = await asyncio.open_unix_connection(str(socket_path))
        path = f"/api/2.0/mlflow-artifacts/artifacts/{experiment}/{run_id}/artifacts/half.bin"
        writer.write(
            f"PUT {path} HTTP/1.1\r\nHost: proxy\r\nContent-Length: 1000000\r\n\r\n".encode()
            + b"x" * 1000
        )
        await writer.drain()
        await asyncio.sleep(0.5)  # the proxy is streaming the upload to MLflow now
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.wait_for(proxy.__aexit__(None, None, None), timeout=30)
        assert loop.time() - started < 10
        assert not socket_path.exists()
        writer.close()
    assert server.list_artifacts(run_id) == []


async def test_a_jobs_uploads_stop_at_its_cap(
    open_job: Callable[..., Awaitable[Job]], tmp_path: Path
) -> None:
    job = await open_job(max_upload_bytes=1024 * 1024)
    first, second = tmp_path / "first.bin", tmp_path / "second.bin"
    first.write_bytes(b"1" * 600 * 1024)
    second.write_bytes(b"2" * 600 * 1024)
    await in_thread(job.client.log_artifact, job.run_id, str(first))
    with pytest.raises(Exception, match="413"):
        await in_thread(job.client.log_artifact, job.run_id, str(second))
    base = f"{job.tracking_uri}/api/2.0/mlflow-artifacts/artifacts/{job.experiment_id}"

    async def unsized() -> AsyncIterator[bytes]:
        yield b"no length given"

    async with httpx.AsyncClient(timeout=30) as http:
        answer = await http.put(f"{base}/{job.run_id}/artifacts/chunked.bin", content=unsized())
    assert answer.status_code == 411, answer.text
    assert [a.path for a in job.server.list_artifacts(job.run_id)] == ["first.bin"]

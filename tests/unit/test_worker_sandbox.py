"""The worker's side of the sandbox: what a job's environment holds, how its limits are chosen,
what the worker does on a host without namespaces, how a breach is named."""

from __future__ import annotations

import logging
import sys
import uuid
from pathlib import Path

import pytest

from theodolite.sandbox.limits import SandboxLimits
from theodolite.sandbox.policy import SandboxPolicy
from theodolite.sandbox.probe import Isolation
from theodolite_worker import sandboxing
from theodolite_worker.containment import breach_after, job_environment
from theodolite_worker.execution import ExecutionResult
from theodolite_worker.sandboxing import (
    JobSandbox,
    Sandboxes,
    WeakIsolationRefused,
    gpu_devices,
    inside_url,
    isolation_at_start,
    isolation_report,
)
from theodolite_worker.settings import WorkerSettings

SECRETS = {
    "THEODOLITE_BROKER_URL": "amqp://theodolite:broker-password@rabbit:5672/",
    "THEODOLITE_DB_URL": "postgresql+asyncpg://postgres:db-password@db/theodolite",
    "THEODOLITE_S3_ACCESS_KEY": "s3-access",
    "THEODOLITE_S3_SECRET_KEY": "s3-secret",
    "THEODOLITE_WORKER_TOKEN": "worker-token",
    "AWS_SECRET_ACCESS_KEY": "aws-secret",
}


def test_a_jobs_environment_holds_no_credential_of_the_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    job_id = uuid.uuid4()
    env = job_environment(WorkerSettings(work_dir=tmp_path), job_id, "run-1", "7", home=tmp_path)
    assert not set(SECRETS) & set(env)
    assert not [value for value in SECRETS.values() if any(value in v for v in env.values())]
    assert env["HOME"] == str(tmp_path)
    assert env["PATH"].split(":")[0] == str(Path(sys.executable).parent)
    assert (env["MLFLOW_RUN_ID"], env["MLFLOW_EXPERIMENT_ID"]) == ("run-1", "7")
    assert env["THEODOLITE_JOB_ID"] == str(job_id)


def test_configured_proxies_reach_the_job(tmp_path: Path) -> None:
    settings = WorkerSettings(work_dir=tmp_path, job_proxies={"HTTPS_PROXY": "http://proxy:3128"})
    env = job_environment(settings, uuid.uuid4(), "r", "1", home=tmp_path)
    assert env["HTTPS_PROXY"] == env["https_proxy"] == "http://proxy:3128"


def test_a_jobs_limits_are_the_defaults_with_its_own_within_the_maxima(tmp_path: Path) -> None:
    settings = WorkerSettings.model_validate(
        {
            "work_dir": tmp_path,
            "job_limits": {"memory_bytes": "1 GiB"},  # as the environment gives it: JSON
            "max_limits": {"memory_bytes": "2 GiB", "processes": 100},
        }
    )
    sandboxes = Sandboxes(settings, None)
    assert settings.job_limits.cpu_seconds == 4 * 3600  # the other defaults stay
    assert sandboxes.limits_for(None).memory_bytes == 1024**3
    asked = sandboxes.limits_for({"memory_bytes": "8 GiB", "processes": 10})
    assert (asked.memory_bytes, asked.processes) == (2 * 1024**3, 10)
    with pytest.raises(ValueError, match="memory_bytes"):
        sandboxes.limits_for({"memory_bytes": "lots"})
    with pytest.raises(ValueError, match="swap"):
        sandboxes.limits_for({"swap": 1})


def _no_namespaces() -> Isolation:
    return Isolation(bwrap_problem="bwrap: setting up uid map: Permission denied", enter_problem="")


def test_a_host_without_namespaces_stops_the_worker_unless_weak_isolation_is_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(sandboxing, "probe_isolation", _no_namespaces)
    with pytest.raises(WeakIsolationRefused, match="THEODOLITE_WORKER_ACCEPT_WEAK_ISOLATION"):
        isolation_at_start(WorkerSettings(work_dir=tmp_path))
    accepting = WorkerSettings(work_dir=tmp_path, accept_weak_isolation=True)
    with caplog.at_level(logging.ERROR):
        isolation = isolation_at_start(accepting)
    assert "WEAK ISOLATION ACCEPTED" in caplog.text and "uid map" in caplog.text
    assert not Sandboxes(accepting, isolation).contained
    assert isolation_report(accepting, isolation)["sandbox"] == "no: weak isolation accepted"


def test_with_the_sandbox_off_nothing_is_probed(tmp_path: Path) -> None:
    settings = WorkerSettings(work_dir=tmp_path, sandbox=False)
    assert isolation_at_start(settings) is None
    assert isolation_report(settings, None) == {"sandbox": "off (THEODOLITE_WORKER_SANDBOX=false)"}


def test_gpu_workers_pass_in_only_the_assigned_device_nodes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    present = {"/dev/nvidia0", "/dev/nvidia1", "/dev/nvidiactl", "/dev/nvidia-uvm"}
    monkeypatch.setattr(sandboxing.os.path, "exists", lambda path: path in present)
    assert gpu_devices("1") == tuple(
        Path(p) for p in ("/dev/nvidia1", "/dev/nvidiactl", "/dev/nvidia-uvm")
    )
    assert gpu_devices(None) == ()


def test_services_are_reached_on_the_jobs_own_loopback_at_their_port() -> None:
    assert inside_url("http://prefect:4200/api") == ("http://127.0.0.1:4200/api", "prefect", 4200)


def _sandbox(tmp_path: Path, **limits: int) -> JobSandbox:
    policy = SandboxPolicy(
        uid=123_456,
        gid=123_456,
        work_dir=tmp_path,
        read_only=(),
        env={},
        limits=SandboxLimits.model_validate(limits),
    )
    return JobSandbox(policy=policy, cgroup=None)


def test_a_breach_is_named_however_the_job_ended(tmp_path: Path) -> None:
    sandbox = _sandbox(tmp_path, cpu_seconds=3, file_size_bytes=1024, disk_bytes=4096)

    def ended(code: int, **kwargs: object) -> ExecutionResult:
        return ExecutionResult(exit_code=code, timed_out=False, log_tail=[], **kwargs)  # type: ignore[arg-type]

    assert breach_after(ended(0), sandbox) is None
    assert breach_after(ended(1), sandbox) is None
    assert breach_after(ended(128 + 24), sandbox) == "CPU time limit 3 s exceeded"
    assert breach_after(ended(-9, breach="memory limit 1 GiB exceeded"), sandbox) == (
        "memory limit 1 GiB exceeded"
    )
    (tmp_path / "big").write_bytes(b"x" * 1024)  # Python ignores SIGXFSZ: the job saw EFBIG
    assert breach_after(ended(1), sandbox) == "file size limit 1 KiB exceeded"

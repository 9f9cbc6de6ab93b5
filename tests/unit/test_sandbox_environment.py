"""A sandbox's environment comes from an allow-list: no worker credential can enter it."""

from __future__ import annotations

import pytest

from theodolite.sandbox.environment import DEFAULT_HOME, plugin_environment, sandbox_environment

WORKER_ENVIRONMENT = {
    "PATH": "/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "TZ": "UTC",
    "HOME": "/root",
    "THEODOLITE_BROKER_URL": "amqp://worker:secret@broker:5672/",
    "THEODOLITE_DB_URL": "postgresql+asyncpg://postgres:pw@db/theodolite",
    "THEODOLITE_S3_SECRET_KEY": "s3-secret",
    "THEODOLITE_WORKER_TOKEN": "worker-token",
    "AWS_SECRET_ACCESS_KEY": "aws",
    "http_proxy": "http://worker-only-proxy:3128",
}


def test_only_allow_listed_names_are_inherited() -> None:
    environment = sandbox_environment(
        {"THEODOLITE_JOB_ID": "j-1", "MLFLOW_RUN_ID": "r-1"}, inherit_from=WORKER_ENVIRONMENT
    )
    assert environment == {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TZ": "UTC",
        "HOME": DEFAULT_HOME,
        "THEODOLITE_JOB_ID": "j-1",
        "MLFLOW_RUN_ID": "r-1",
    }


def test_the_real_environment_is_filtered_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THEODOLITE_S3_SECRET_KEY", "s3-secret")
    environment = sandbox_environment({})
    assert "THEODOLITE_S3_SECRET_KEY" not in environment
    assert "s3-secret" not in environment.values()


def test_proxies_only_when_configured_in_both_spellings() -> None:
    environment = sandbox_environment(
        {}, proxies={"HTTPS_PROXY": "http://proxy:3128"}, inherit_from=WORKER_ENVIRONMENT
    )
    assert environment["HTTPS_PROXY"] == environment["https_proxy"] == "http://proxy:3128"
    assert "http_proxy" not in environment
    with pytest.raises(ValueError, match="not a proxy setting: DATABASE_URL"):
        sandbox_environment({}, proxies={"DATABASE_URL": "x"})


def test_a_job_variable_outside_the_allow_list_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="AWS_SECRET_ACCESS_KEY, THEODOLITE_BROKER_URL"):
        sandbox_environment({"THEODOLITE_BROKER_URL": "amqp://", "AWS_SECRET_ACCESS_KEY": "x"})
    allowed = sandbox_environment({"MY_SEED": "3"}, allow=["MY_SEED"], inherit_from={})
    assert allowed["MY_SEED"] == "3"


def test_job_variables_may_set_home_path_devices_and_ids() -> None:
    environment = sandbox_environment(
        {
            "HOME": "/jobs/j-1",
            "PATH": "/venv/bin:/usr/bin",
            "CUDA_VISIBLE_DEVICES": "1",
            "THEODOLITE_JOB_ATTEMPT": "2",
        },
        inherit_from=WORKER_ENVIRONMENT,
    )
    assert environment["HOME"] == "/jobs/j-1"
    assert environment["PATH"] == "/venv/bin:/usr/bin"
    assert environment["CUDA_VISIBLE_DEVICES"] == "1"


def test_a_plugin_validation_gets_next_to_nothing() -> None:
    assert set(plugin_environment()) == {"PATH", "HOME", "LANG"}

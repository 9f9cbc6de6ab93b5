"""The environment an MLproject declares, read as MLflow reads it, and what a queue refuses."""

from __future__ import annotations

import pytest

from theodolite.environments import (
    DeclaredEnvironment,
    EnvironmentSupport,
    declared_environment,
    environment_key,
    environment_problems,
)
from theodolite.problems import ProblemsError

PYTHON_ENV = b"""python: "3.11"
build_dependencies:
  - pip
dependencies:
  - six==1.15.0
"""
WORKER = EnvironmentSupport(pythons=["3.11.7"], uv="0.13.9")


def test_python_env_is_read_from_the_archive_with_its_hash() -> None:
    declared = declared_environment(
        {"python_env": "./python_env.yaml"}, {"python_env.yaml": PYTHON_ENV}
    )
    assert declared.kind == "python"
    assert declared.setting == "python_env"
    assert declared.file == "python_env.yaml"
    assert declared.python == "3.11"
    assert declared.python_minor == "3.11"
    assert declared.build_dependencies == ["pip"]
    assert declared.dependencies == ["six==1.15.0"]
    assert declared.sha256 is not None and len(declared.sha256) == 64


def test_a_reader_callable_serves_as_the_archive() -> None:
    def read(name: str) -> bytes:
        return {"env/python.yaml": b"dependencies: [packaging==21.3]"}[name]

    declared = declared_environment({"python_env": "env/python.yaml"}, read)
    assert declared.dependencies == ["packaging==21.3"]
    assert declared.python is None


def test_nothing_declared_is_none_and_a_root_conda_yaml_is_conda_as_in_mlflow() -> None:
    assert declared_environment({}, {}).kind == "none"
    declared = declared_environment({}, {"conda.yaml": b"dependencies: [python=3.9]"})
    assert (declared.kind, declared.setting, declared.file) == ("conda", None, "conda.yaml")


def test_docker_and_kubernetes_keep_their_image() -> None:
    docker = declared_environment({"docker_env": {"image": "python:3.9"}}, {})
    assert (docker.kind, docker.image) == ("docker", "python:3.9")
    with pytest.raises(ProblemsError, match="docker_env.image"):
        declared_environment({"docker_env": {}}, {})
    assert declared_environment({"kubernetes_env": {}}, {}).kind == "kubernetes"


@pytest.mark.parametrize(
    ("document", "files", "message"),
    [
        ({"python_env": "missing.yaml"}, {}, "which the archive lacks"),
        ({"python_env": "../x.yaml"}, {}, "outside the project"),
        ({"python_env": "p.yaml", "conda_env": "c.yaml"}, {}, "at most one environment"),
        ({"python_env": "p.yaml"}, {"p.yaml": b"python: 3.10"}, "write the version quoted"),
        ({"python_env": "p.yaml"}, {"p.yaml": b"dependencies: six"}, "list of requirement"),
        ({"python_env": "p.yaml"}, {"p.yaml": b"pythn: '3.9'"}, "unknown key"),
        ({"python_env": "p.yaml"}, {"p.yaml": b"- a list"}, "must be a YAML mapping"),
    ],
)
def test_bad_declarations_are_refused_with_their_reason(
    document: dict[str, object], files: dict[str, bytes], message: str
) -> None:
    with pytest.raises(ProblemsError, match=message):
        declared_environment(document, files)


def test_a_missing_python_is_named_with_what_the_queue_has() -> None:
    declared = declared_environment(
        {"python_env": "p.yaml"}, {"p.yaml": b"python: '3.9'\ndependencies: [six]"}
    )
    (problem,) = environment_problems(declared, None, WORKER, queue="cpu")
    assert problem.field == "MLproject.python_env"
    assert "Python 3.9" in problem.message and "3.11.7" in problem.message
    assert environment_problems(declared, "local", WORKER, queue="cpu") == []
    assert environment_problems(declared, "uv", WORKER, queue="cpu")[0].field == "env_manager"


def test_conda_and_docker_are_refused_where_the_queue_lacks_them() -> None:
    conda = declared_environment({"conda_env": "c.yaml"}, {"c.yaml": b"name: x"})
    (problem,) = environment_problems(conda, None, WORKER, queue="cpu")
    assert "conda_env" in problem.message and "no conda or micromamba" in problem.message
    assert "python_env (uv 0.13.9; Python 3.11.7)" in problem.message
    with_conda = WORKER.model_copy(update={"conda": "micromamba 2.0"})
    assert environment_problems(conda, None, with_conda, queue="cpu") == []
    docker = DeclaredEnvironment(kind="docker", setting="docker_env", image="python:3.9")
    (problem,) = environment_problems(docker, None, WORKER, queue="cpu")
    assert "not set up for docker" in problem.message
    (problem,) = environment_problems(conda, "uv", WORKER, queue="cpu")
    assert "uv builds python_env" in problem.message


def test_the_python_version_matches_on_major_and_minor() -> None:
    assert WORKER.has_python("3.11.2")
    assert not WORKER.has_python("3.1")
    assert WORKER.kinds() == ["none", "python"]
    assert EnvironmentSupport().kinds() == ["none"]


def test_the_cache_key_follows_the_file_and_the_interpreter() -> None:
    declared = declared_environment({"python_env": "p.yaml"}, {"p.yaml": PYTHON_ENV})
    other = declared_environment({"python_env": "p.yaml"}, {"p.yaml": PYTHON_ENV + b"\n"})
    assert environment_key(declared, "3.11.7") == environment_key(declared, "3.11.7")
    assert environment_key(declared, "3.11.7") != environment_key(declared, "3.11.2")
    assert environment_key(declared, "3.11.7") != environment_key(other, "3.11.7")
    with pytest.raises(ValueError, match="declared in a file"):
        environment_key(DeclaredEnvironment(), "3.11.7")

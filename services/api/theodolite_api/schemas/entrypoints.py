from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from theodolite.problems import Problem


class ParameterPublic(BaseModel):
    name: str
    type: str
    default: str | None
    required: bool


class EntryPointPublic(BaseModel):
    name: str
    command: str
    parameters: list[ParameterPublic]
    warnings: list[str] = []  # what MLflow accepts but reads differently (a type read as string)


class EnvironmentPublic(BaseModel):
    """The environment an MLproject declares (``theodolite.environments.DeclaredEnvironment``)."""

    kind: str  # python, conda, docker, kubernetes or none
    setting: str | None  # the MLproject key that declared it (None: nothing, or conda.yaml)
    file: str | None  # the environment file in the archive
    sha256: str | None  # of that file
    python: str | None  # a python_env's Python version
    build_dependencies: list[str]
    dependencies: list[str]
    image: str | None  # a docker_env's image


class GraphPublic(BaseModel):
    """graph.yaml of a graph entry point, checked against the tasks workers have now."""

    valid: bool
    problems: list[Problem]
    spec: dict[str, Any] | None  # parameters, steps and outputs as parsed; None if unparsable


class EntryPointArchivePublic(BaseModel):
    id: uuid.UUID
    group_id: uuid.UUID
    sha256: str
    filename: str | None
    size_bytes: int
    archive_format: str
    project_name: str | None
    entry_points: list[EntryPointPublic]
    # .py and .sh files that run as entry points, as under ``mlflow run -e train.py``: with
    # python or bash, every parameter appended as --name value.
    runnable_files: list[str] = []
    graph: GraphPublic | None = None
    # The environment its MLproject declares (python_env, conda_env, docker_env, ...); null for
    # archives stored before environments were read.
    environment: EnvironmentPublic | None = None
    created_at: datetime


class EntryPointValidation(BaseModel):
    """What an upload would say, without storing anything."""

    valid: bool
    problems: list[Problem]
    sha256: str
    entry_points: list[EntryPointPublic]
    runnable_files: list[str] = []
    graph: GraphPublic | None = None
    environment: EnvironmentPublic | None = None

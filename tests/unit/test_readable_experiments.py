"""Which run or MLflow experiment a remote path value reads, parsed as MLflow parses it: the
experiments submission lets a job's tracking proxy read (theodolite_api.jobs.readable)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from theodolite.events import JobSubmitted
from theodolite.mlproject import EntryPointSpec
from theodolite.settings import MlflowSettings
from theodolite.web.errors import DependencyUnavailable
from theodolite_api.clients.mlflow import MlflowReader
from theodolite_api.jobs.readable import PathSource, path_source, readable_experiments

RUN = "500cf58bee2b40a4a82861cc31a617b1"


@pytest.mark.parametrize(
    ("value", "source"),
    [
        (f"runs:/{RUN}/inputs/data.csv", PathSource(run_id=RUN)),
        (f"runs:/{RUN}", PathSource(run_id=RUN)),
        # MLflow's parse_runs_uri takes the path's first part whatever the host says.
        (f"runs://profile/{RUN}/model", PathSource(run_id=RUN)),
        ("runs:/", PathSource()),
        ("runs:/../x", PathSource()),  # not a run id MLflow allows
        ("runs:relative/x", PathSource()),
        # A run's artifacts: <experiment id>/<run id>/artifacts/...
        (f"mlflow-artifacts:/7/{RUN}/artifacts/data.csv", PathSource(mlflow_experiment_id="7")),
        # MLflow 3's logged models: <experiment id>/models/<model id>/artifacts/...
        ("mlflow-artifacts:/12/models/m-0a1b/artifacts", PathSource(mlflow_experiment_id="12")),
        (
            f"mlflow-artifacts://mlflow:5000/3/{RUN}/artifacts/x",
            PathSource(mlflow_experiment_id="3"),
        ),
        ("mlflow-artifacts:/", PathSource()),
        ("mlflow-artifacts:/shared/x", PathSource()),  # not an experiment id
        ("mlflow-artifacts:x/y", PathSource()),
    ],
)
def test_the_source_of_a_remote_path(value: str, source: PathSource) -> None:
    assert path_source(value) == source


@pytest.mark.parametrize(
    "value", ["data/x.csv", "/abs/x", "file:///x", "models:/m/1", "s3://b/k", "https://h/x"]
)
def test_other_values_read_no_experiment(value: str) -> None:
    assert path_source(value) is None


def test_a_message_without_readable_experiments_reads_none() -> None:
    """A message from before the field (still on the broker) reads its own experiment only."""
    message = JobSubmitted.model_validate(
        {
            "experiment_id": "00000000-0000-0000-0000-000000000001",
            "mlflow_experiment_id": "1",
            "entrypoint_id": "00000000-0000-0000-0000-000000000002",
            "archive_sha256": "0" * 64,
            "entry_point": "main",
            "params": {},
            "queue": "cpu",
        }
    )
    assert message.readable_experiments == []


async def test_mlflow_down_is_unavailable_not_a_refusal() -> None:
    """A run's experiment cannot be known without MLflow: a 503, never a 422 that would call
    the group's own run foreign (nothing is created either way)."""
    spec = EntryPointSpec.model_validate(
        {"command": "python read.py {data}", "parameters": {"data": {"type": "path"}}}
    )
    settings = MlflowSettings(tracking_uri="http://127.0.0.1:9")  # nothing listens there
    async with httpx.AsyncClient(timeout=5) as client:
        with pytest.raises(DependencyUnavailable):
            await readable_experiments(
                session=None,  # type: ignore[arg-type]  # not reached: MLflow is asked first
                mlflow=MlflowReader(settings, client),
                spec=spec,
                params={"data": f"runs:/{RUN}/data.csv"},
                group_id=uuid.uuid4(),
                own_mlflow_experiment_id="1",
            )

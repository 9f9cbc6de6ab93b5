"""What a running task may use: the job's MLflow run, a seeded random generator, the compute
device, and a progress reporter that reaches the job's events."""

from __future__ import annotations

import contextvars
import hashlib
import io
import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from theodolite.sdk.protocol import PROGRESS_LINE_PREFIX

_current: contextvars.ContextVar[TaskContext] = contextvars.ContextVar("theodolite_task_context")


def step_seed(seed: int, step: str) -> int:
    """A seed per step, stable across runs: the same graph and seed give the same numbers."""
    digest = hashlib.sha256(f"{seed}:{step}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


@dataclass
class TaskContext:
    step: str
    seed: int
    job_id: str | None = None
    mlflow_run_id: str | None = None
    output_dir: Path = field(default_factory=lambda: Path("outputs"))
    _mlflow: Any = None

    @property
    def device(self) -> str:
        """``cuda`` on a GPU worker that pinned a GPU for this job, else ``cpu``."""
        return os.environ.get("THEODOLITE_DEVICE", "cpu")

    @property
    def step_seed(self) -> int:
        return step_seed(self.seed, self.step)

    def rng(self) -> Any:
        """A numpy Generator seeded from the job's seed and this step's name."""
        import numpy as np

        return np.random.default_rng(self.step_seed)

    def progress(self, fraction: float | None = None, message: str | None = None) -> None:
        """Report progress; it reaches the job's events (not its log)."""
        if fraction is not None:
            fraction = min(1.0, max(0.0, float(fraction)))
        line = json.dumps({"fraction": fraction, "message": message, "step": self.step})
        sys.stdout.write(f"{PROGRESS_LINE_PREFIX}{line}\n")
        sys.stdout.flush()

    def _client(self) -> Any:
        if self.mlflow_run_id is None:
            return None
        if self._mlflow is None:
            from mlflow.tracking import MlflowClient

            self._mlflow = MlflowClient()
        return self._mlflow

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        client = self._client()
        if client is None:
            print(f"[{self.step}] metric {key} = {value}")
            return
        client.log_metric(self.mlflow_run_id, key, float(value), step=step or 0)

    def log_param(self, key: str, value: Any) -> None:
        client = self._client()
        if client is None:
            print(f"[{self.step}] param {key} = {value}")
            return
        client.log_param(self.mlflow_run_id, key, value)

    def log_artifact(self, name: str, content: bytes | str | Path) -> None:
        """Log bytes, text or a file under ``name`` (a relative path in the run's artifacts)."""
        data = content.read_bytes() if isinstance(content, Path) else content
        payload = data.encode() if isinstance(data, str) else data
        client = self._client()
        if client is None:
            target = self.output_dir / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(payload)
            print(f"[{self.step}] artifact {target}")
            return
        folder, _, filename = name.rpartition("/")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / filename
            path.write_bytes(payload)
            client.log_artifact(self.mlflow_run_id, str(path), folder or None)

    def log_figure(self, name: str, figure: Any) -> None:
        """Log a matplotlib figure as a PNG."""
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        self.log_artifact(name, buffer.getvalue())


def current() -> TaskContext:
    """The context of the task running now; outside a graph, a plain local one."""
    try:
        return _current.get()
    except LookupError:
        return TaskContext(step="local", seed=0)


def activate(context: TaskContext) -> contextvars.Token[TaskContext]:
    return _current.set(context)


def deactivate(token: contextvars.Token[TaskContext]) -> None:
    _current.reset(token)

"""The plugin SDK: the only part of Theodolite that plugins import.

    from theodolite.sdk import task, current

    @task
    def train(x: np.ndarray, y: np.ndarray, max_iter: int = 100) -> LogisticRegression:
        \"\"\"Fit a logistic regression.\"\"\"
        current().progress(0.5, "fitting")
        ...

A task's contract is its signature: type hints, defaults and docstring become a JSON schema for
its inputs and output; values with no JSON form (arrays, models) are named opaque types.
Tasks that call into libraries drawing from process-wide generators (ART, PyTorch) run them in
``seeded`` or ``isolated`` sections, which keep concurrent steps deterministic.
"""

from theodolite.sdk.context import TaskContext, current
from theodolite.sdk.schema import TaskSpec, task_spec
from theodolite.sdk.seeding import isolated, resolve_seed, seeded
from theodolite.sdk.task import task

__all__ = [
    "TaskContext",
    "TaskSpec",
    "current",
    "isolated",
    "resolve_seed",
    "seeded",
    "task",
    "task_spec",
]

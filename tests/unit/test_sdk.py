import json
import subprocess
import sys
from typing import TypedDict

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression

from tests.fixtures.tasks import running_as
from theodolite.sdk import current, task, task_spec
from theodolite.sdk.context import TaskContext, step_seed
from theodolite.sdk.discovery import discover_installed


class Split(TypedDict):
    x: np.ndarray
    n: int


@task(retries=2)
def load(seed: int = 0, names: list[str] | None = None) -> Split:
    """Load things.

    Args:
        seed: the seed of everything
    """
    return {"x": np.zeros(seed), "n": seed}


@task(name="fit")
def train(x: np.ndarray, model: BaseEstimator | None, rate: float) -> LogisticRegression:
    return LogisticRegression()


def test_decorated_functions_stay_plain_functions() -> None:
    assert load(3)["n"] == 3


def test_contract_comes_from_the_signature_and_docstring() -> None:
    spec = task_spec(load)
    assert spec.name == "load" and spec.retries == 2
    assert spec.description == "Load things."
    assert spec.inputs["seed"].json_schema == {"type": "integer"}
    assert spec.inputs["seed"].required is False and spec.inputs["seed"].default == 0
    assert spec.inputs["seed"].description == "the seed of everything"
    assert spec.output.opaque is not None
    assert spec.output.fields["x"].opaque == "numpy.ndarray"
    assert spec.output.fields["n"].json_schema == {"type": "integer"}


def test_opaque_types_carry_their_bases_and_unions_what_they_accept() -> None:
    spec = task_spec(train)
    assert spec.name == "fit"
    assert spec.inputs["x"].opaque == "numpy.ndarray"
    assert spec.inputs["model"].nullable
    assert spec.inputs["model"].opaque == "sklearn.base.BaseEstimator"
    assert "sklearn.base.BaseEstimator" in spec.output.opaque_bases
    assert spec.inputs["rate"].required


def test_context_outside_a_graph_and_per_step_seeds() -> None:
    assert current().step == "local"
    with running_as(TaskContext(step="train", seed=7)):
        assert current().step_seed == step_seed(7, "train")
        first = current().rng().random(3)
        assert np.array_equal(first, current().rng().random(3))
        assert current().device == "cpu"
    assert step_seed(7, "train") != step_seed(7, "attack")


def test_progress_is_a_structured_stdout_line(capsys) -> None:
    with running_as(TaskContext(step="fit", seed=0)):
        current().progress(1.5, "almost")
    line = capsys.readouterr().out
    assert line == '::theodolite-progress:: {"fraction": 1.0, "message": "almost", "step": "fit"}\n'


def test_discovery_finds_installed_and_extra_plugins() -> None:
    catalogue, functions, errors = discover_installed(
        {"testing": "tests.fixtures.graph_tasks", "broken": "no.such.module"}
    )
    assert {"data", "models", "attacks", "metrics", "reports", "testing"} <= set(catalogue.plugins)
    assert catalogue.task("testing.slow_add") is not None
    assert functions["data.load_digits"].__name__ == "load_digits"
    assert "ModuleNotFoundError" in errors["broken"]


def test_importing_the_sdk_imports_no_numpy_torch_or_other_project_code() -> None:
    probe = (
        "import json, sys, theodolite.sdk, theodolite.sdk.checks, theodolite.sdk.seeding; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('numpy', 'torch', 'art', 'sklearn') or m.startswith('theodolite') "
        "and not m.startswith('theodolite.sdk') and m != 'theodolite')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(done.stdout) == []

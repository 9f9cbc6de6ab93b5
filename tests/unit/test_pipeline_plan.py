"""A pipeline's plan: edges declared and implied by references, cycles named, sweeps expanded,
and which jobs each job waits on (the same point of a per-point stage, every point for a fan-in)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from theodolite_api.pipelines import references
from theodolite_api.pipelines.plan import cycles, plan_pipeline
from theodolite_api.schemas.pipelines import StageCreate

ARCHIVE = uuid.uuid4()


def _stages(**stages: dict[str, Any]) -> dict[str, StageCreate]:
    return {name: StageCreate(entrypoint_id=ARCHIVE, **fields) for name, fields in stages.items()}


def _problems(**stages: dict[str, Any]) -> set[tuple[str, str]]:
    _, found = plan_pipeline(_stages(**stages), max_jobs=100)
    return {(p.field, p.message) for p in found}


def test_references_imply_dependencies_and_order_puts_upstream_first() -> None:
    plan, problems = plan_pipeline(
        _stages(
            report={"params": {"a": "${left.metrics.acc}", "b": "${right.run_id}"}},
            left={"params": {"model": "${train.artifact_uri}/model"}},
            right={"depends_on": ["train"]},
            train={},
        ),
        max_jobs=100,
    )
    assert problems == []
    assert plan.order == ["train", "left", "right", "report"]
    assert plan.upstream == {
        "train": [],
        "left": ["train"],
        "right": ["train"],
        "report": ["left", "right"],
    }
    (report,) = plan.jobs["report"]
    assert report.templates == {"a": "${left.metrics.acc}", "b": "${right.run_id}"}
    assert report.depends_on == [("left", None), ("right", None)]


def test_every_cycle_is_named_once_with_the_references_that_close_it() -> None:
    found = _problems(
        a={"depends_on": ["b"]},
        b={"depends_on": ["c"]},
        c={"params": {"x": "${a.job_id}"}},
        d={"depends_on": ["e"]},
        e={"depends_on": ["d"]},
    )
    assert found == {
        ("stages", "cycle: a -> b -> c -> a"),
        ("stages", "cycle: d -> e -> d"),
        ("stages.c.params.x", "${a.job_id}: 'a' is not upstream of 'c' (cycle: a -> b -> c -> a)"),
    }
    assert cycles({"a": {"a"}}) == [["a", "a"]]


def test_a_sweep_runs_per_point_what_follows_it_too_and_a_fan_in_once_after_all() -> None:
    plan, problems = plan_pipeline(
        _stages(
            data={},
            train={"sweep": {"grid": {"lr": [0.1, 0.01]}, "seeds": [1, 2]}, "depends_on": ["data"]},
            attack={"params": {"model": "${train.artifact_uri}"}},
            report={"params": {"accs": "${attack.metrics.acc}"}, "fan_in": True},
        ),
        max_jobs=100,
    )
    assert problems == []
    points = [job.point for job in plan.jobs["train"]]
    assert points == [
        {"lr": 0.1, "seed": 1},
        {"lr": 0.1, "seed": 2},
        {"lr": 0.01, "seed": 1},
        {"lr": 0.01, "seed": 2},
    ]
    assert [job.params for job in plan.jobs["train"]] == points  # swept values become params
    assert all(job.depends_on == [("data", None)] for job in plan.jobs["train"])
    assert [job.depends_on for job in plan.jobs["attack"]] == [[("train", i)] for i in range(4)]
    assert [job.point for job in plan.jobs["attack"]] == points  # it follows train's points
    (report,) = plan.jobs["report"]
    assert report.depends_on == [("attack", i) for i in range(4)]


def test_sweep_shapes_that_cannot_be_planned_are_refused() -> None:
    assert _problems(
        a={"sweep": {"grid": {"x": [1, 2]}}},
        b={"sweep": {"grid": {"y": [1, 2]}}, "depends_on": ["a"]},
        c={"sweep": {"grid": {"z": [1]}}},
        d={"depends_on": ["a", "c"]},
        e={"fan_in": True},
        f={"sweep": {"grid": {"x": []}, "seeds": [3, 3]}, "params": {"x": 1}},
    ) == {
        (
            "stages.b.sweep",
            "it would run per point of sweep 'a': set fan_in to run it after all of that "
            "sweep's points",
        ),
        (
            "stages.d.depends_on",
            "it follows the points of sweeps a and c: set fan_in to run it once after all of them",
        ),
        ("stages.e.fan_in", "no upstream stage is a sweep"),
        ("stages.f.sweep.grid.x", "give at least one value"),
        ("stages.f.sweep.grid.x", "also in params: fixed or swept, not both"),
        ("stages.f.sweep.seeds", "seeds repeat"),
    }


def test_too_many_jobs_and_a_fan_in_over_too_many_points_are_refused() -> None:
    wide = {"sweep": {"grid": {"x": list(range(101))}}}
    found = _problems(a=wide, b={"fan_in": True, "depends_on": ["a"]})
    assert ("stages.b", "it waits on 101 jobs; at most 100") in found
    assert ("stages", "102 jobs; a pipeline may have at most 100") in found


@pytest.mark.parametrize(
    ("value", "found", "bad"),
    [
        ("${a.run_id}", ["${a.run_id}"], []),
        ("runs:/${a.run_id}/model and ${b.params.lr}", ["${a.run_id}", "${b.params.lr}"], []),
        ("${a.metrics.robust accuracy}", ["${a.metrics.robust accuracy}"], []),
        ("${a}", [], ["bad reference ${a}"]),
        ("${a.metrics}", [], ["bad reference ${a.metrics}"]),
        ("${a.artifacts.x}", [], ["bad reference ${a.artifacts.x}"]),
        ("plain $text {x}", [], []),
        (3, [], []),
    ],
)
def test_references_are_parsed_from_strings(value: Any, found: list[str], bad: list[str]) -> None:
    parsed, problems = references.parse(value)
    assert [str(r) for r in parsed] == found
    assert [p.split(":")[0] for p in problems] == bad


async def test_substitution_replaces_each_reference_with_its_value() -> None:
    async def value_of(reference: references.Reference) -> str:
        return f"<{reference.stage}:{reference.what}:{reference.key}>"

    text = await references.substitute("runs:/${a.run_id}/m ${b.metrics.acc}!", value_of)
    assert text == "runs:/<a:run_id:None>/m <b:metrics:acc>!"

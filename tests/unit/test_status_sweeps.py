"""Sweep expansion, problems, summaries and the pure-Python SVG figure."""

import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from theodolite.db.status_tables import Sweep, SweepJob
from theodolite.db.tables import Job
from theodolite.problems import Problem
from theodolite_api.schemas.sweeps import SweepCreate
from theodolite_api.sweeps.figure import default_x, render
from theodolite_api.sweeps.operations import (
    Point,
    _point_problem,
    expand,
    grid_problems,
    point_count,
    points_and_table,
    sweep_status,
)
from theodolite_api.sweeps.svg_chart import ChartPoint, Series, line_chart, nice_ticks

SVG = "{http://www.w3.org/2000/svg}"


def _request(**changes: object) -> SweepCreate:
    body = {"experiment_id": uuid.uuid4(), "entrypoint_id": uuid.uuid4(), **changes}
    return SweepCreate.model_validate(body)


def test_points_are_the_product_times_seeds_times_repeats() -> None:
    request = _request(grid={"a": [1, 2], "b": ["x", "y", "z"]}, seeds=[7, 8], repeats=2)
    points = expand(request)
    assert point_count(request) == len(points) == 24
    assert points[0] == Point(values={"a": 1, "b": "x", "seed": 7}, repeat=0)
    assert points[1] == Point(values={"a": 1, "b": "x", "seed": 7}, repeat=1)
    assert points[2].values == {"a": 1, "b": "x", "seed": 8}
    assert points[-1] == Point(values={"a": 2, "b": "z", "seed": 8}, repeat=1)
    assert len(expand(_request(repeats=3))) == 3


def test_grid_problems_are_all_named() -> None:
    problems = grid_problems(
        _request(
            grid={"a": [], "b": [1, 1], "p": [1]}, params={"p": 2}, seeds=[1, 1], seed_param="b"
        ),
        max_points=10,
    )
    assert {p.field for p in problems} == {"grid.a", "grid.b", "grid.p", "seed_param", "seeds"}
    assert [p.field for p in grid_problems(_request(), max_points=10)] == ["grid"]
    too_many = grid_problems(_request(grid={"a": list(range(11))}), max_points=10)
    assert "at most 10" in too_many[0].message


def test_a_point_problem_is_said_where_the_author_can_fix_it() -> None:
    request = _request(grid={"eps": [0.1, "big"]}, seeds=[3, 4])
    point = Point(values={"eps": "big", "seed": 4}, repeat=0)
    assert (
        _point_problem(Problem(field="params.eps", message="m"), request, point).field
        == "grid.eps.1"
    )
    assert (
        _point_problem(Problem(field="params.seed", message="m"), request, point).field == "seeds.1"
    )
    assert (
        _point_problem(Problem(field="params.lr", message="m"), request, point).field == "params.lr"
    )
    assert _point_problem(Problem(field="queue", message="m"), request, point).field == "queue"


def test_sweep_status_follows_its_children() -> None:
    assert sweep_status(["queued", "queued"]) == ("queued", False)
    assert sweep_status(["queued", "running"]) == ("running", False)
    assert sweep_status(["succeeded", "queued"]) == ("running", False)
    assert sweep_status(["succeeded", "succeeded"]) == ("succeeded", True)
    assert sweep_status(["succeeded", "failed"]) == ("failed", True)
    assert sweep_status(["cancelled", "cancelled"]) == ("cancelled", True)


def _sweep_with_children() -> tuple[
    Sweep, list[tuple[SweepJob, Job]], dict[uuid.UUID, dict[str, float]]
]:
    sweep = Sweep(
        experiment_id=uuid.uuid4(),
        entrypoint_id=uuid.uuid4(),
        entry_point="main",
        queue="cpu",
        params={},
        grid={"eps": [0.1, 0.2], "model": ["a", "b"]},
        seeds=[1, 2],
        seed_param="seed",
        repeats=1,
        metrics=[],
    )
    children, found = [], {}
    now = datetime.now(UTC)
    for position, point in enumerate(expand(_request(grid=sweep.grid, seeds=sweep.seeds))):
        job = Job(
            experiment_id=sweep.experiment_id,
            entrypoint_id=sweep.entrypoint_id,
            entry_point="main",
            params={},
            queue="cpu",
            status="succeeded",
            created_at=now,
            updated_at=now,
        )
        children.append(
            (SweepJob(sweep_id=sweep.id, job_id=job.id, position=position, point=point.values), job)
        )
        eps, seed = point.values["eps"], point.values["seed"]
        found[job.id] = {"accuracy": 1 - eps * seed, "step.x.duration_s": 0.1}
    return sweep, children, found


def test_the_table_summarizes_each_grid_point_over_its_seeds() -> None:
    sweep, children, found = _sweep_with_children()
    points, table = points_and_table(sweep, children, found, ["accuracy"])
    assert len(points) == 8 and len(table) == 4
    row = next(r for r in table if r.values == {"eps": 0.2, "model": "a"})
    summary = row.metrics["accuracy"]
    assert (summary.n, summary.min, summary.max) == (2, 0.6, 0.8)
    assert abs(summary.mean - 0.7) < 1e-9 and abs(summary.std - 0.1) < 1e-9
    assert row.statuses == {"succeeded": 2}


def test_the_figure_is_svg_with_a_line_per_other_value() -> None:
    sweep, children, found = _sweep_with_children()
    points, _ = points_and_table(sweep, children, found, ["accuracy"])
    assert default_x(sweep) == "eps"
    root = ET.fromstring(render(sweep, points, "accuracy", None))
    assert root.tag == f"{SVG}svg"
    assert len(root.findall(f".//{SVG}polyline")) == 2  # model a, model b
    assert len(root.findall(f".//{SVG}circle")) == 4  # mean over seeds per point
    categorical = ET.fromstring(render(sweep, points, "accuracy", "model"))
    texts = [t.text for t in categorical.iter(f"{SVG}text")]
    assert "a" in texts and "b" in texts


def test_chart_ticks_and_escaping() -> None:
    assert nice_ticks(0, 1) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(3, 3)[0] < 3 < nice_ticks(3, 3)[-1]
    svg = line_chart(
        title="<a & b>",
        x_label="x",
        y_label="y",
        series=[Series("s<1>", [ChartPoint(0, 1), ChartPoint(1, 2, low=1.5, high=2.5)])],
    )
    root = ET.fromstring(svg)
    assert root.find(f"{SVG}title").text == "<a & b>"  # type: ignore[union-attr]
    empty = ET.fromstring(line_chart(title="t", x_label="x", y_label="y", series=[]))
    assert empty.tag == f"{SVG}svg"

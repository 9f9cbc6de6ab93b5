"""Per-step overhead of the graph engine: a chain of N trivial steps run as a Prefect flow
against a real Prefect server, against calling the same functions directly. Prints JSON.

    .venv/bin/python bench/graph_overhead.py --steps 100 --repeats 3

Starts its own Prefect server (own database, free port) and removes it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from theodolite.devstack import drop_database, isolated_config, start_prefect, stop_process

ADD_ONE = "def add_one(value: float) -> float:\n    return value + 1\n"


def chain_yaml(steps: int) -> str:
    lines = [
        "local_plugins: {bench: bench_tasks}",
        "steps:",
        "  s0: {task: bench.add_one, inputs: {value: 0}}",
    ]
    lines += [
        f"  s{i}: {{task: bench.add_one, inputs: {{value: $s{i - 1}}}}}" for i in range(1, steps)
    ]
    lines += ["outputs:", f"  last: {{from: $s{steps - 1}, kind: metric}}"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as state:
        config = isolated_config(Path(state))
        start_prefect(config)
        os.environ["PREFECT_API_URL"] = config.prefect_api_url
        os.environ["PREFECT_HOME"] = str(Path(state) / "client")
        try:
            folder = Path(state) / "graph"
            folder.mkdir()
            (folder / "bench_tasks.py").write_text(
                "from theodolite.sdk import task\n\n@task\n" + ADD_ONE
            )
            (folder / "graph.yaml").write_text(chain_yaml(args.steps))
            sys.path.insert(0, str(folder))

            from theodolite.graphs.command import load_graph
            from theodolite.graphs.engine import run_graph

            graph, functions = load_graph(folder / "graph.yaml", {})
            engine_s = []
            for repeat in range(args.repeats):
                started = time.perf_counter()
                run = run_graph(graph, {}, functions, flow_run_name=f"bench-{repeat}", seed=0)
                engine_s.append(time.perf_counter() - started)
                assert run.succeeded and run.results[f"s{args.steps - 1}"] == args.steps

            direct_s = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                value = 0.0
                for _ in range(args.steps):
                    value = functions["bench.add_one"](value)
                direct_s.append(time.perf_counter() - started)
        finally:
            stop_process(config, "prefect")
            drop_database(config, config.prefect_database)

    engine = statistics.median(engine_s)
    direct = statistics.median(direct_s)
    print(
        json.dumps(
            {
                "steps": args.steps,
                "repeats": args.repeats,
                "engine_s_median": round(engine, 3),
                "engine_s_all": [round(s, 3) for s in engine_s],
                "direct_s_median": round(direct, 6),
                "overhead_per_step_ms": round((engine - direct) / args.steps * 1000, 2),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

"""Run in a job's sandbox before its command: download its remote ``path`` values as
``mlflow run`` does (``mlflow.artifacts.download_artifacts``), through the job's own tracking
proxy, so a job reads only what its group may."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

INPUTS_SPEC = "inputs.json"


def fetch(spec_file: Path) -> None:
    """Download each ``{name: {"uri", "target"}}`` of the file to its target path."""
    import mlflow.artifacts  # the job's MLflow: its tracking URI is its proxy

    wanted = json.loads(spec_file.read_text())
    for name, item in wanted.items():
        target = Path(item["target"])
        # MLflow names what it downloads itself (a file, a folder, a model's folder): download
        # beside the target, then give it the name the command was rendered with.
        scratch = target.parent.with_name(f".{target.parent.name}")
        scratch.mkdir(parents=True, exist_ok=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        got = mlflow.artifacts.download_artifacts(artifact_uri=item["uri"], dst_path=str(scratch))
        os.replace(got, target)
        print(f"[theodolite] parameter {name}: {item['uri']} -> {target}", flush=True)


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    try:
        fetch(Path(arguments[0]))
    except Exception as exc:
        print(
            f"[theodolite] could not download a path parameter: {type(exc).__name__}: {exc}",
            file=sys.stderr,
            flush=True,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

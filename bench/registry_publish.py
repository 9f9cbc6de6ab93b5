"""Plugin registry figures, through a private stack. Prints JSON. Not a test.

    .venv/bin/python bench/registry_publish.py --rounds 10

- ``validate_typical_s``: publishing a typical plugin (``plugins/attacks``: a source archive that
  is built into a wheel and imports ART) from upload to acknowledgement, new bytes each time.
- ``publish_to_running_new_version_ms``: a new version's upload acknowledged -> the first job
  running it (its ``running`` transition), submitted right after the acknowledgement.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx
from stats import percentiles

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fixtures.archives import make_tar  # noqa: E402
from tests.fixtures.plugins import make_wheel  # noqa: E402
from theodolite.client import TheodoliteClient, pack_folder  # noqa: E402
from theodolite.devstack import down_isolated, isolated_config, up_isolated  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as state:
        config = isolated_config(Path(state))
        up_isolated(config)
        try:
            api = httpx.Client(
                base_url=f"{config.api_url}/api/v1", headers=config.auth_headers(), timeout=600
            )
            validate_s = []
            for round_ in range(3):
                folder = Path(state) / f"attacks-{round_}"
                shutil.copytree(REPO / "plugins" / "attacks", folder)
                toml = folder / "pyproject.toml"
                toml.write_text(
                    toml.read_text()
                    .replace(
                        'name = "theodolite-plugin-attacks"', f'name = "bench-attacks-{round_}"'
                    )
                    .replace("attacks = ", f"bench{round_} = ")
                )
                started = time.perf_counter()
                response = api.post(
                    "/plugins", files={"archive": ("a.tar.gz", pack_folder(folder))}
                )
                assert response.status_code == 201, response.text
                validate_s.append(time.perf_counter() - started)

            name = "benchpublish"
            assert (
                api.post(
                    "/plugins", files={"archive": ("p.whl", make_wheel(name, "1.0.0"))}
                ).status_code
                == 201
            )
            graph = f"steps:\n  which: {{task: {name}.version_number}}\n"
            mlproject = (
                "name: b\nentry_points:\n  main:\n    command: 'theodolite run-graph graph.yaml'\n"
            )
            with TheodoliteClient(config.api_url, api_key=config.admin_key()) as client:
                experiment = client.ensure_experiment("bench-registry")
                entrypoint = client.upload_archive(
                    make_tar({"MLproject": mlproject, "graph.yaml": graph})
                )
                latencies = []
                for number in range(1, args.rounds + 1):
                    response = api.post(
                        "/plugins",
                        files={
                            "archive": ("p.whl", make_wheel(name, f"1.0.{number}", number=number))
                        },
                    )
                    assert response.status_code == 201, response.text
                    acknowledged = time.time()
                    job = client.submit_job(
                        experiment_id=experiment["id"], entrypoint_id=entrypoint["id"]
                    )
                    job = client.wait(job["id"], poll_s=0.05)
                    assert job["plugin_versions"][name]["version"] == f"1.0.{number}"
                    running = next(h["at"] for h in job["history"] if h["status"] == "running")
                    latencies.append(
                        (datetime.fromisoformat(running).timestamp() - acknowledged) * 1000
                    )
        finally:
            down_isolated(config)
    print(
        json.dumps(
            {
                "validate_typical_s": [round(s, 2) for s in validate_s],
                "publish_to_running_new_version_ms": percentiles(latencies),
                "rounds": args.rounds,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

"""Schemathesis over the whole public OpenAPI document, with a valid administrator key, on a
stack of its own (it creates users, groups and queues the other tests should not meet): no
answer is a 5xx, and every status code, content type and body is the one the document declares.
Bounded in time (SCHEMATHESIS_SECONDS, 240 by default); the run's summary is printed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.stack import ARCHIVE_LIMITS
from theodolite.devstack import StackConfig, down_isolated, isolated_config, up_isolated

SECONDS = os.environ.get("SCHEMATHESIS_SECONDS", "240")
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)
# Left out: event streams (an experiment's never ends) and revoking keys (the run would revoke
# the very key it runs with, then meet nothing but 401s).
EXCLUDED = r"(/events$|/admin/keys/\{key_id\}/revoke$)"


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackConfig]:
    config = isolated_config(tmp_path_factory.mktemp("schemathesis"), ARCHIVE_LIMITS)
    try:
        up_isolated(config)
        yield config
    finally:
        down_isolated(config)


# The stack's start and the run's own time limit, with room to spare.
@pytest.mark.timeout(int(SECONDS) + 600)
def test_no_5xx_and_every_answer_as_documented(own_stack: StackConfig, tmp_path: Path) -> None:
    key = own_stack.admin_key()
    assert key is not None
    run = subprocess.run(
        [
            str(Path(sys.executable).with_name("st")),
            "run",
            f"{own_stack.api_url}/openapi.json",
            "--header",
            f"Authorization: Bearer {key}",
            "--checks",
            ",".join(CHECKS),
            "--exclude-path-regex",
            EXCLUDED,
            "--max-time",
            SECONDS,
            "--max-examples",
            "15",
            "--workers",
            "2",
            "--request-timeout",
            "30",
            # The same cases on every run, so CI repeats what was seen to pass; a change of the
            # document changes the cases.
            "--seed",
            "20261201",
            "--report",
            "junit",
            "--report-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=int(SECONDS) + 300,
    )
    summary = run.stdout[run.stdout.rfind("SUMMARY") :]
    print(summary)
    generated = re.search(r"(\d+) generated", summary)
    assert generated is not None and int(generated.group(1)) > 500, summary
    assert run.returncode == 0, run.stdout[-12000:]

"""Plugin validation where the host cannot sandbox it (bwrap that fails): refused unless weaker
isolation is accepted, and then still with an empty environment and the result pipe; the
reported wheel must be a regular file of the work folder."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from theodolite_registry.problem_report import OUTSIDE, import_problem, scrub
from theodolite_registry.sandboxing import SETTING, IsolationRefused, ValidationSandbox
from theodolite_registry.validation import (
    ValidatedPlugin,
    ValidationFailed,
    _wheel_in,
    validate_plugin,
)

from tests.fixtures.plugins import make_wheel

SECRET = "s3-secret-that-must-stay-outside"


@pytest.fixture
def no_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host where bubblewrap cannot start, and a registry whose environment holds secrets."""
    monkeypatch.setenv("THEODOLITE_BWRAP", "/bin/false")
    monkeypatch.setenv("THEODOLITE_S3_SECRET_KEY", SECRET)


def validate(source: str | None, sandbox: ValidationSandbox) -> ValidatedPlugin:
    wheel = make_wheel("weak", "1.0.0", tasks_source=source)
    return asyncio.run(
        validate_plugin(wheel, "p.whl", timeout_s=60, memory_mb=2048, sandbox=sandbox)
    )


@pytest.mark.usefixtures("no_sandbox")
def test_without_a_sandbox_validation_is_refused_and_says_why() -> None:
    sandbox = ValidationSandbox()
    isolation = sandbox.probe()
    assert not isolation.sandboxed
    assert "NOT sandboxed" in isolation.description and SETTING in isolation.description
    with pytest.raises(IsolationRefused, match=SETTING) as refused:
        validate(None, sandbox)
    assert refused.value.status_code == 503


@pytest.mark.usefixtures("no_sandbox")
def test_accepted_weaker_isolation_still_has_an_empty_environment_and_the_result_pipe() -> None:
    sandbox = ValidationSandbox(accept_weak_isolation=True)
    assert "accepted" in sandbox.probe().description
    assert validate(None, sandbox).plugin == "weak"

    with pytest.raises(ValidationFailed) as leaked:
        validate("import os\nraise RuntimeError(repr(dict(os.environ)))\n", sandbox)
    assert "LANG" in leaked.value.reason and SECRET not in leaked.value.reason
    assert "THEODOLITE_" not in leaked.value.reason

    forged = "import json, os\nprint(json.dumps({'ok': True, 'plugin': 'attacks'}))\nos._exit(0)\n"
    with pytest.raises(ValidationFailed) as incomplete:
        validate(forged, sandbox)
    assert incomplete.value.kind == "incomplete"


def test_the_wheel_must_be_a_regular_file_of_the_work_folder(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    wheel = work / "built.whl"
    wheel.write_bytes(b"wheel bytes")
    assert _wheel_in(work, str(wheel)) == b"wheel bytes"

    outside = tmp_path / "secret"
    outside.write_text("the registry's")
    (work / "link.whl").symlink_to(outside)
    (work / "inner-link.whl").symlink_to(wheel)
    os.link(outside, work / "hard.whl")
    os.mkfifo(work / "fifo.whl")
    (work / "folder.whl").mkdir()
    for reported in (
        str(outside),
        "/etc/hostname",
        "built.whl",  # relative
        str(work / ".." / "secret"),
        str(work / "link.whl"),
        str(work / "inner-link.whl"),
        str(work / "hard.whl"),
        str(work / "fifo.whl"),
        str(work / "folder.whl"),
        str(work / "missing.whl"),
        None,
    ):
        with pytest.raises(ValidationFailed) as refused:
            _wheel_in(work, reported)
        assert refused.value.kind == "wheel", reported


def test_reports_keep_the_plugins_paths_relative_and_hide_every_other(tmp_path: Path) -> None:
    plugin = tmp_path / "work" / "unpacked"
    (plugin / "pkg").mkdir(parents=True)
    module = plugin / "pkg" / "tasks.py"
    module.write_text("def load():\n    open('/etc/secret.json')\n\n\nload()\n")
    try:
        exec(compile(module.read_text(), str(module), "exec"), {})
    except OSError as exc:
        kind, reason = import_problem(exc, [plugin])
    assert kind == "import"
    assert reason.startswith("importing the plugin failed (pkg/tasks.py:2): FileNotFoundError")
    assert 'File "pkg/tasks.py", line 5, in <module>' in reason
    assert str(tmp_path) not in reason and "/etc" not in reason and OUTSIDE in reason

    pip_output = f"error in {plugin}/pkg/setup.py\n  File /usr/lib/python3/site.py, line 3"
    assert scrub(pip_output, [plugin]) == f"error in pkg/setup.py\n  File {OUTSIDE}, line 3"

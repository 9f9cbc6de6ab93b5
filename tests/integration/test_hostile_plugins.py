"""Hostile plugins at validation, against the real registry (through the api): a forged result
on stdout or on the result pipe, a wheel path out of the work folder, an import that reads the
environment, reaches the network or writes outside its folder. Each is refused with a 422 that
names the plugin's own file and line and nothing of the host, and nothing is published."""

from __future__ import annotations

import json
import re
import secrets
import sysconfig
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import theodolite_registry

from tests.fixtures.plugins import make_wheel
from tests.fixtures.stack import Stack

FORGED = {
    "ok": True,
    "plugin": "attacks",
    "distribution": "theodolite-attacks",
    "version": "99.0.0",
    "module": "theodolite_attacks.tasks",
    "tasks": {},
    "wheel": "/etc/hostname",
}
# Writes the forged result to the pipe the registry reads (its number is in argv), pointing at
# the wheel WHEEL (a Python expression), and ends the process before validation can.
ON_THE_RESULT_PIPE = """\
import json, os, sys
fd = int(sys.argv[sys.argv.index("--result-fd") + 1])
work = sys.argv[-1]
forged = {forged}
forged["wheel"] = {wheel}
{prepare}
os.write(fd, (json.dumps(forged) + "\\n").encode())
os._exit(0)
"""
# A path outside the plugin (or a setting's value) that a report must not show.
HOST_PATH = re.compile(r"(?<![\w<])/(work|tmp|root|usr|etc|home|proc)\b|site-packages")


def name() -> str:
    return f"h{secrets.token_hex(3)}"


def upload(api: httpx.Client, data: bytes) -> httpx.Response:
    return api.post("/plugins", files={"archive": ("plugin.whl", data)}, timeout=300)


def refused(api: httpx.Client, plugin: str, source: str) -> dict[str, str]:
    """Upload a wheel whose module is ``source``: its 422 problem; nothing was published."""
    response = upload(api, make_wheel(plugin, "1.0.0", tasks_source=source))
    assert response.status_code == 422, response.text
    assert api.get(f"/plugins/{plugin}/1.0.0").status_code == 404
    assert api.get("/plugins/attacks/99.0.0").status_code == 404
    problem: dict[str, str] = response.json()["problems"][0]
    return problem


def secrets_of(stack: Stack) -> list[str]:
    """What the registry's environment holds and no response may show."""
    config = stack.config
    database = urlsplit(config.postgres_url)
    return [
        config.s3_secret_key,
        config.broker_url,
        config.database_url("asyncpg", config.database),
        f"{database.hostname}:{database.port}",
        config.worker_secret(),
        "THEODOLITE_S3",
        "THEODOLITE_DB",
        "THEODOLITE_BROKER",
    ]


def test_the_registry_says_validation_is_sandboxed(stack: Stack) -> None:
    ready = httpx.get(f"{stack.config.registry_url}/readyz", timeout=30).json()
    assert ready["validation_isolation"]["sandboxed"] is True, ready


def test_a_result_forged_on_stdout_then_os_exit_is_refused(api: httpx.Client) -> None:
    source = f"import json, os\nprint(json.dumps({FORGED!r}))\nos._exit(0)\n"
    problem = refused(api, name(), source)
    assert problem["field"] == "archive (incomplete)"
    assert "without reporting a result" in problem["message"]


@pytest.mark.parametrize(
    ("wheel", "prepare", "kind"),
    [
        ('"/etc/hostname"', "", "wheel"),
        ("work + '/../../../etc/hostname'", "", "wheel"),
        ("work + '/out.whl'", "os.symlink('/etc/hostname', work + '/out.whl')", "wheel"),
        # A real wheel inside the folder (the upload itself), named as another plugin.
        ("sys.argv[-2]", "", "incomplete"),
    ],
    ids=["absolute path out", "dot-dot out", "symlink out", "another plugin's name"],
)
def test_a_result_forged_on_the_result_pipe_is_refused(
    api: httpx.Client, wheel: str, prepare: str, kind: str
) -> None:
    source = ON_THE_RESULT_PIPE.format(forged=FORGED, wheel=wheel, prepare=prepare)
    problem = refused(api, name(), source)
    assert problem["field"] == f"archive ({kind})", problem


def test_the_environment_inside_holds_no_secret(api: httpx.Client, stack: Stack) -> None:
    plugin = name()
    source = "import os\nprint(dict(os.environ))\nraise RuntimeError(repr(dict(os.environ)))\n"
    response = upload(api, make_wheel(plugin, "1.0.0", tasks_source=source))
    assert response.status_code == 422
    assert "RuntimeError" in response.text and "LANG" in response.text
    accepted_source = (  # the environment as an input's default: shown in the task's contract
        "import os\nfrom theodolite.sdk import task\n\n\n@task\n"
        "def environment(seen: str = repr(dict(os.environ))) -> str:\n    return seen\n"
    )
    accepted = upload(api, make_wheel(plugin, "1.0.1", tasks_source=accepted_source))
    assert accepted.status_code == 201, accepted.text
    assert "PATH" in json.dumps(accepted.json()["tasks"]), "the default is the environment"
    for secret in secrets_of(stack):
        assert secret not in response.text
        assert secret not in accepted.text


def test_the_network_is_unreachable_from_inside(api: httpx.Client, stack: Stack) -> None:
    config = stack.config
    ports = {
        "postgresql": urlsplit(config.postgres_url).port or 5432,
        "s3": config.s3_port,
        "registry": config.registry_port,
        "api": config.api_internal_port,
    }
    source = f"""\
import socket
reached = []
for service, port in {ports!r}.items():
    try:
        socket.create_connection(("127.0.0.1", port), timeout=3).close()
        reached.append(service + " connected")
    except OSError as exc:
        reached.append(service + " " + type(exc).__name__)
raise RuntimeError("; ".join(reached))
"""
    message = refused(api, name(), source)["message"]
    assert "connected" not in message
    for service in ports:
        assert re.search(rf"{service} (ConnectionRefusedError|OSError)", message), message


def test_writes_outside_its_folder_are_refused(api: httpx.Client) -> None:
    plugin = name()
    targets = [
        Path(theodolite_registry.__file__).parent / f"{plugin}.py",  # the registry's code
        Path(sysconfig.get_paths()["purelib"]) / f"{plugin}.pth",  # site-packages
        Path("/tmp") / f"{plugin}-escaped",  # the host's /tmp (the sandbox has its own)
        Path("/etc") / f"{plugin}-escaped",
    ]
    source = f"""\
outcomes = []
for target in {[str(t) for t in targets]!r}:
    try:
        with open(target, "w") as out:
            out.write("import os; os.system('owned')")
        outcomes.append("wrote")
    except OSError as exc:
        outcomes.append(type(exc).__name__)
raise RuntimeError(", ".join(outcomes))
"""
    message = refused(api, plugin, source)["message"]
    assert "RuntimeError" in message
    for target in targets:
        assert not target.exists(), f"the import wrote {target}"


def test_the_report_names_the_plugins_file_and_line_and_nothing_outside(
    api: httpx.Client,
) -> None:
    plugin = name()
    source = (
        "import json\n\n\ndef load(path: str) -> dict:\n"
        "    return json.loads(open(path).read())\n\n\nSETTINGS = load('/etc/theodolite.json')\n"
    )
    problem = refused(api, plugin, source)
    message = problem["message"]
    assert problem["field"] == "archive (import)"
    assert f"({plugin}_plugin/tasks.py:5)" in message, message
    assert f'File "{plugin}_plugin/tasks.py", line 8, in <module>' in message
    assert "FileNotFoundError" in message
    assert not HOST_PATH.search(message), message


def validation_processes() -> list[str]:
    """Processes running as a validation's uid (the registry's range, 200000..200999)."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            lines = status.read_text().splitlines()
        except OSError:
            continue  # ended meanwhile
        uid = next((int(line.split()[1]) for line in lines if line.startswith("Uid:")), 0)
        if 200_000 <= uid < 201_000:
            found.append(f"{status.parent.name} (uid {uid})")
    return found


def test_a_daemon_started_by_the_import_ends_with_its_validation(api: httpx.Client) -> None:
    source = """\
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        while True:
            time.sleep(0.1)
    os._exit(0)
time.sleep(0.5)
raise RuntimeError("left a daemon behind")
"""
    assert "left a daemon behind" in refused(api, name(), source)["message"]
    assert validation_processes() == []


def test_a_fork_bomb_in_the_import_stops_at_the_process_limit(
    api: httpx.Client, stack: Stack
) -> None:
    problem = refused(api, name(), "import os\nwhile True:\n    os.fork()\n")
    assert problem["field"] == "archive (import)"
    assert "BlockingIOError" in problem["message"], problem
    assert validation_processes() == []
    assert httpx.get(f"{stack.config.registry_url}/healthz", timeout=10).status_code == 200

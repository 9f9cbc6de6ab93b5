"""The images' locks (deploy/locks/*.txt) are current: what `make locks` last wrote still covers
every requirement their images' distributions declare, and torch is the build each image needs.

Re-resolving needs the network, so this checks what a stale lock would break instead: each
requirement of each local distribution the image installs (with the extras it installs them with,
and their local dependencies' in turn) must be pinned, with a hash, to a version it accepts.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.packaging.test_image_environments import read_dockerfile

ROOT = Path(__file__).resolve().parents[2]
LOCKS = ROOT / "deploy" / "locks"
# Where each local distribution lives, by name.
FOLDERS = {
    canonicalize_name(tomllib.loads(path.read_text())["project"]["name"]): path.parent
    for pattern in (
        "shared/*/pyproject.toml",
        "services/*/pyproject.toml",
        "plugins/*/pyproject.toml",
    )
    for path in ROOT.glob(pattern)
}
# The images' platform: Python 3.11 on linux x86_64.
TARGET: dict[str, str] = {
    "python_version": "3.11",
    "python_full_version": "3.11.0",
    "implementation_name": "cpython",
    "implementation_version": "3.11.0",
    "platform_python_implementation": "CPython",
    "os_name": "posix",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "platform_release": "",
    "platform_version": "",
}
# Image (Dockerfile name, TORCH_VARIANT) -> its lock.
IMAGES = {
    ("api", None): "api",
    ("plugin-registry", None): "registry",
    ("worker", "cpu"): "worker-cpu",
    ("worker", "cuda"): "worker-cuda",
}
CPU_TORCH = Version("2.13.0+cpu")


def pins(lock: str) -> dict[str, tuple[Version, int]]:
    """name -> (version, number of hashes) of a lock."""
    text = (LOCKS / f"{lock}.txt").read_text()
    found: dict[str, tuple[Version, int]] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        if match := re.match(r"([A-Za-z0-9._-]+)==(\S+)", block):
            name = canonicalize_name(match.group(1))
            assert name not in found, f"{lock}: {name} pinned twice"
            found[name] = (Version(match.group(2)), block.count("--hash=sha256:"))
    return found


def requirement_set(lock: str) -> tuple[list[tuple[str, set[str]]], list[Requirement]]:
    """The local distributions (folder, extras) and the other requirements of a lock's .in."""
    local: list[tuple[str, set[str]]] = []
    other: list[Requirement] = []
    for line in (LOCKS / f"{lock}.in").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("./"):
            match = re.fullmatch(r"\./([\w/.-]+?)/?(?:\[([\w,-]+)\])?", line)
            assert match, line
            local.append((match.group(1), set(filter(None, (match.group(2) or "").split(",")))))
        else:
            other.append(Requirement(line))
    return local, other


def declared(folder: str, extras: set[str], seen: set[str] | None = None) -> list[Requirement]:
    """Every third-party requirement of a local distribution with those extras, through its
    local dependencies, for the images' platform."""
    seen = set() if seen is None else seen
    key = f"{folder}[{','.join(sorted(extras))}]"
    if key in seen:
        return []
    seen.add(key)
    project = tomllib.loads((ROOT / folder / "pyproject.toml").read_text())["project"]
    lines = list(project.get("dependencies", []))
    for extra in extras:
        lines += project["optional-dependencies"][extra]
    found: list[Requirement] = []
    for line in lines:
        requirement = Requirement(line)
        if requirement.marker and not requirement.marker.evaluate(TARGET):
            continue
        name = canonicalize_name(requirement.name)
        if name in FOLDERS:
            local = FOLDERS[name].relative_to(ROOT).as_posix()
            found += declared(local, set(requirement.extras), seen)
        else:
            found.append(requirement)
    return found


@pytest.mark.parametrize("lock", sorted(set(IMAGES.values())))
def test_every_declared_requirement_is_pinned_with_hashes(lock: str) -> None:
    pinned = pins(lock)
    local, other = requirement_set(lock)
    assert local, f"{lock}.in names no local distribution"
    requirements = [r for folder, extras in local for r in declared(folder, extras)] + other
    problems = []
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        if name not in pinned:
            problems.append(f"{requirement} is not in {lock}.txt: run `make locks`")
        elif not requirement.specifier.contains(pinned[name][0], prereleases=True):
            problems.append(
                f"{requirement} does not accept {name}=={pinned[name][0]}: run `make locks`"
            )
    assert not problems, "\n".join(problems)
    assert not {name for name in pinned if name in FOLDERS}, "local distributions are not locked"
    assert all(hashes for _, hashes in pinned.values()), "every pin carries its hashes"


@pytest.mark.parametrize(("image", "lock"), [(image, lock) for (image, _), lock in IMAGES.items()])
def test_each_dockerfile_installs_its_lock_and_the_locked_distributions(
    image: str, lock: str
) -> None:
    variant = next(v for (i, v), name in IMAGES.items() if (i, name) == (image, lock))
    stage = read_dockerfile(image, {"TORCH_VARIANT": variant} if variant else None)
    assert stage.lock == f"deploy/locks/{lock}.txt"
    assert stage.cpu_torch == (variant != "cuda" and image != "api")
    local, _ = requirement_set(lock)
    installed = set()
    for argument in stage.distributions:
        match = re.fullmatch(r"\./([\w/.*-]+?)/?(?:\[([\w,-]+)\])?", argument)
        assert match, argument
        # A shell glob such as ./plugins/*/ : the folders it names (the trailing / keeps files out).
        folders = [f for f in ROOT.glob(match.group(1)) if f.is_dir()] or [ROOT / match.group(1)]
        extras = frozenset(filter(None, (match.group(2) or "").split(",")))
        installed |= {(folder.relative_to(ROOT).as_posix(), extras) for folder in folders}
    assert installed == {(folder, frozenset(extras)) for folder, extras in local}


def test_torch_is_the_build_each_image_needs() -> None:
    api, registry, cpu, cuda = (
        pins(lock) for lock in ("api", "registry", "worker-cpu", "worker-cuda")
    )
    # The api has no ML framework at all.
    assert not {"torch", "adversarial-robustness-toolbox", "mlflow", "scikit-learn"} & set(api)
    # CPU images: the CPU build from the PyTorch CPU index, and no CUDA library.
    for lock in (registry, cpu):
        assert lock["torch"][0] == CPU_TORCH
        assert not [name for name in lock if name.startswith("nvidia-")]
    # The GPU worker: public PyPI's torch 2.13.0, the CUDA build, with its CUDA libraries.
    assert cuda["torch"][0] == Version("2.13.0")
    assert {"nvidia-cuda-runtime", "nvidia-cudnn-cu13", "nvidia-cublas"} <= set(cuda)
    # Apart from torch's build, the two workers run the same versions.
    same = {name: pin[0] for name, pin in cpu.items() if name != "torch"}
    assert same == {name: cuda[name][0] for name in same}


def test_make_locks_writes_every_lock_from_its_requirement_set() -> None:
    done = subprocess.run(
        ["make", "-n", "-o", ".venv/.installed", "-o", "install", "locks"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    commands = [line for line in done.stdout.splitlines() if "uv pip compile" in line]
    for lock in set(IMAGES.values()):
        (command,) = [c for c in commands if f"deploy/locks/{lock}.in " in c]
        assert f"-o deploy/locks/{lock}.txt" in command
        assert "--generate-hashes" in command and "--python-version 3.11" in command
        header = (LOCKS / f"{lock}.txt").read_text()
        assert "make locks" in header and f"-r deploy/locks/{lock}.in" in header

"""Installing the api must not pull torch or ART (issue 2)."""

import re
from importlib.metadata import PackageNotFoundError, requires


def _closure(distribution: str) -> set[str]:
    seen: set[str] = set()
    pending = [distribution]
    while pending:
        name = pending.pop()
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        seen.add(key)
        try:
            requirements = requires(name) or []
        except PackageNotFoundError:
            continue
        for requirement in requirements:
            if "extra ==" in requirement:
                continue
            pending.append(re.split(r"[ ;<>=!~\[(]", requirement, maxsplit=1)[0])
    return seen


def test_api_install_pulls_no_ml_frameworks() -> None:
    closure = _closure("theodolite-api")
    assert "fastapi" in closure and "theodolite" in closure
    assert not closure & {"torch", "adversarial-robustness-toolbox", "mlflow", "scikit-learn"}


def test_worker_ml_extra_brings_what_jobs_import() -> None:
    ml = [r for r in requires("theodolite-worker") or [] if 'extra == "ml"' in r]
    names = {re.split(r"[ ;<>=!~\[]", r, maxsplit=1)[0] for r in ml}
    assert {"adversarial-robustness-toolbox", "scikit-learn", "mlflow"} <= names

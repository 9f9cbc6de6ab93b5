"""Seeded and isolated sections. ART and PyTorch draw from process-wide generators: numpy's
legacy ``np.random``, Python's ``random`` and torch's default generator, which every ART
PyTorch ``predict`` and ``fit`` draws from too (each DataLoader pass takes a seed from it). A
graph's independent steps run at the same time in threads, so every section that calls into them
holds one lock shared by all plugins in the process and puts the generators' state back
afterwards: ``seeded`` seeds them first (the same inputs and seed give the same numbers however
the steps interleave), ``isolated`` only shields the others from its draws (predictions).
Code that draws from those generators without the lock, which no built-in task does, can still
get in between.

    from theodolite.sdk import isolated, resolve_seed, seeded

    with seeded(resolve_seed("square", seed)):
        adversarial = attack.generate(x)

numpy and torch are looked up when a section starts, never imported by the SDK itself.
"""

from __future__ import annotations

import random
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from theodolite.sdk.context import current

# One lock per process, kept on ``sys``: plugin versions published before the SDK had this
# module carry a copy of it, and a worker may run one of those beside a newer plugin.
LOCK: threading.RLock = vars(sys).setdefault("_theodolite_global_rng_lock", threading.RLock())

MAX_SEED = 2**32 - 1


def resolve_seed(task: str, seed: int | None) -> int:
    """``seed``, or without one the step's own seed (from the job's seed and the step name)."""
    if seed is None:
        return current().step_seed
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"{task}: input 'seed' must lie in [0, {MAX_SEED}], got {seed}")
    return int(seed)


def _numpy() -> Any:
    # Imported here, not at the top: plugin authors install the SDK without numpy.
    try:
        import numpy
    except ImportError:
        return None
    return numpy


def _torch() -> Any:
    return sys.modules.get("torch")  # only a plugin that uses torch has imported it


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators, as a plain script does."""
    random.seed(seed)
    if (numpy := _numpy()) is not None:
        numpy.random.seed(seed)
    if (torch := _torch()) is not None:
        torch.manual_seed(seed)


def _forked_torch() -> Any:
    torch = _torch()
    if torch is None:
        return nullcontext()
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    return torch.random.fork_rng(devices=devices)


@contextmanager
def isolated() -> Iterator[None]:
    """Hold the lock and leave the global generators as they were (for predictions)."""
    numpy = _numpy()
    with LOCK, _forked_torch():
        numpy_state = numpy.random.get_state() if numpy is not None else None
        python_state = random.getstate()
        try:
            yield
        finally:
            if numpy is not None:
                numpy.random.set_state(numpy_state)
            random.setstate(python_state)


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Hold the lock, seed the global generators, and put their state back afterwards."""
    with isolated():
        seed_everything(seed)
        yield

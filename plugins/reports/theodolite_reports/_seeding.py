"""Seeded and isolated sections. ART and PyTorch draw from process-wide generators: numpy's
legacy ``np.random``, Python's ``random`` and torch's default generator, which every ART
PyTorch ``predict`` and ``fit`` draws from too (each DataLoader pass takes a seed from it). A
graph's independent steps run at the same time in threads, so every section that calls into them
holds one lock shared by all plugins in the process and puts the generators' state back
afterwards: ``seeded`` seeds them first (the same inputs and seed give the same numbers however
the steps interleave), ``isolated`` only shields the others from its draws (predictions).
Code that draws from those generators without the lock, which no built-in task does, can still
get in between.

(The same file is in each plugin that needs it: plugins import nothing from one another.)
"""

from __future__ import annotations

import random
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import numpy as np

from theodolite.sdk import current

# One lock per process for every plugin, whichever of them is imported first.
LOCK: threading.RLock = vars(sys).setdefault("_theodolite_global_rng_lock", threading.RLock())

MAX_SEED = 2**32 - 1


def resolve_seed(task: str, seed: int | None) -> int:
    """``seed``, or without one the step's own seed (from the job's seed and the step name)."""
    if seed is None:
        return current().step_seed
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"{task}: input 'seed' must lie in [0, {MAX_SEED}], got {seed}")
    return int(seed)


def _torch() -> Any:
    return sys.modules.get("torch")  # only a plugin that uses torch has imported it


def seed_everything(seed: int) -> None:
    """What a plain script does before calling ART: the fidelity tests do exactly this."""
    random.seed(seed)
    np.random.seed(seed)
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
    with LOCK, _forked_torch():
        numpy_state, python_state = np.random.get_state(), random.getstate()
        try:
            yield
        finally:
            np.random.set_state(numpy_state)
            random.setstate(python_state)


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Hold the lock, seed the global generators, and put their state back afterwards."""
    with isolated():
        seed_everything(seed)
        yield

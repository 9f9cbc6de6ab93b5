"""The SDK's seeding lock: seeded sections give a plain script's numbers, leave the global
generators as they were, and stay deterministic when sections run in threads at once."""

from __future__ import annotations

import random
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from tests.fixtures.tasks import running_as
from theodolite.sdk import isolated, resolve_seed, seeded
from theodolite.sdk.context import TaskContext, step_seed
from theodolite.sdk.seeding import LOCK, MAX_SEED, seed_everything


def draws() -> tuple[float, float, float]:
    """One number from each of Python's, numpy's and torch's global generators."""
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_a_seeded_section_draws_what_a_plain_script_draws() -> None:
    random.seed(3)
    np.random.seed(3)
    torch.manual_seed(3)
    plain = draws()
    with seeded(3):
        assert draws() == plain


def test_seed_everything_seeds_all_three_generators() -> None:
    seed_everything(11)
    first = draws()
    seed_everything(11)
    assert draws() == first


@pytest.mark.parametrize("section", [lambda: seeded(5), isolated])
def test_a_section_puts_the_generators_back(section) -> None:
    seed_everything(1)
    expected = draws()
    seed_everything(1)
    with section():
        draws()
        seed_everything(99)
        draws()
    assert draws() == expected


def test_the_generators_are_put_back_when_the_section_raises() -> None:
    seed_everything(2)
    expected = draws()
    seed_everything(2)
    with pytest.raises(RuntimeError), seeded(8):
        draws()
        raise RuntimeError("the attack failed")
    assert draws() == expected


def test_seeded_sections_give_the_same_numbers_when_threads_run_them_at_once() -> None:
    def section(seed: int) -> list[tuple[float, float, float]]:
        with seeded(seed):
            return [draws() for _ in range(50)]

    alone = [section(seed) for seed in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        together = list(pool.map(section, range(8)))
    assert together == alone


def test_a_section_holds_the_process_wide_lock() -> None:
    holder: list[bool] = []
    with isolated():
        # Another thread cannot take the lock while this section holds it.
        thread = threading.Thread(target=lambda: holder.append(LOCK.acquire(blocking=False)))
        thread.start()
        thread.join()
    assert holder == [False]
    # Plugin versions published with their own copy of this module take the same lock.
    assert LOCK is vars(sys)["_theodolite_global_rng_lock"]


def test_without_a_seed_a_step_uses_its_own() -> None:
    with running_as(TaskContext(step="attack", seed=7)) as context:
        assert resolve_seed("square", None) == step_seed(7, "attack") == context.step_seed


def test_a_given_seed_is_used_as_it_is() -> None:
    assert resolve_seed("square", 0) == 0
    assert resolve_seed("square", MAX_SEED) == MAX_SEED


@pytest.mark.parametrize("seed", [-1, MAX_SEED + 1])
def test_a_seed_out_of_range_is_refused_with_the_task_name(seed: int) -> None:
    with pytest.raises(ValueError, match=r"square: input 'seed' must lie in \[0, 4294967295\]"):
        resolve_seed("square", seed)

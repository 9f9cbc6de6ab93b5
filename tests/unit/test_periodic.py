"""The periodic service base class: rounds on an interval, woken early, a failed round survived."""

from __future__ import annotations

import asyncio

import pytest

from tests.unit.waiting import eventually
from theodolite.periodic import PeriodicService


class Counting(PeriodicService):
    name = "counting"

    def __init__(self, interval_s: float, fail_first: bool = False) -> None:
        super().__init__(interval_s=interval_s)
        self.calls = 0
        self.fail_first = fail_first

    async def run_once(self) -> None:
        self.calls += 1
        if self.fail_first and self.calls == 1:
            raise RuntimeError("first round fails")


async def test_a_failed_round_is_survived_and_wake_starts_the_next_one() -> None:
    service = Counting(interval_s=3600, fail_first=True)
    async with service:
        await eventually(lambda: service.rounds == 1)
        assert service.calls == 1 and service.failed_rounds == 1
        service.wake()
        await eventually(lambda: service.rounds == 2)
        assert service.calls == 2
    assert not service.running


async def test_rounds_repeat_on_the_interval_and_stop_ends_them() -> None:
    service = Counting(interval_s=0.01)
    await service.start()
    await eventually(lambda: service.calls >= 3)
    await service.stop()
    calls = service.calls
    assert calls >= 3
    await asyncio.sleep(0.05)
    assert service.calls == calls


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Counting(interval_s=0)

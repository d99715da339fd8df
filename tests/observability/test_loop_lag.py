from __future__ import annotations

import asyncio
import time

import pytest

from reautod.observability.loop_lag import LoopLagMonitor
from reautod.observability.metrics import Metrics


class FakeTime:
    """A clock whose sleeps advance it by the requested time plus a scripted extra delay."""

    def __init__(self, extra_delays: list[float]) -> None:
        self.now = 100.0
        self.extra = list(extra_delays)
        self.slept: list[float] = []
        self.done = asyncio.Event()

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        if not self.extra:
            self.done.set()
            await asyncio.Event().wait()  # park until the monitor is stopped
        self.now += seconds + self.extra.pop(0)
        await asyncio.sleep(0)


async def test_gauge_follows_scheduled_versus_actual_wake_time() -> None:
    metrics = Metrics()
    fake = FakeTime([0.0, 0.3, 0.02, -0.001])
    monitor = LoopLagMonitor(metrics.event_loop_lag_seconds, interval_s=0.5, clock=fake.clock,
                             sleep=fake.sleep)
    monitor.start()
    await fake.done.wait()
    await monitor.stop()
    assert fake.slept == [0.5] * 5
    assert monitor.max_lag_s == pytest.approx(0.3)
    assert monitor.last_lag_s == 0.0  # woke early by clock resolution: no negative lag
    assert metrics.registry.get_sample_value("reautod_event_loop_lag_seconds") == 0.0


async def test_a_blocked_loop_shows_up_as_lag() -> None:
    metrics = Metrics()
    monitor = LoopLagMonitor(metrics.event_loop_lag_seconds, interval_s=0.01)
    monitor.start()
    await asyncio.sleep(0)  # let the monitor schedule its first sleep
    time.sleep(0.2)  # noqa: ASYNC251 - blocking the loop is the point: sync I/O on it would
    await asyncio.sleep(0.05)
    await monitor.stop()
    # the monitor's wake-up was due ~0.01 s in but could only run after the 0.2 s block
    assert monitor.max_lag_s >= 0.15


async def test_stop_cancels_the_task_and_is_idempotent() -> None:
    monitor = LoopLagMonitor(Metrics().event_loop_lag_seconds, interval_s=0.01)
    monitor.start()
    monitor.start()  # a second start does not create a second task
    tasks = [t for t in asyncio.all_tasks() if t.get_name() == "loop-lag"]
    assert len(tasks) == 1
    await monitor.stop()
    await monitor.stop()
    assert tasks[0].cancelled()


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError):
        LoopLagMonitor(Metrics().event_loop_lag_seconds, interval_s=0)

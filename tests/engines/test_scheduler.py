"""The bounded scheduler: queueing, overload, timeouts, cancellation, stats."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator

import pytest

from reautod.engines import scheduler as scheduler_module
from reautod.engines.base import EngineState, RequestTiming
from reautod.engines.scheduler import EngineScheduler, JobContext, ahead_of_need
from reautod.errors import EngineError, OverloadedError, ValidationError

WAIT = 10.0  # generous upper bound for a worker to reach a point; never a timing assertion


@pytest.fixture
async def scheduler() -> AsyncIterator[EngineScheduler]:
    sched = EngineScheduler("test", queue_size=2)
    yield sched
    await sched.close()


class Gate:
    """A job that blocks its worker until released, and says when it has started."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, ctx: JobContext) -> str:
        self.started.set()
        if not self.release.wait(WAIT):
            raise RuntimeError("gate never released")
        return "released"


@pytest.fixture
def gate() -> Iterator[Gate]:
    g = Gate()
    yield g
    g.release.set()  # never leave a worker blocked


async def wait_started(gate: Gate) -> None:
    assert await asyncio.to_thread(gate.started.wait, WAIT)


async def test_run_returns_result_with_timing(scheduler: EngineScheduler) -> None:
    def job(ctx: JobContext) -> tuple[str, float]:
        return f"hi {ctx.call_id}", ctx.timing().queue_wait_s

    result, wait = await scheduler.run(job, call_id="c1", timeout_s=WAIT)
    assert result == "hi c1"
    assert wait >= 0
    stats = scheduler.stats()
    assert (stats.requests, stats.completed, stats.failures) == (1, 1, 0)
    assert stats.compute_s_total >= 0


async def test_full_queue_is_refused_and_counted(scheduler: EngineScheduler, gate: Gate) -> None:
    running = asyncio.create_task(scheduler.run(gate, call_id="a", timeout_s=WAIT))
    await wait_started(gate)
    waiting = [asyncio.create_task(scheduler.run(lambda ctx, i=i: i, call_id=f"w{i}", timeout_s=WAIT))
               for i in range(2)]
    await asyncio.sleep(0)  # let both enqueue
    assert scheduler.stats().queue_depth == 2
    with pytest.raises(OverloadedError):
        await scheduler.run(lambda ctx: None, call_id="x", timeout_s=WAIT)
    assert scheduler.stats().rejected == 1
    gate.release.set()
    assert await running == "released"
    assert sorted(await asyncio.gather(*waiting)) == [0, 1]
    assert scheduler.stats().queue_depth == 0


async def test_stalled_engine_times_out_with_engine_error(
    scheduler: EngineScheduler, gate: Gate
) -> None:
    with pytest.raises(EngineError) as info:
        await scheduler.run(gate, call_id="a", timeout_s=0.05)
    assert info.value.code == "engine_timeout"
    stats = scheduler.stats()
    assert stats.timeouts == 1 and stats.failures == 1
    assert scheduler.health("stt", "m").state == EngineState.FAILED
    assert "timed out" in scheduler.health("stt", "m").detail
    gate.release.set()
    # the worker is free again, and a success clears the failing state
    assert await scheduler.run(lambda ctx: 7, call_id="b", timeout_s=WAIT) == 7
    assert scheduler.health("stt", "m").state == EngineState.READY


async def test_job_exception_becomes_engine_error(scheduler: EngineScheduler) -> None:
    def boom(ctx: JobContext) -> None:
        raise RuntimeError("model exploded")

    with pytest.raises(EngineError, match="model exploded"):
        await scheduler.run(boom, call_id="a", timeout_s=WAIT)
    assert scheduler.stats().failures == 1
    assert "model exploded" in (scheduler.last_error or "")


async def test_reautod_errors_pass_through_unwrapped(scheduler: EngineScheduler) -> None:
    def bad(ctx: JobContext) -> None:
        raise ValidationError("bad input")

    with pytest.raises(ValidationError):
        await scheduler.run(bad, call_id="a", timeout_s=WAIT)


async def test_cancel_before_start_drops_the_job(scheduler: EngineScheduler, gate: Gate) -> None:
    ran: list[str] = []
    running = asyncio.create_task(scheduler.run(gate, call_id="a", timeout_s=WAIT))
    await wait_started(gate)
    queued = asyncio.create_task(
        scheduler.run(lambda ctx: ran.append("queued"), call_id="b", timeout_s=WAIT))
    await asyncio.sleep(0)
    assert scheduler.stats().queue_depth == 1
    queued.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued
    assert scheduler.stats().queue_depth == 0
    gate.release.set()
    await running
    await scheduler.run(lambda ctx: None, call_id="c", timeout_s=WAIT)  # worker past the slot
    assert ran == []
    assert scheduler.stats().cancelled == 1


async def test_closing_a_stream_stops_the_job_at_the_next_item(
    scheduler: EngineScheduler,
) -> None:
    produced: list[int] = []
    first_read = threading.Event()

    def counter(ctx: JobContext) -> None:
        for i in range(1000):
            ctx.emit(i)
            produced.append(i)
            if i == 0:
                first_read.wait(WAIT)  # hold until the consumer has read item 0 and closed

    stream = scheduler.stream(counter, call_id="a", item_timeout_s=WAIT)
    assert await stream.__anext__() == 0
    await stream.aclose()
    first_read.set()
    # the worker is free for the next request, and the first one stopped right away
    assert await scheduler.run(lambda ctx: "next", call_id="b", timeout_s=WAIT) == "next"
    assert produced == [0]
    assert scheduler.stats().cancelled == 1


async def test_stream_item_timeout(scheduler: EngineScheduler, gate: Gate) -> None:
    def slow(ctx: JobContext) -> None:
        ctx.emit("first")
        gate(ctx)

    items: list[str] = []
    with pytest.raises(EngineError) as info:
        async for item in scheduler.stream(slow, call_id="a", item_timeout_s=0.05):
            items.append(item)
    assert items == ["first"]
    assert info.value.code == "engine_timeout"


async def test_two_workers_serve_two_callers_at_once() -> None:
    sched = EngineScheduler("pair", queue_size=4, concurrency=2)
    both = threading.Barrier(2, timeout=WAIT)
    try:
        # each job waits for the other: this only completes if they run concurrently
        results = await asyncio.gather(
            sched.run(lambda ctx: both.wait() >= 0, call_id="a", timeout_s=WAIT),
            sched.run(lambda ctx: both.wait() >= 0, call_id="b", timeout_s=WAIT),
        )
    finally:
        await sched.close()
    assert results == [True, True]


async def test_close_refuses_new_and_fails_waiting(gate: Gate) -> None:
    sched = EngineScheduler("closing", queue_size=4)
    running = asyncio.create_task(sched.run(gate, call_id="a", timeout_s=WAIT))
    await wait_started(gate)
    waiting = asyncio.create_task(sched.run(lambda ctx: 1, call_id="b", timeout_s=WAIT))
    await asyncio.sleep(0)
    gate.release.set()
    await sched.close()
    assert await running == "released"
    with pytest.raises(Exception, match="shutting down"):
        await waiting


def test_bad_sizes_are_rejected() -> None:
    with pytest.raises(ValueError):
        EngineScheduler("x", queue_size=0)
    with pytest.raises(ValueError):
        EngineScheduler("x", queue_size=1, concurrency=0)


class RecordingObserver:
    """Implements EngineObserver (the shape of observability.metrics.Metrics) and records."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def observe_engine_request(self, engine: str, timing: RequestTiming) -> None:
        self.events.append(("request", engine))
        assert timing.queue_wait_s >= 0 and timing.compute_s >= 0

    def engine_cancelled(self, engine: str) -> None:
        self.events.append(("cancelled", engine))

    def engine_failed(self, engine: str) -> None:
        self.events.append(("failed", engine))

    def engine_rejected(self, engine: str) -> None:
        self.events.append(("rejected", engine))

    def set_engine_queue_depth(self, engine: str, depth: int) -> None:
        self.events.append(("depth", depth))


async def test_observer_sees_every_outcome(gate: Gate) -> None:
    observer = RecordingObserver()
    sched = EngineScheduler("llm", queue_size=1, observer=observer)  # type: ignore[arg-type]
    try:
        await sched.run(lambda ctx: 1, call_id="a", timeout_s=WAIT)
        with pytest.raises(EngineError):
            await sched.run(lambda ctx: 1 / 0, call_id="b", timeout_s=WAIT)
        running = asyncio.create_task(sched.run(gate, call_id="c", timeout_s=WAIT))
        await wait_started(gate)
        queued = asyncio.create_task(sched.run(lambda ctx: 2, call_id="d", timeout_s=WAIT))
        await asyncio.sleep(0)
        with pytest.raises(OverloadedError):
            await sched.run(lambda ctx: 3, call_id="e", timeout_s=WAIT)
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        gate.release.set()
        await running
    finally:
        await sched.close()
    kinds = [kind for kind, _ in observer.events]
    assert kinds.count("request") == 3  # ok, failed, released gate
    assert kinds.count("failed") == 1
    assert kinds.count("rejected") == 1
    assert kinds.count("cancelled") == 1
    assert ("depth", 1) in observer.events and observer.events.count(("depth", 0)) >= 3
    assert {engine for kind, engine in observer.events if kind != "depth"} == {"llm"}


async def test_close_reports_a_worker_stuck_in_a_job(gate: Gate) -> None:
    sched = EngineScheduler("stuck", queue_size=1)
    running = asyncio.create_task(sched.run(gate, call_id="a", timeout_s=WAIT))
    await wait_started(gate)
    assert await sched.close(timeout_s=0.05) is False  # the model must be kept alive
    gate.release.set()
    assert await running == "released"
    assert await sched.close(timeout_s=WAIT) is True


@pytest.mark.parametrize(("ahead_max_wait_s", "order"), [
    (scheduler_module.AHEAD_MAX_WAIT_S, ["waiting", "later"]),
    (0.0, ["later", "waiting"]),  # work ahead of need that has waited long enough goes first
])
async def test_a_waiting_caller_goes_before_work_ahead_of_need(
        gate: Gate, monkeypatch: pytest.MonkeyPatch, ahead_max_wait_s: float,
        order: list[str]) -> None:
    monkeypatch.setattr(scheduler_module, "AHEAD_MAX_WAIT_S", ahead_max_wait_s)
    sched = EngineScheduler("test", queue_size=4)
    ran: list[str] = []
    try:
        running = asyncio.create_task(sched.run(gate, call_id="a", timeout_s=WAIT))
        await wait_started(gate)
        with ahead_of_need():  # the rest of a reply whose first part is playing
            later = asyncio.create_task(sched.run(lambda ctx: ran.append("later"),
                                                  call_id="b", timeout_s=WAIT))
            await asyncio.sleep(0)
        waiting = asyncio.create_task(sched.run(lambda ctx: ran.append("waiting"),
                                                call_id="c", timeout_s=WAIT))
        await asyncio.sleep(0)
        assert sched.stats().queue_depth == 2
        gate.release.set()
        await asyncio.gather(running, later, waiting)
        assert ran == order
    finally:
        await sched.close()

"""A bounded request queue in front of one model, served by dedicated worker threads.

One llama.cpp context or one CTranslate2 replica is not safely reentrant, so each engine gets one
worker thread by default (`concurrency` more where the model supports it). Requests from every
live call wait in one bounded queue; a full queue refuses at once with `OverloadedError` (counted)
rather than growing without bound.

Cancellation, as a call needs it on barge-in or hang-up:
- a request whose awaiting task is cancelled before a worker picks it up is dropped unrun;
- a running request sees `JobContext.cancelled`; `JobContext.emit` raises `JobCancelled` so a
  streaming job stops at its next token or sentence and the worker is free for the next request.

Who waits goes first: a request made inside `ahead_of_need()` (the rest of a reply while its
first part plays, a greeting made while the phone rings, a line cached ahead) yields its place to
every request a caller is waiting for, until it has waited `AHEAD_MAX_WAIT_S` itself.

Timeouts raise `EngineError(code="engine_timeout")` in the caller and flag the job cancelled; a
worker stuck inside native code cannot be interrupted, which shows as `in_flight` in the stats.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol, TypeVar, cast

from reautod.engines.base import EngineHealth, EngineState, EngineStats, RequestTiming
from reautod.errors import EngineError, OverloadedError, ReautodError, UnavailableError

log = logging.getLogger(__name__)

R = TypeVar("R")
EngineName = Literal["stt", "llm", "tts"]

# An ahead-of-need request waits at most this long behind requests a caller waits for (a reply's
# next piece must still come before the audio playing now runs out: a first clause is ~1 s).
AHEAD_MAX_WAIT_S = 0.5
_ahead_of_need: ContextVar[bool] = ContextVar("engine_request_ahead_of_need", default=False)


def requested_ahead_of_need() -> bool:
    """Whether an engine request made here now would be ahead of need."""
    return _ahead_of_need.get()


@contextlib.contextmanager
def ahead_of_need(ahead: bool = True) -> Iterator[None]:
    """Engine requests made inside (in this task) let requests a caller waits for go first."""
    token = _ahead_of_need.set(ahead)
    try:
        yield
    finally:
        _ahead_of_need.reset(token)


class JobCancelled(Exception):
    """Raised inside a worker by `JobContext.emit` / `check` once the request was cancelled."""


@dataclass(frozen=True)
class _Done:
    pass


@dataclass(frozen=True)
class _Failed:
    error: BaseException


_DONE = _Done()


class _Job:
    """One queued request; its owner is the coroutine that submitted it."""

    def __init__(self, fn: Callable[[JobContext], Any], call_id: str,
                 loop: asyncio.AbstractEventLoop, streaming: bool) -> None:
        self.fn = fn
        self.call_id = call_id
        self.loop = loop
        self.cancel_event = threading.Event()
        self.enqueued_at = time.perf_counter()
        self.ahead = requested_ahead_of_need()
        self.started_at: float | None = None
        # the worker counted it (completed or failed), under the scheduler's lock: a stream its
        # caller closes after that is not counted again as cancelled
        self.counted = False
        self.future: asyncio.Future[Any] | None = None if streaming else loop.create_future()
        self.items: asyncio.Queue[Any] | None = asyncio.Queue() if streaming else None

    def deliver(self, item: Any) -> None:
        """Hand a result, a stream item or an end marker to the awaiting coroutine (any thread)."""
        try:
            self.loop.call_soon_threadsafe(self._deliver_on_loop, item)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            self.cancel_event.set()

    def _deliver_on_loop(self, item: Any) -> None:
        if self.items is not None:
            self.items.put_nowait(item)
            return
        assert self.future is not None
        if self.future.done():
            return
        if isinstance(item, _Failed):
            self.future.set_exception(item.error)
        else:
            self.future.set_result(item)


class JobContext:
    """What a job function sees while it runs on the worker thread."""

    def __init__(self, job: _Job) -> None:
        self._job = job

    @property
    def call_id(self) -> str:
        return self._job.call_id

    @property
    def cancelled(self) -> bool:
        return self._job.cancel_event.is_set()

    def check(self) -> None:
        """Raise `JobCancelled` if the caller has gone away."""
        if self._job.cancel_event.is_set():
            raise JobCancelled

    def emit(self, item: Any) -> None:
        """Stream one item to the caller; raises `JobCancelled` instead if it has gone away."""
        self.check()
        self._job.deliver(item)

    @property
    def queue_wait_s(self) -> float:
        started = self._job.started_at or time.perf_counter()
        return max(0.0, started - self._job.enqueued_at)

    def timing(self, since: float | None = None) -> RequestTiming:
        """Queue wait, and compute time from the job's start (or from `since`) until now."""
        start = since if since is not None else (self._job.started_at or time.perf_counter())
        return RequestTiming(self.queue_wait_s, max(0.0, time.perf_counter() - start))


class EngineObserver(Protocol):
    """Receives each scheduler event (from any thread); `reautod.observability.metrics.Metrics`
    has exactly these methods."""

    def observe_engine_request(self, engine: EngineName, timing: RequestTiming) -> None: ...

    def engine_cancelled(self, engine: EngineName) -> None: ...

    def engine_failed(self, engine: EngineName) -> None: ...

    def engine_rejected(self, engine: EngineName) -> None: ...

    def set_engine_queue_depth(self, engine: EngineName, depth: int) -> None: ...


class EngineScheduler:
    """Bounded queue + worker threads for one model. Create on the event loop that uses it."""

    def __init__(self, name: str, *, queue_size: int, concurrency: int = 1,
                 observer: EngineObserver | None = None) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.name = name
        self.observer = observer  # may be set after construction, before requests flow
        self.queue_size = queue_size
        self.concurrency = concurrency
        self._cond = threading.Condition()
        self._pending: deque[_Job] = deque()
        self._stats = EngineStats()
        self._closed = False
        self.last_error: str | None = None
        self.last_error_at: float | None = None  # time.time()
        self._consecutive_failures = 0
        self._threads = [
            threading.Thread(target=self._work, name=f"engine-{name}-{i}", daemon=True)
            for i in range(concurrency)
        ]
        for thread in self._threads:
            thread.start()

    # ------------------------------------------------------------------ caller side (event loop)

    async def run(self, fn: Callable[[JobContext], R], *, call_id: str, timeout_s: float) -> R:
        """Run `fn(ctx)` on a worker and return its result; the timeout covers queue + compute."""
        job = self._submit(fn, call_id, streaming=False)
        assert job.future is not None
        try:
            return await asyncio.wait_for(job.future, timeout_s)
        except TimeoutError:
            self._abandon(job, timed_out=True)
            raise EngineError(f"{self.name} engine timed out after {timeout_s:g} s",
                              code="engine_timeout") from None
        except asyncio.CancelledError:
            self._abandon(job, timed_out=False)
            raise

    async def stream(self, fn: Callable[[JobContext], None], *, call_id: str,
                     total_timeout_s: float | None = None,
                     item_timeout_s: float | None = None) -> AsyncGenerator[Any, None]:
        """Run `fn(ctx)` on a worker and yield every `ctx.emit(item)` as it comes.

        `item_timeout_s` bounds the wait for each item (the first includes the queue wait),
        `total_timeout_s` the whole stream. Closing the iterator early cancels the job.
        """
        job = self._submit(fn, call_id, streaming=True)
        assert job.items is not None
        loop = asyncio.get_running_loop()
        deadline = None if total_timeout_s is None else loop.time() + total_timeout_s
        finished = False
        try:
            while True:
                timeout = item_timeout_s
                if deadline is not None:
                    left = max(0.0, deadline - loop.time())
                    timeout = left if timeout is None else min(timeout, left)
                try:
                    item = await asyncio.wait_for(job.items.get(), timeout)
                except TimeoutError:
                    finished = True
                    self._abandon(job, timed_out=True)
                    raise EngineError(f"{self.name} engine timed out after {timeout or 0:g} s",
                                      code="engine_timeout") from None
                if isinstance(item, _Done):
                    finished = True
                    return
                if isinstance(item, _Failed):
                    finished = True
                    raise item.error
                yield item
        finally:
            if not finished:  # closed early or the consumer's task was cancelled
                self._abandon(job, timed_out=False)

    def _submit(self, fn: Callable[[JobContext], Any], call_id: str, *, streaming: bool) -> _Job:
        job = _Job(fn, call_id, asyncio.get_running_loop(), streaming)
        with self._cond:
            if self._closed:
                raise UnavailableError(f"{self.name} engine is shut down")
            full = len(self._pending) >= self.queue_size
            if full:
                self._stats.rejected += 1
            else:
                self._stats.requests += 1
                self._pending.append(job)
                self._cond.notify()
            depth = len(self._pending)
        if full:
            if self.observer is not None:
                self.observer.engine_rejected(self._label)
            raise OverloadedError(f"{self.name} engine queue is full ({self.queue_size} waiting)")
        if self.observer is not None:
            self.observer.set_engine_queue_depth(self._label, depth)
        return job

    def _abandon(self, job: _Job, *, timed_out: bool) -> None:
        """The caller stopped waiting: drop the job if unstarted, else flag it to stop."""
        job.cancel_event.set()
        with self._cond:
            # ValueError: already started (or finished), and the worker sees the flag
            with contextlib.suppress(ValueError):
                self._pending.remove(job)
            if timed_out:
                self._stats.timeouts += 1
                self._record_failure_locked(f"timed out ({self.name})")
            cancelled = not timed_out and not job.counted
            if cancelled:
                self._stats.cancelled += 1
            depth = len(self._pending)
        if self.observer is not None:
            self.observer.set_engine_queue_depth(self._label, depth)
            if timed_out:
                self.observer.engine_failed(self._label)
            elif cancelled:
                self.observer.engine_cancelled(self._label)

    # ------------------------------------------------------------------ worker side (threads)

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                job = self._next_locked()
                job.started_at = time.perf_counter()
                self._stats.in_flight += 1
                self._stats.queue_wait_s_total += job.started_at - job.enqueued_at
                depth = len(self._pending)
            if self.observer is not None:
                self.observer.set_engine_queue_depth(self._label, depth)
            self._execute(job)

    def _next_locked(self) -> _Job:
        """The oldest request a caller waits for, or one ahead of need that waited too long
        (else the oldest of those); taken off the queue."""
        due = time.perf_counter() - AHEAD_MAX_WAIT_S
        job = next((j for j in self._pending if not j.ahead or j.enqueued_at <= due),
                   self._pending[0])
        self._pending.remove(job)
        return job

    def _execute(self, job: _Job) -> None:
        ctx = JobContext(job)
        delivery: Any
        try:
            result = job.fn(ctx)
        except JobCancelled:
            delivery = None  # the caller has gone; nothing to deliver
        except BaseException as err:  # delivered to the caller, never lost on this thread
            wrapped = err if isinstance(err, ReautodError) else EngineError(
                f"{self.name} engine failed: {type(err).__name__}: {err}")
            if wrapped is not err:
                wrapped.__cause__ = err
            if not job.cancel_event.is_set():
                log.warning("%s engine request failed: %s", self.name, wrapped)
            delivery = _Failed(wrapped)
        else:
            delivery = _DONE if job.items is not None else result
        # Counters first, so a caller that reads stats right after its result sees this job.
        # A job that fails after its caller left (timeout, barge-in) was counted then.
        assert job.started_at is not None
        finished = time.perf_counter()
        with self._cond:  # read under the lock _abandon counts under: each job counted once
            abandoned = job.cancel_event.is_set()
            failed = isinstance(delivery, _Failed) and not abandoned
            job.counted = not abandoned
            self._stats.in_flight -= 1
            self._stats.compute_s_total += finished - job.started_at
            if failed:
                self._record_failure_locked(str(delivery.error))
            elif not abandoned:
                self._stats.completed += 1
                self._consecutive_failures = 0
        if self.observer is not None and not abandoned:
            self.observer.observe_engine_request(self._label, RequestTiming(
                job.started_at - job.enqueued_at, finished - job.started_at))
            if failed:
                self.observer.engine_failed(self._label)
        if delivery is not None or job.items is None:
            job.deliver(delivery)

    def _record_failure_locked(self, message: str) -> None:
        self._stats.failures += 1
        self._consecutive_failures += 1
        self.last_error = message
        self.last_error_at = time.time()

    # ------------------------------------------------------------------ state

    @property
    def _label(self) -> EngineName:
        return cast(EngineName, self.name)

    @property
    def failing(self) -> bool:
        """True while the most recent finished request failed or timed out."""
        with self._cond:
            return self._consecutive_failures > 0

    def health(self, name: EngineName, model: str) -> EngineHealth:
        """READY, or FAILED with the last error while the most recent request failed."""
        stats = self.stats()
        failing = self.failing
        return EngineHealth(
            name=name,
            state=EngineState.FAILED if failing else EngineState.READY,
            model=model,
            detail=(self.last_error or "") if failing else "",
            queue_depth=stats.queue_depth,
            failures=stats.failures,
        )

    def stats(self) -> EngineStats:
        """A snapshot of the counters."""
        with self._cond:
            return replace(self._stats, queue_depth=len(self._pending), extra=dict(self._stats.extra))

    async def close(self, timeout_s: float = 5.0) -> bool:
        """Refuse new work, fail what waits, let the workers finish their current job.

        Returns False if a worker is still busy after `timeout_s` (stuck in native code): the
        caller must then keep the model alive, since that worker may still be using it.
        """
        with self._cond:
            self._closed = True
            dropped = list(self._pending)
            self._pending.clear()
            self._cond.notify_all()
        for job in dropped:
            job.cancel_event.set()
            job.deliver(_Failed(UnavailableError(f"{self.name} engine is shutting down")))
        return await asyncio.to_thread(self._join, timeout_s)

    def _join(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        busy = [t.name for t in self._threads if t.is_alive()]
        if busy:
            log.warning("%s engine: worker(s) %s still busy at shutdown", self.name,
                        ", ".join(busy))
        return not busy


__all__ = ["EngineObserver", "EngineScheduler", "JobCancelled", "JobContext"]

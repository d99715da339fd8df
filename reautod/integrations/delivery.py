"""The outbox delivery worker: claims due messages, hands each to the deliverer of its channel,
and records what happened; retries back off exponentially with jitter, permanent failures and
exhausted retries become dead letters.

Every attempt goes through the circuit of its receiver (`Resilience`: a webhook endpoint each,
Twilio for SMS, SMTP for email; the Sheets client has its own): transient failures count against it, and while it is
open messages are not sent but put back, their attempt given back, until the half-open probe;
so a receiver down for hours keeps its events queued instead of dead-lettered, and is not
hammered meanwhile. The outbox is the retry policy of these channels (durable, with backoff).

Delivery is at least once: a message whose success could not be recorded (the database went
away) is released after `stuck_after_s` and sent again with the same event id, which receivers
use to drop the repeat. The worker never runs on a call's path: events are rows, written with
the facts they announce, and the worker reads them on its own task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from reautod.errors import ReautodError, UnavailableError
from reautod.integrations.settings import DeliverySettings
from reautod.observability.metrics import Metrics
from reautod.resilience.breaker import BreakerOpenError
from reautod.resilience.service import Resilience
from reautod.store.repositories import OutboxMessage, OutboxRepository
from reautod.store.types import utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What one delivery attempt came to."""

    ok: bool
    error: str | None = None
    permanent: bool = False  # no retry: a dead letter at once
    retry_after_s: float | None = None  # the receiver asked us to wait (Retry-After)
    attempted: bool = True  # False: the circuit was open, nothing was sent

    @classmethod
    def delivered(cls) -> Outcome:
        return cls(True)

    @classmethod
    def transient(cls, error: str, retry_after_s: float | None = None) -> Outcome:
        return cls(False, error, retry_after_s=retry_after_s)

    @classmethod
    def failed_for_good(cls, error: str) -> Outcome:
        return cls(False, error, permanent=True)

    @classmethod
    def not_attempted(cls, err: BreakerOpenError) -> Outcome:
        return cls(False, err.message, retry_after_s=err.retry_in_s, attempted=False)


class _TransientOutcome(UnavailableError):
    """A transient Outcome, raised inside the circuit so that it counts as a failure."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.error or "failed")
        self.outcome = outcome


# the service whose circuit each channel's deliveries go through (the Sheets client goes
# through its own, for the contacts import as well)
CHANNEL_SERVICES = {"webhook": "webhooks", "sms": "twilio", "email": "smtp"}


class Deliverer(Protocol):
    """Sends messages of one channel (webhook, sms, email)."""

    async def deliver(self, message: OutboxMessage) -> Outcome: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class BatchDeliverer(Deliverer, Protocol):
    """A deliverer that sends the messages of one round together (one request for many rows)."""

    async def deliver_many(self, messages: list[OutboxMessage]) -> list[Outcome]: ...


class DeliveryListener(Protocol):
    """Told after a message was delivered and recorded (e.g. to confirm a booking)."""

    async def delivered(self, message: OutboxMessage) -> None: ...


@dataclass(frozen=True)
class RetryPolicy:
    """Delay before attempt n+1 after n failed: base * 2^(n-1), capped, with half of it random
    ("equal jitter": receivers that came back are not hit by every sender at once); a receiver's
    Retry-After is honoured up to the cap. None: no attempts left."""

    max_attempts: int
    base_s: float
    max_s: float

    def delay(self, attempts: int, retry_after_s: float | None, rand: float) -> float | None:
        if attempts >= self.max_attempts:
            return None
        ceiling = min(self.max_s, self.base_s * 2 ** max(0, attempts - 1))
        delay = ceiling / 2 + ceiling / 2 * rand
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.max_s))
        return delay


class DeliveryWorker:
    """One task that drains the outbox; `notify()` wakes it when something was enqueued."""

    def __init__(
        self,
        repo: OutboxRepository,
        deliverers: Mapping[str, Deliverer],
        settings: DeliverySettings,
        *,
        metrics: Metrics | None = None,
        listeners: Sequence[DeliveryListener] = (),
        clock: Callable[[], datetime] = utcnow,
        rand: Callable[[], float] = random.random,
        resilience: Resilience | None = None,
    ) -> None:
        self.repo = repo
        self.resilience = resilience or Resilience()
        self.deliverers = dict(deliverers)
        self.settings = settings
        self.policy = RetryPolicy(settings.max_attempts, settings.backoff_base_s,
                                  settings.backoff_max_s)
        self.metrics = metrics
        self.listeners = list(listeners)
        self.clock = clock
        self.rand = rand
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._slots = asyncio.Semaphore(settings.concurrency)

    def notify(self) -> None:
        self._wake.set()

    async def run_once(self) -> int:
        """One round: release stuck claims, claim what is due, deliver it; returns how many."""
        now = self.clock()
        await self.repo.reset_stuck(timedelta(seconds=self.settings.stuck_after_s), now)
        messages = await self.repo.claim_due(now, self.settings.batch_size)
        singles: list[OutboxMessage] = []
        batches: dict[str, list[OutboxMessage]] = {}
        for message in messages:
            deliverer = self.deliverers.get(message.channel)
            if isinstance(deliverer, BatchDeliverer):
                batches.setdefault(message.channel, []).append(message)
            else:
                singles.append(message)
        await asyncio.gather(*(self._deliver(m) for m in singles),
                             *(self._deliver_batch(ms) for ms in batches.values()))
        return len(messages)

    async def _deliver(self, message: OutboxMessage) -> None:
        async with self._slots:
            deliverer = self.deliverers.get(message.channel)
            started = time.perf_counter()
            if deliverer is None:
                outcome = Outcome.failed_for_good(f"no {message.channel} sender is configured")
            else:
                outcome = (await self._through_circuit(
                    message, lambda: self._one(deliverer, message)))[0]
            elapsed = time.perf_counter() - started
        await self._record(message, outcome, elapsed)

    async def _deliver_batch(self, messages: list[OutboxMessage]) -> None:
        deliverer = self.deliverers[messages[0].channel]
        assert isinstance(deliverer, BatchDeliverer)
        async with self._slots:
            started = time.perf_counter()
            outcomes = await self._through_circuit(messages[0],
                                                   lambda: deliverer.deliver_many(messages))
            if len(outcomes) == 1 and len(messages) > 1:  # not attempted: the same for all
                outcomes = outcomes * len(messages)
            elapsed = time.perf_counter() - started
        for message, outcome in zip(messages, outcomes, strict=True):
            await self._record(message, outcome, elapsed)

    @staticmethod
    async def _one(deliverer: Deliverer, message: OutboxMessage) -> list[Outcome]:
        return [await deliverer.deliver(message)]

    async def _through_circuit(self, message: OutboxMessage,
                               send: Callable[[], Awaitable[list[Outcome]]]) -> list[Outcome]:
        """Send through the receiver's circuit; a transient failure of any message counts."""
        service = CHANNEL_SERVICES.get(message.channel)
        if service is None:
            return await send()
        key = message.endpoint if message.channel == "webhook" else None
        try:
            async with self.resilience.guard(service, key=key):
                outcomes = await send()
                failed = next((o for o in outcomes if not o.ok and not o.permanent), None)
                if failed is not None and not any(o.ok for o in outcomes):
                    raise _TransientOutcome(failed)
            return outcomes
        except _TransientOutcome:
            return outcomes
        except BreakerOpenError as err:
            return [Outcome.not_attempted(err)]

    async def _record(self, message: OutboxMessage, outcome: Outcome, elapsed: float) -> None:
        if outcome.ok:
            await self.repo.delivered(message.id, self.clock())
            self._count(message, "delivered", elapsed)
            for listener in self.listeners:
                try:
                    await listener.delivered(message)
                except ReautodError as err:
                    log.warning("after delivering %s: %s", message.id, err.message)
            return
        if not outcome.attempted:  # the circuit is open: back to the queue until its probe
            delay: float | None = max(outcome.retry_after_s or 0.0, self.settings.poll_interval_s)
        elif outcome.permanent:
            delay = None
        else:
            delay = self.policy.delay(message.attempts, outcome.retry_after_s, self.rand())
        retry_at = None if delay is None else self.clock() + timedelta(seconds=delay)
        dead = await self.repo.failed(message.id, outcome.error or "failed", retry_at=retry_at,
                                      attempted=outcome.attempted)
        self._count(message, "dead" if dead else "retry", elapsed)
        log.log(logging.WARNING if dead else logging.INFO,
                "%s %s to %s attempt %d failed (%s): %s", message.channel, message.event_type,
                message.endpoint, message.attempts,
                "dead letter" if delay is None else f"retry in {delay:.0f} s", outcome.error)

    def _count(self, message: OutboxMessage, result: str, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.outbox_delivery(message.channel, result, seconds)

    async def refresh_gauges(self) -> None:
        if self.metrics is None:
            return
        counts = await self.repo.counts()
        oldest = counts.oldest_pending_at
        self.metrics.outbox_backlog(
            pending=counts.by_status.get("pending", 0) + counts.by_status.get("delivering", 0),
            dead=counts.dead_letters,
            oldest_s=(self.clock() - oldest).total_seconds() if oldest else 0.0,
        )

    async def run(self) -> None:
        """Drain until cancelled; a database outage pauses the worker, it does not end it."""
        last_purge = 0.0
        while True:
            self._wake.clear()
            busy = 0
            try:
                busy = await self.run_once()
                await self.refresh_gauges()
                if time.monotonic() - last_purge > 3600:
                    last_purge = time.monotonic()
                    keep = timedelta(days=self.settings.keep_delivered_days)
                    await self.repo.purge_delivered(self.clock() - keep)
            except UnavailableError as err:
                log.warning("outbox paused: %s", err.message)
            if busy >= self.settings.batch_size:
                continue  # more may be due right now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.poll_interval_s)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="outbox-delivery")

    async def stop(self) -> None:
        """Stop the loop (an attempt in flight is abandoned: its claim is released later) and
        close the deliverers."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for deliverer in self.deliverers.values():
            await deliverer.aclose()

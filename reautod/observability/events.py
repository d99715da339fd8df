"""The daemon's event bus: typed events fanned out to control-socket subscribers.

Every payload is a pydantic model, one per topic (reautod/topics.py says which); the bus puts it
on the wire as JSON and the clients parse it with the same model.

Publishing never blocks and never slows a call: each subscriber has a bounded buffer; when it is
full the event is dropped for that subscriber and counted, and the subscriber later receives one
`lagged` event saying how many it missed.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from reautod.topics import Lagged

EVENT_TYPES = frozenset(
    {
        "call.started",
        "call.state",
        "call.ended",
        "turn",
        "barge_in",
        "dtmf",
        "agent.transition",
        "agent.score",
        "agent.outcome",
        "cost.update",
        "budget.alert",
        "health.changed",
        "circuit.changed",
        "admission.changed",
        "recording.stopped",
        "daemon.state",
        "log",
        "lagged",
    }
)


@dataclass(frozen=True)
class Event:
    event: str
    ts: datetime
    data: BaseModel

    def wire(self) -> dict[str, Any]:
        return {"event": self.event, "ts": self.ts.isoformat(),
                "data": self.data.model_dump(mode="json", by_alias=True)}


class Subscription:
    """One subscriber's bounded buffer; iterate with `await sub.get()` or `async for`."""

    def __init__(self, bus: EventBus, topics: frozenset[str] | None, maxsize: int) -> None:
        self._bus = bus
        self.topics = topics
        self._buffer: collections.deque[Event] = collections.deque()
        self._maxsize = maxsize
        self._wakeup = asyncio.Event()
        self.dropped = 0  # dropped since the last `lagged` marker was delivered
        self.closed = False

    def wants(self, event: str) -> bool:
        if event == "lagged":
            return True
        if self.topics is None:
            return True
        return event in self.topics or event.split(".", 1)[0] in self.topics

    def _offer(self, event: Event) -> bool:
        if len(self._buffer) >= self._maxsize:
            self.dropped += 1
            return False
        self._buffer.append(event)
        self._wakeup.set()
        return True

    async def get(self) -> Event:
        while True:
            if self.dropped and len(self._buffer) < self._maxsize:
                # deliver the marker where the gap is, before newer events
                dropped, self.dropped = self.dropped, 0
                return Event("lagged", datetime.now(UTC), Lagged(dropped=dropped))
            if self._buffer:
                return self._buffer.popleft()
            if self.closed:
                raise EOFError
            self._wakeup.clear()
            await self._wakeup.wait()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        try:
            return await self.get()
        except EOFError:
            raise StopAsyncIteration from None

    def close(self) -> None:
        self.closed = True
        self._wakeup.set()
        self._bus._remove(self)


class EventBus:
    """Fan-out of events to subscribers, plus sync listeners (metrics) called inline."""

    def __init__(self, *, on_drop: Callable[[int], None] | None = None) -> None:
        self._subscriptions: set[Subscription] = set()
        self._on_drop = on_drop

    def publish(self, event: str, data: BaseModel) -> None:
        """Fan `data`, the topic's payload model, out to the subscribers that want `event`."""
        if event not in EVENT_TYPES:
            raise ValueError(f"unknown event type {event!r}")
        if not isinstance(data, BaseModel):  # a loose dict drifts from what clients parse
            raise TypeError(f"{event}: the payload is its topic's model, not {type(data).__name__}")
        item = Event(event, datetime.now(UTC), data)
        for sub in tuple(self._subscriptions):
            if sub.wants(event) and not sub._offer(item) and self._on_drop is not None:
                self._on_drop(1)

    def subscribe(
        self, topics: Iterable[str] | None = None, *, maxsize: int = 1000
    ) -> Subscription:
        sub = Subscription(self, frozenset(topics) if topics else None, maxsize)
        self._subscriptions.add(sub)
        return sub

    @property
    def subscriber_count(self) -> int:
        return len(self._subscriptions)

    def _remove(self, sub: Subscription) -> None:
        self._subscriptions.discard(sub)

    def close(self) -> None:
        for sub in tuple(self._subscriptions):
            sub.close()

"""The call's data channel: the daemon feeds its caller typed messages from the event bus, and
each side parses the other's with the same models (`webrtc/signalling.py`)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any, cast

from pydantic import BaseModel

from reautod.call_events import CallStateEvent, CallStateSource
from reautod.observability.events import EventBus
from reautod.topics import BargeIn, TurnEvent
from reautod.webrtc.calls import _feed
from reautod.webrtc.media import WebRTCMedia, _is_hangup
from reautod.webrtc.signalling import (
    CHANNEL_MESSAGE,
    BargeInMessage,
    StateMessage,
    TurnMessage,
)

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


class SentMessages:
    """What `_feed` needs of WebRTCMedia: `send`, recorded as it goes on the wire."""

    def __init__(self, expected: int) -> None:
        self.wire: list[dict[str, Any]] = []
        self.expected = expected
        self.all_sent = asyncio.Event()

    def send(self, message: BaseModel) -> None:
        self.wire.append(message.model_dump(mode="json"))
        if len(self.wire) >= self.expected:
            self.all_sent.set()


async def test_the_feed_sends_this_calls_events_as_channel_messages() -> None:
    bus, media = EventBus(), SentMessages(expected=3)
    feed = asyncio.create_task(_feed(bus, cast(WebRTCMedia, media), "c1"))
    await asyncio.sleep(0)  # the feed subscribes before it first waits
    assert bus.subscriber_count == 1
    bus.publish("turn", TurnEvent(call_id="c2", index=0, speaker="agent", text="not yours",
                                  confidence=None, started_at=NOW, ended_at=NOW))
    bus.publish("turn", TurnEvent(call_id="c1", index=0, speaker="agent", text="Hi Ann",
                                  confidence=None, started_at=NOW, ended_at=NOW,
                                  interrupted=True))
    bus.publish("call.state", CallStateEvent(call_id="c1", state="speaking",
                                             source=CallStateSource.PIPELINE))
    bus.publish("barge_in", BargeIn(call_id="c1", heard_text="Hi"))
    await asyncio.wait_for(media.all_sent.wait(), 5)
    feed.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await feed
    parsed = [CHANNEL_MESSAGE.validate_python(m) for m in media.wire]  # as the caller reads
    assert parsed == [TurnMessage(speaker="agent", text="Hi Ann", interrupted=True),
                      StateMessage(state="speaking"), BargeInMessage()]
    assert bus.subscriber_count == 0  # the feed let go of its subscription


def test_only_a_hangup_message_hangs_up() -> None:
    assert _is_hangup({"type": "hangup"})
    assert not _is_hangup({"type": "turn", "speaker": "caller", "text": "hi"})
    assert not _is_hangup({"type": "nonsense"}) and not _is_hangup("hangup")

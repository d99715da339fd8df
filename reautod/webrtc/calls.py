"""Answering a caller's WebRTC offer with a call: the one path the browser page and `reautoctl
talk` share, onto the daemon's CallManager (same engines, agent, records and admission as a
phone call).

Signalling is one request: the client gathers its ICE candidates first and sends the whole
offer; aiortc gathers ours before it answers, so the answer is whole too (no trickle, no STUN:
caller and daemon reach each other directly, loopback or LAN). The call runs as a task owned
here; while it lasts, its turns, state and end go to the caller on the data channel (`_feed`).

An offer may name a campaign: the call then belongs to it and its playbook's agent answers, as
for `call.simulate --campaign` (CallContext.campaign; the session synthesizes the opening as it
starts, the moment the offer is answered). A campaign that does not exist refuses the offer
before any media is set up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass
from typing import Protocol

from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection

from reautod.call_events import CallStateEvent
from reautod.campaigns.settings import settings_of
from reautod.conversation import CallContext
from reautod.errors import NotFoundError, ReautodError, ValidationError
from reautod.observability.events import EventBus
from reautod.pipeline.calls import CallManager
from reautod.store.repositories.campaigns import CampaignRow
from reautod.telephony.stream import CloseCode
from reautod.topics import BargeIn, TurnEvent
from reautod.webrtc.media import WebRTCMedia
from reautod.webrtc.signalling import (
    Answer,
    BargeInMessage,
    CampaignChoice,
    Offer,
    StateMessage,
    Transport,
    TurnMessage,
)

log = logging.getLogger(__name__)

ANSWER_TIMEOUT_S = 15.0  # aiortc gathers its candidates before it answers
FEED_TOPICS = ("turn", "call.state", "barge_in")  # the end: WebRTCMedia.close says why


class Campaigns(Protocol):
    """What the calls read of the campaigns (store.repositories.CampaignRepository)."""

    async def find(self, name_or_id: str) -> CampaignRow: ...

    async def list(self) -> list[CampaignRow]: ...


@dataclass(frozen=True)
class _Live:
    media: WebRTCMedia
    task: asyncio.Task[None]


class WebRTCCalls:
    """Answers offers with calls on `calls`; owns each call's task until it ends."""

    def __init__(self, calls: CallManager, bus: EventBus, campaigns: Campaigns) -> None:
        self._calls = calls
        self._bus = bus
        self._campaigns = campaigns
        self._live: dict[str, _Live] = {}

    async def answer(self, offer: Offer, transport: Transport = "webrtc") -> Answer:
        """Answer `offer` and start its call; raises why a call cannot start (admission) or the
        offer is unusable (ValidationError) or names no campaign (NotFoundError)."""
        self._calls.check_admission()  # refused before any media is set up
        campaign = await self._campaign(offer.campaign)
        connection = SmallWebRTCConnection(ice_servers=[])
        try:
            await asyncio.wait_for(connection.initialize(sdp=offer.sdp, type=offer.type),
                                   ANSWER_TIMEOUT_S)
            answer = connection.get_answer()
        except asyncio.CancelledError:
            await _close(connection)
            raise
        except Exception as err:  # aiortc's parser raises several kinds; all mean a bad offer
            await _close(connection)
            raise ValidationError(f"the offer could not be answered: {type(err).__name__}: "
                                  f"{str(err)[:200]}") from err
        if answer is None:
            await _close(connection)
            raise ValidationError("the offer could not be answered")
        call_id = uuid.uuid4().hex
        media = WebRTCMedia(connection, call_id, transport)
        context = CallContext(call_id=call_id, lead_name=offer.lead_name.strip(), campaign=campaign,
                              goal=None, direction="outbound")
        task = asyncio.create_task(self._run(media, context), name=f"webrtc-{call_id}")
        self._live[call_id] = _Live(media, task)
        task.add_done_callback(lambda _t: self._live.pop(call_id, None))
        log.info("call %s: %s offer answered (campaign %s)", call_id, transport, campaign or "-")
        return Answer(sdp=str(answer["sdp"]), call_id=call_id)

    async def campaigns(self) -> list[CampaignChoice]:
        """Every campaign, oldest first, with the playbook its calls would get."""
        choices = []
        for row in await self._campaigns.list():
            try:
                playbook = settings_of(row).playbook
            except ValueError:  # its calls get the configured agent (logged where it is read)
                playbook = None
            choices.append(CampaignChoice(name=row.name, playbook=playbook))
        return choices

    async def _campaign(self, name: str | None) -> str | None:
        """The stored name of the campaign an offer names (by name or id); None for none."""
        if name is None:
            return None
        try:
            return (await self._campaigns.find(name)).name
        except NotFoundError:
            raise NotFoundError(f"no campaign named {name!r} (reautoctl campaign list)",
                                code="unknown_campaign") from None

    async def _run(self, media: WebRTCMedia, context: CallContext) -> None:
        feed = asyncio.create_task(_feed(self._bus, media, context.call_id),
                                   name=f"webrtc-feed-{context.call_id}")
        try:
            await self._calls.run(media, context)
        except ReautodError as err:  # refused after the answer (a call took the last slot)
            log.warning("call %s refused: %s", context.call_id, err.code)
            await media.close(CloseCode.TRY_LATER, err.message)  # tells the caller why
        finally:
            feed.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feed

    @property
    def live_count(self) -> int:
        return len(self._live)

    async def close(self) -> None:
        """Cancel what the CallManager has not ended yet (it ends its calls first)."""
        tasks = [live.task for live in self._live.values()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def _feed(bus: EventBus, media: WebRTCMedia, call_id: str) -> None:
    """The call's turns, state changes and barge-ins, as the operator sees them, to its caller."""
    subscription = bus.subscribe(FEED_TOPICS, maxsize=200)
    try:
        async for event in subscription:
            data = event.data
            if getattr(data, "call_id", None) != call_id:
                continue
            if isinstance(data, TurnEvent):
                media.send(TurnMessage(speaker=data.speaker, text=data.text,
                                       interrupted=data.interrupted))
            elif isinstance(data, CallStateEvent):
                media.send(StateMessage(state=data.state))
            elif isinstance(data, BargeIn):
                media.send(BargeInMessage())
    finally:
        subscription.close()


async def _close(connection: SmallWebRTCConnection) -> None:
    with contextlib.suppress(Exception):  # a half-made connection: nothing to save
        await connection.disconnect()

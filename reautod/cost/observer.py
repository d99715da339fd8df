"""The cost part's `CallObserver`: a meter per live call, flushed at every turn and at the end.

The daemon adds it to its `ObserverFanOut` after the store's observer, so a call's row is
queued on the write-behind before any of its cost rows (the ledger's foreign key). Per call:

- started: the call's meter opens (`CostTracker.begin_call`) and its campaign is looked up from
  the call's row (the dialer writes it before the call is placed) in a task of its own; a call
  with no row yet (a simulated call) belongs to no campaign.
- each turn: a call on a phone line is billed for the minutes started so far, then whatever was
  metered goes to the ledger and the live cost is published (`cost.update`). Until the campaign
  is known, rows wait in the meter, so every row carries its campaign.
- ended: the last rows, with the pipeline's duration as the call's length (Twilio's own price
  is reconciled later), and answering-machine detection when the call's row has an AMD result
  (Twilio bills it per call). Simulated calls (`sim-` ids) and calls from a browser or
  `reautoctl talk` (transport webrtc, sounddevice) use no phone line: only local compute.

Every callback is sync and cheap (the observer contract); the tasks are owned here and awaited
by `close()`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from reautod.call_events import CallInfo, CallState, TurnRecord
from reautod.cost.meters import CostSnapshot
from reautod.cost.results import CostUpdate
from reautod.cost.tracker import CostTracker
from reautod.errors import ReautodError
from reautod.store.call_observer import call_uuid

log = logging.getLogger(__name__)

SIMULATED_PREFIX = "sim-"  # call.simulate's call ids (reautod.pipeline.control)


@dataclass
class _LiveCall:
    call_id: uuid.UUID
    info: CallInfo
    on_phone_line: bool
    campaign: asyncio.Task[None]


class CostObserver:
    """See the module docstring."""

    def __init__(self, tracker: CostTracker, publish: Callable[[CostUpdate], None],
                 campaign_of: Callable[[uuid.UUID], Awaitable[uuid.UUID | None]],
                 amd_ran: Callable[[uuid.UUID], Awaitable[bool]] | None = None) -> None:
        self.tracker = tracker
        self.publish = publish
        self.campaign_of = campaign_of
        self.amd_ran = amd_ran
        self._live: dict[str, _LiveCall] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def _spawn(self, coro: Awaitable[None], name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def on_call_started(self, info: CallInfo) -> None:
        call_id = call_uuid(info.call_id)
        self.tracker.begin_call(call_id, None, direction=info.direction,
                                started_at=info.started_at)
        task = self._spawn(self._resolve_campaign(call_id), f"cost-campaign-{info.call_id}")
        self._live[info.call_id] = _LiveCall(
            call_id, info,
            info.transport == "twilio" and not info.call_id.startswith(SIMULATED_PREFIX), task)

    async def _resolve_campaign(self, call_id: uuid.UUID) -> None:
        try:
            campaign_id = await self.campaign_of(call_id)
        except ReautodError as err:
            log.warning("cost of call %s counted for no campaign: %s", call_id, err.message)
            return
        meter = self.tracker.find(call_id)
        if meter is not None:
            meter.campaign_id = campaign_id

    def on_turn(self, turn: TurnRecord) -> None:
        live = self._live.get(turn.call_id)
        if live is None:
            return
        if live.on_phone_line:
            elapsed = (turn.ended_at - live.info.started_at).total_seconds()
            self.tracker.meter(live.call_id).telephony(max(0.0, elapsed))
        if live.campaign.done():
            self._published(live, self.tracker.flush(live.call_id))

    def on_call_ended(self, call_id: str, reason: str, duration_s: float) -> None:
        live = self._live.pop(call_id, None)
        if live is not None:
            self._spawn(self._end(live, duration_s), f"cost-end-{call_id}")

    async def _end(self, live: _LiveCall, duration_s: float) -> None:
        await live.campaign  # never raises: _resolve_campaign keeps its errors
        amd = False
        if live.on_phone_line and self.amd_ran is not None:
            try:
                amd = await self.amd_ran(live.call_id)
            except ReautodError as err:
                log.warning("AMD of call %s not billed: %s", live.call_id, err.message)
        snapshot = self.tracker.end_call(
            live.call_id, duration_s=duration_s if live.on_phone_line else 0.0,
            media_stream=live.on_phone_line, amd=amd,
            call_sid=live.info.call_sid if live.on_phone_line else None)
        self._published(live, snapshot)

    def _published(self, live: _LiveCall, snapshot: CostSnapshot) -> None:
        self.publish(CostUpdate.of(snapshot, live.info.call_id))

    def on_barge_in(self, call_id: str, heard_text: str) -> None:
        """Nothing to meter: the interrupted request was metered by the engine wrapper."""

    def on_call_state(self, call_id: str, state: CallState) -> None:
        """Conversational states cost nothing of their own."""

    def on_dtmf(self, call_id: str, digit: str) -> None:
        """Key presses cost nothing."""

    async def close(self) -> None:
        """Wait for the calls that ended to be flushed (before the ledger stops)."""
        while self._tasks:
            await asyncio.gather(*tuple(self._tasks), return_exceptions=True)

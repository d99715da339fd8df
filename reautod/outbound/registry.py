"""The Twilio calls this daemon placed or answered, by our call id and by CallSid.

A callback for a call this process does not know (a restart) is looked up in the store and its
timeline rebuilt from the stored events; a callback for a new sid waits (bounded) for a create
in flight, which may be the one that returns that sid.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from reautod.campaigns.settings import CampaignSettings, settings_of
from reautod.outbound.calls import TrackedCall
from reautod.store.call_observer import call_uuid
from reautod.store.database import Database
from reautod.store.enums import CallDirection
from reautod.store.repositories import CallRepository, CampaignRepository
from reautod.telephony.state_machine import StatusEvent

log = logging.getLogger(__name__)

CREATE_WAIT_S = 10.0  # how long a callback for an unknown CallSid waits for a create in flight


class CallRegistry:
    """Every Twilio call in flight; one per daemon."""

    def __init__(self, db: Database, *,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.db = db
        self.clock = clock
        self.calls = CallRepository(db)
        self._by_id: dict[uuid.UUID, TrackedCall] = {}
        self._by_sid: dict[str, TrackedCall] = {}
        self._creating = 0
        self._changed = asyncio.Condition()
        self._restoring = asyncio.Lock()

    def tracked(self) -> list[TrackedCall]:
        return list(self._by_id.values())

    def get(self, call_id: str | uuid.UUID) -> TrackedCall | None:
        key = call_id if isinstance(call_id, uuid.UUID) else call_uuid(call_id)
        return self._by_id.get(key)

    def by_sid(self, sid: str) -> TrackedCall | None:
        """The call with this CallSid, in memory only."""
        return self._by_sid.get(sid)

    def add(self, call: TrackedCall) -> None:
        """A call whose sid is known already (an inbound call)."""
        self._by_id[call.call_id] = call
        if call.sid is not None:
            self._by_sid[call.sid] = call

    def learn_sid(self, call: TrackedCall, sid: str) -> None:
        """The media stream named the sid of a call created without one."""
        call.sid = sid
        self._by_sid[sid] = call

    async def expect(self, call: TrackedCall) -> None:
        """A call is about to be created at Twilio: callbacks for new sids wait for it."""
        call.started_at = call.started_at or self.clock()
        async with self._changed:
            self._by_id[call.call_id] = call
            self._creating += 1

    async def created(self, call: TrackedCall, sid: str | None) -> None:
        """Twilio answered the create (sid), or it failed (None: the call is forgotten)."""
        async with self._changed:
            self._creating -= 1
            if sid is None:
                self._by_id.pop(call.call_id, None)
            else:
                call.sid = sid
                self._by_sid[sid] = call
            self._changed.notify_all()

    def forget(self, call: TrackedCall) -> None:
        self._by_id.pop(call.call_id, None)
        if call.sid is not None:
            self._by_sid.pop(call.sid, None)

    async def resolve(self, sid: str) -> TrackedCall | None:
        """The call with this CallSid: in memory, after a create in flight, or from the store."""
        call = self._by_sid.get(sid)
        if call is not None:
            return call
        if self._creating:
            with contextlib.suppress(TimeoutError):
                async with self._changed:
                    await asyncio.wait_for(
                        self._changed.wait_for(lambda: sid in self._by_sid or not self._creating),
                        CREATE_WAIT_S)
            call = self._by_sid.get(sid)
            if call is not None:
                return call
        async with self._restoring:  # two callbacks for one unknown call restore it once
            known = self._by_sid.get(sid)
            return known if known is not None else await self._restore(sid)

    async def _restore(self, sid: str) -> TrackedCall | None:
        row = await self.calls.by_sid(sid)
        if row is None:
            log.info("callback for unknown call %s ignored", sid)
            return None
        settings, name = CampaignSettings(), "manual"
        if row.campaign_id is not None:
            campaign = await CampaignRepository(self.db).get(row.campaign_id)
            settings = settings_of(campaign)
            name = campaign.name
        direction = CallDirection(row.direction)
        phone = row.from_number if direction is CallDirection.INBOUND else row.to_number
        call = TrackedCall(row.id, phone or "", direction,
                           row.campaign_id, name, settings, row.lead_id, row.contact_id, sid,
                           answered_by=row.amd_result, started_at=row.created_at)
        for event in await self.calls.timeline(row.id):
            call.timeline.apply(StatusEvent(event.status.replace("_", "-"), event.sequence,
                                            event.at, event.source))
        if call.timeline.status.terminal:
            call.finished = True  # replays of a finished call: nothing to do, nothing to keep
            return call
        self.add(call)
        return call

"""The agent's tools with consequences, each checked by code and confirmed with the caller.

book_appointment: a day/time the caller names (on their clock) is matched to a free slot of the
`Scheduler` (in the future, within business hours, not full); the agent proposes it ("Tuesday,
December 15 at 3 PM your time. Shall I book it?") and books only on a yes, when the scheduler
re-checks the slot. schedule_callback: the time must lie in the lead's calling window (federal,
state and campaign hours, via `CallbackWindow`), else the earliest allowed time is proposed
instead; it is scheduled only on a yes. Every proposal, refusal and booking is journaled with
the turn's evidence. Times are spoken in the lead's time zone and stored in UTC.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from reautod.dialogue.extraction import TurnFacts
from reautod.dialogue.journal import CallJournal
from reautod.dialogue.lines import CallLines
from reautod.dialogue.playbook import BookingSettings, CallbackLines
from reautod.dialogue.ports import AgentCall, CallbackWindow, CallEffects
from reautod.dialogue.replies import Line
from reautod.dialogue.scheduling import BookingRequest, Scheduler, Slot, SlotTakenError
from reautod.dialogue.state import CallState, PendingBooking, PendingCallback
from reautod.dialogue.timeparse import PARTS, TimeMention
from reautod.dialogue.vocabulary import Intent, Tool
from reautod.errors import ReautodError
from reautod.store.enums import DecisionStatus

log = logging.getLogger(__name__)

OFFER = 2  # slots offered at once
CALLBACK_MIN_AHEAD = timedelta(minutes=15)
CALLBACK_HORIZON = timedelta(days=60)


@dataclass
class ToolKit:
    """What the tools of one call share."""

    call: AgentCall
    state: CallState
    lines: CallLines
    journal: CallJournal
    effects: CallEffects
    clock: Callable[[], datetime]  # aware, UTC


def _slot_args(slot: Slot, lines: CallLines) -> dict[str, str]:
    return {"start_utc": slot.start.isoformat(), "end_utc": slot.end.isoformat(),
            "spoken": lines.when(slot.start)}


class Booker:
    """book_appointment, over a Scheduler (see the module docstring)."""

    def __init__(self, kit: ToolKit, scheduler: Scheduler, settings: BookingSettings) -> None:
        self.kit = kit
        self.scheduler = scheduler
        self.settings = settings

    async def first_free(self) -> list[Slot]:
        """The next slots to offer, and remember them as offered."""
        now = self.kit.clock()
        slots = await self.scheduler.free_slots(now, now + timedelta(days=self.settings.horizon_days),
                                                limit=OFFER)
        self.kit.state.offered = tuple(slots)
        return slots

    async def offer_line(self) -> Line:
        slots = await self.first_free()
        if not slots:
            return self.kit.lines.line(self.settings.none_free)
        return self.kit.lines.line(self.settings.offer, slots=self.kit.lines.slots(slots))

    def wants(self, turn: TurnFacts) -> bool:
        """Is this turn about choosing a time?"""
        offered = bool(self.kit.state.offered)
        return (turn.time is not None or (turn.ordinal is not None and offered)
                or (turn.has(Intent.AFFIRM) and offered))

    async def propose(self, turn: TurnFacts, stage: str) -> list[Line]:
        state, lines = self.kit.state, self.kit.lines
        when = turn.time
        if when is None:
            if not state.offered:
                return []
            pick = state.offered[min(turn.ordinal or 0, len(state.offered) - 1)]
            return [self._ask(pick, stage, turn)]
        lo, hi = _span(when)
        if when.has_time:
            exact = [s for s in await self.scheduler.free_slots(lo, lo + timedelta(minutes=1), limit=1)
                     if s.start == lo]
            if exact:
                return [self._ask(exact[0], stage, turn)]
            self.kit.journal.decision(stage, Tool.BOOK_APPOINTMENT, DecisionStatus.REFUSED,
                                      args={"requested_utc": lo.isoformat()},
                                      evidence=turn.evidence(),
                                      detail="not a free slot within business hours")
            nearby = await self.scheduler.free_slots(lo - timedelta(hours=12), lo + timedelta(hours=36),
                                                     limit=20)
            nearby = sorted(sorted(nearby, key=lambda s: abs(s.start - lo))[:OFFER], key=lambda s: s.start)
        else:
            nearby = await self.scheduler.free_slots(lo, hi, limit=OFFER)
            if nearby:
                state.offered = tuple(nearby)
                return [lines.line(self.settings.offer, slots=lines.slots(nearby))]
        if not nearby:
            nearby = await self.first_free()
        state.offered = tuple(nearby)
        if not nearby:
            return [lines.line(self.settings.none_free)]
        return [lines.line(self.settings.unavailable, slots=lines.slots(nearby))]

    def _ask(self, slot: Slot, stage: str, turn: TurnFacts) -> Line:
        self.kit.state.pending = PendingBooking(slot)
        self.kit.state.offered = ()
        self.kit.journal.decision(stage, Tool.BOOK_APPOINTMENT, DecisionStatus.PROPOSED,
                                  args=_slot_args(slot, self.kit.lines), evidence=turn.evidence())
        return self.kit.lines.line(self.settings.confirm, when=self.kit.lines.when(slot.start))

    async def book(self, pending: PendingBooking, turn: TurnFacts, stage: str) -> list[Line]:
        kit, lead = self.kit, self.kit.call.lead
        kit.state.pending = None
        slot = pending.slot
        request = BookingRequest(
            campaign_id=str(lead.campaign_id or ""), contact_id=str(lead.contact_id or ""),
            lead_id=str(lead.lead_id) if lead.lead_id else None, call_id=str(kit.call.call_id),
            name=lead.name or "", phone_e164=lead.phone, email=lead.email, timezone=lead.timezone)
        args = _slot_args(slot, kit.lines)
        try:
            booking = await self.scheduler.book(slot, request)
        except SlotTakenError as err:
            kit.journal.decision(stage, Tool.BOOK_APPOINTMENT, DecisionStatus.REFUSED, args=args,
                                 evidence=turn.evidence(), detail=err.message)
            nearby = await self.first_free()
            if not nearby:
                return [kit.lines.line(self.settings.none_free)]
            return [kit.lines.line(self.settings.unavailable, slots=kit.lines.slots(nearby))]
        except ReautodError as err:
            log.warning("call %s: booking failed: %s", kit.call.call_id, err.code)
            kit.journal.decision(stage, Tool.BOOK_APPOINTMENT, DecisionStatus.FAILED, args=args,
                                 evidence=turn.evidence(), detail=err.message)
            return [kit.lines.approved("compliance:fallback")]
        kit.state.booking = booking
        kit.journal.decision(stage, Tool.BOOK_APPOINTMENT, DecisionStatus.DONE,
                             args={**args, "ref": booking.ref}, evidence=turn.evidence())
        return [kit.lines.commitment(self.settings.booked, when=kit.lines.when(booking.slot.start))]


def _span(when: TimeMention) -> tuple[datetime, datetime]:
    """The UTC stretch a mention asks for: its instant, its part of the day, or its whole day."""
    local = when.local
    if when.has_time:
        at = local.astimezone(UTC)
        return at, at
    if when.part_of_day is not None:
        start, end = PARTS[when.part_of_day]
        return (local.replace(hour=start.hour, minute=0).astimezone(UTC),
                local.replace(hour=end.hour, minute=0).astimezone(UTC))
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return day.astimezone(UTC), (day + timedelta(days=1)).astimezone(UTC)


class Callbacks:
    """schedule_callback, within the lead's calling window (see the module docstring)."""

    def __init__(self, kit: ToolKit, window: CallbackWindow | None, lines_: CallbackLines) -> None:
        self.kit = kit
        self.window = window
        self.text = lines_

    def ask_time(self) -> Line:
        self.kit.state.awaiting_callback_time = True
        return self.kit.lines.line(self.text.ask_time)

    def propose(self, turn: TurnFacts, stage: str) -> Line:
        kit = self.kit
        if turn.time is None:
            return self.ask_time()
        now = kit.clock()
        start, _end = _span(turn.time)
        at = max(start, now + CALLBACK_MIN_AHEAD)
        earliest = self.window.earliest(kit.call.lead, at) if self.window is not None else at
        if earliest is None or earliest - now > CALLBACK_HORIZON:
            kit.journal.decision(stage, Tool.SCHEDULE_CALLBACK, DecisionStatus.REFUSED,
                                 args={"requested_utc": at.isoformat()}, evidence=turn.evidence(),
                                 detail="no calling window in the next 60 days")
            return self.ask_time()
        kit.state.pending = PendingCallback(earliest)
        kit.state.awaiting_callback_time = False
        kit.journal.decision(stage, Tool.SCHEDULE_CALLBACK, DecisionStatus.PROPOSED,
                             args={"at_utc": earliest.isoformat(), "requested_utc": at.isoformat(),
                                   "spoken": kit.lines.when(earliest)},
                             evidence=turn.evidence())
        moved = turn.time.has_time and earliest > at
        template = self.text.outside_window if moved else self.text.confirm
        return kit.lines.line(template, when=kit.lines.when(earliest))

    async def schedule(self, pending: PendingCallback, turn: TurnFacts, stage: str) -> Line | None:
        """Schedule on a yes; None if it failed (the caller hears the fallback, the call goes on)."""
        kit = self.kit
        kit.state.pending = None
        args = {"at_utc": pending.at.isoformat(), "spoken": kit.lines.when(pending.at)}
        try:
            await kit.effects.schedule_callback(kit.call.lead, pending.at,
                                                reason=f"asked for during {stage}")
        except ReautodError as err:
            kit.journal.decision(stage, Tool.SCHEDULE_CALLBACK, DecisionStatus.FAILED, args=args,
                                 evidence=turn.evidence(), detail=err.message)
            return None
        kit.state.callback_at = pending.at
        kit.journal.decision(stage, Tool.SCHEDULE_CALLBACK, DecisionStatus.DONE, args=args,
                             evidence=turn.evidence())
        return kit.lines.commitment(self.text.scheduled, when=kit.lines.when(pending.at))

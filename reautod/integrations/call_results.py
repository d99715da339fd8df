"""Call ends to results out: a `CallObserver` (the leaf contract `reautod.call_events`) that,
once a call has ended and the store holds its row, queues in the outbox the `call.completed`
webhook, `lead.scored` when the agent scored the lead during the call (its last score),
`lead.qualified` when the conversation settled on qualified or booked, `lead.opted_out` when the
call ended in an opt-out, and the call's row for the results sheet when one is configured.
(`appointment.booked` is queued by the booking service when the booking is made, not here.)

The event is built from the store's row, not from the pipeline's callback: the row is where the
dialer's campaign and lead, Twilio's SID, telephony's outcome (an opt-out is recorded before
the call is hung up) and the conversation's (`CallOutcomeDecided`, written before the pipeline
reports the end) come together, with the agent's scores (`lead_scores`). So the observer first waits for the write-behind queue to
hold the call's end. All of that runs on a task of its own: the observer's callbacks stay
sync and cheap, as the contract asks, and a store outage delays an event, never a call.

A dialed call that never reached a conversation (no answer, busy, a machine) has no pipeline:
telephony tells `ended_without_conversation` once Twilio's final status is stored.
"""

from __future__ import annotations

import logging

from reautod.call_events import CallInfo, CallState, TurnRecord
from reautod.errors import ReautodError
from reautod.integrations.events import (
    CallCompleted,
    CallCompletedEvent,
    CampaignRef,
    LeadOptedOut,
    LeadOptedOutEvent,
    LeadQualified,
    LeadQualifiedEvent,
    LeadRef,
    LeadScored,
    LeadScoredEvent,
)
from reautod.integrations.sheets import CallResult, ResultsSheet
from reautod.integrations.tasks import BackgroundTasks
from reautod.integrations.webhooks import WebhookPublisher
from reautod.store.call_observer import call_uuid
from reautod.store.database import Database
from reautod.store.enums import QUALIFIED_OUTCOMES, CallOutcome
from reautod.store.repositories import (
    AppointmentRepository,
    CallRepository,
    CallRow,
    CampaignRepository,
    ContactRepository,
    LeadScoreRepository,
    LeadScoreRow,
    NewMessage,
    OutboxRepository,
)
from reautod.store.writebehind import WriteBehind

log = logging.getLogger(__name__)


class CallResults:
    """Queues each ended call's results in the outbox (webhooks, results sheet)."""

    def __init__(self, db: Database, writer: WriteBehind, publisher: WebhookPublisher, *,
                 sheet: ResultsSheet | None = None, flush_timeout_s: float = 30.0) -> None:
        self.db = db
        self.writer = writer
        self.publisher = publisher
        self.sheet = sheet
        self.flush_timeout_s = flush_timeout_s
        self.outbox = OutboxRepository(db)
        self._tasks = BackgroundTasks()

    # -- the CallObserver side: sync, cheap ---------------------------------------------------------

    def on_call_started(self, info: CallInfo) -> None:
        """Nothing yet: the results are about the call's end."""

    def on_turn(self, turn: TurnRecord) -> None:
        """Transcripts are exported, not pushed (docs/integrations.md)."""

    def on_barge_in(self, call_id: str, heard_text: str) -> None:
        """Not a result."""

    def on_call_state(self, call_id: str, state: CallState) -> None:
        """Not a result."""

    def on_dtmf(self, call_id: str, digit: str) -> None:
        """Telephony turns the opt-out key into the call's outcome, read at the end."""

    def on_call_ended(self, call_id: str, reason: str, duration_s: float) -> None:
        self._spawn(call_id, reason, duration_s)

    def ended_without_conversation(self, call_id: str, status: str) -> None:
        """Telephony's word for a call no pipeline ran (outbound's `DialOutcomes` is given this
        as `ended_unconnected`)."""
        self._spawn(call_id, status, 0.0)

    def _spawn(self, call_id: str, reason: str, duration_s: float) -> None:
        self._tasks.spawn(self._queue(call_id, reason, duration_s), f"results of call {call_id}")

    # -- the task --------------------------------------------------------------------------------

    async def _queue(self, call_id: str, reason: str, duration_s: float) -> None:
        try:
            await self.writer.flush(self.flush_timeout_s)
            row = await CallRepository(self.db).get(call_uuid(call_id))
            messages = await self.messages(row, reason, duration_s)
            await self.outbox.enqueue_many(messages)
        except TimeoutError:
            log.error("results of call %s not queued: the store did not take the call's end "
                      "within %.0f s", call_id, self.flush_timeout_s)
            return
        except ReautodError as err:
            log.error("results of call %s not queued: %s (%s)", call_id, err.message, err.code)
            return
        if messages and self.publisher.wake is not None:
            self.publisher.wake()

    async def messages(self, row: CallRow, reason: str, duration_s: float) -> list[NewMessage]:
        """The outbox messages of an ended call (its row as the store has it)."""
        contact = await ContactRepository(self.db).get(row.contact_id) if row.contact_id else None
        campaign = (await CampaignRepository(self.db).get(row.campaign_id)
                    if row.campaign_id else None)
        campaign_ref = CampaignRef(id=str(campaign.id), name=campaign.name) if campaign else None
        lead = LeadRef(contact_id=str(contact.id), lead_id=str(row.lead_id) if row.lead_id else None,
                       phone=contact.phone_e164, name=contact.name, email=contact.email,
                       timezone=contact.timezone) if contact else None
        direction = "inbound" if row.direction == "inbound" else "outbound"
        scores = await LeadScoreRepository(self.db).history(call_id=row.id, limit=1)
        scored = scores[-1] if scores else None
        completed = CallCompletedEvent(campaign=campaign_ref, lead=lead, data=CallCompleted(
            call_id=str(row.id), call_sid=row.call_sid, direction=direction, status=row.status,
            outcome=row.outcome, disposition=row.disposition or reason, amd_result=row.amd_result,
            started_at=row.created_at, answered_at=row.answered_at, ended_at=row.ended_at,
            duration_s=row.duration_ms / 1000 if row.duration_ms is not None else duration_s,
            score=scored.score if scored else None))
        messages = self.publisher.messages(completed)
        if scored is not None:
            messages += self.publisher.messages(LeadScoredEvent(
                campaign=campaign_ref, lead=lead,
                data=LeadScored(call_id=str(row.id), score=scored.score,
                                factors=factor_points(scored), reason=scored.reason)))
        if row.outcome in QUALIFIED_OUTCOMES:
            messages += self.publisher.messages(LeadQualifiedEvent(
                campaign=campaign_ref, lead=lead,
                data=LeadQualified(call_id=str(row.id), score=scored.score if scored else None,
                                   reason=row.disposition)))
        if row.outcome == CallOutcome.OPTED_OUT and lead is not None:
            # telephony's opt-outs go on the global list (outbound.live.LiveCallObserver.on_opt_out)
            messages += self.publisher.messages(LeadOptedOutEvent(
                campaign=campaign_ref, lead=lead,
                data=LeadOptedOut(call_id=str(row.id), scope="global")))
        if self.sheet is not None:
            booked = await AppointmentRepository(self.db).of_call(row.id)
            zone = (booked.timezone if booked else None) or (contact.timezone if contact else None)
            messages.append(self.sheet.message(CallResult(
                call_id=str(row.id), finished_at=row.ended_at or completed.occurred_at,
                campaign=campaign.name if campaign else None,
                contact_id=str(contact.id) if contact else None,
                lead_name=contact.name if contact else None,
                phone=contact.phone_e164 if contact else None, status=row.status,
                outcome=row.outcome, score=scored.score if scored else None,
                appointment_at=booked.starts_at if booked else None, lead_timezone=zone)))
        return messages

    async def close(self, timeout_s: float = 10.0) -> None:
        """Let the calls that ended during the drain queue their results (the writer is still
        open), then give up on the rest."""
        await self._tasks.close(timeout_s)



def factor_points(score: LeadScoreRow) -> dict[str, float]:
    """A stored score's factors as the webhook gives them: each criterion's points (0-100).
    The agent stores `{fact: {"value", "weight", "points"}}` (`Score.factors_json`); a factor
    without numeric points is left out rather than guessed."""
    points: dict[str, float] = {}
    for fact, factor in score.factors.items():
        value = factor.get("points") if isinstance(factor, dict) else factor
        if isinstance(value, int | float) and not isinstance(value, bool):
            points[fact] = float(value)
    return points

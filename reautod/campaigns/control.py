"""Control-socket methods of campaigns and Twilio calls: campaigns.list, campaign.create|import|
start|pause|resume|stop|status, dial, dnc.add|check, calls.history, call.show, call.transfer.

(`calls.list` and `call.hangup` for live calls are the pipeline's.)
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import phonenumbers
from phonenumbers import timezone as number_timezone
from pydantic import BaseModel, ConfigDict, Field, model_validator

from reautod.campaigns.call_tracker import TrackedCall, twilio_spelling
from reautod.campaigns.dialer import BlockReason, LeadTarget, NotAdmitted
from reautod.campaigns.dnc import DncChannel, DncScope, normalize_phone
from reautod.campaigns.intake import ImportResult, add_leads
from reautod.campaigns.leads_import import MAX_FILE_BYTES, state_of_number
from reautod.campaigns.results import (
    CallCostResult,
    CallDetail,
    CallHistory,
    CampaignInfo,
    CampaignList,
    CampaignPacing,
    CampaignStatusResult,
    CampaignSummary,
    CampaignTransition,
    DialBlock,
    DialResult,
    DncAddResult,
    DncCheckResult,
    StatusChange,
    StoredCall,
    StoredTurn,
    TrackedCallState,
    TransferResult,
)
from reautod.campaigns.settings import CampaignSettings, settings_of
from reautod.dialogue.call_record import agent_record
from reautod.errors import NotFoundError, OverloadedError, ReautodError, ValidationError
from reautod.methods import Method, NoParams
from reautod.observability.logging import mask_phone
from reautod.security.text import DisplayName
from reautod.store.call_observer import call_uuid
from reautod.store.enums import CallDirection, CampaignStatus, LeadStatus
from reautod.store.repositories import (
    CallRow,
    CampaignRow,
    ContactInput,
    ContactRepository,
    CostRepository,
    DialBlockRepository,
    LeadRepository,
)

if TYPE_CHECKING:
    from reautod.campaigns.service import TelephonyPart

RECENT_BLOCKS = 10

# campaign.<action>: the states it may start from, and the state it leads to
TRANSITIONS: dict[str, tuple[frozenset[CampaignStatus], CampaignStatus]] = {
    "start": (frozenset({CampaignStatus.DRAFT, CampaignStatus.PAUSED, CampaignStatus.COMPLETED}),
              CampaignStatus.ACTIVE),
    "pause": (frozenset({CampaignStatus.ACTIVE}), CampaignStatus.PAUSED),
    "resume": (frozenset({CampaignStatus.PAUSED}), CampaignStatus.ACTIVE),
    "stop": (frozenset({CampaignStatus.DRAFT, CampaignStatus.ACTIVE, CampaignStatus.PAUSED}),
             CampaignStatus.COMPLETED),
}


class CreateParams(CampaignSettings):
    # printable, normalised, 1..200 characters: names reach operators' terminals
    name: DisplayName = Field(description="Unique campaign name")


class ImportParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    campaign: str = Field(min_length=1, max_length=200)
    csv_path: str | None = Field(None, description="Absolute path of a CSV file the daemon reads")
    csv_text: str | None = Field(None, max_length=MAX_FILE_BYTES, description="The CSV itself")

    @model_validator(mode="after")
    def _one_source(self) -> ImportParams:
        if (self.csv_path is None) == (self.csv_text is None):
            raise ValueError("give exactly one of csv_path and csv_text")
        return self


class CampaignRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    campaign: str = Field(min_length=1, max_length=200, description="Campaign name or id")


class DialParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: str = Field(min_length=2, max_length=32)
    campaign: str | None = Field(None, min_length=1, max_length=200)


class HistoryParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    campaign: str | None = Field(None, min_length=1, max_length=200)
    limit: int = Field(50, ge=1, le=1000)


class DncParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: str = Field(min_length=2, max_length=32)
    campaign: str | None = Field(None, min_length=1, max_length=200,
                                 description="Only for this campaign (default: every campaign)")
    reason: str = Field("operator request", max_length=500)


class DncCheckParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: str = Field(min_length=2, max_length=32)
    campaign: str | None = Field(None, min_length=1, max_length=200)


class CallRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    call_id: str = Field(min_length=1, max_length=64)


def campaign_fields(row: CampaignRow) -> dict[str, object]:
    """The CampaignInfo fields of a stored campaign; settings that no longer validate are
    reported, not raised (the operator must still be able to see and stop the campaign)."""
    settings, problem = None, None
    try:
        settings = settings_of(row)
    except ValueError as err:
        problem = str(err)
    return {"id": row.id, "name": row.name, "status": CampaignStatus(row.status),
            "created_at": row.created_at, "settings": settings, "settings_error": problem}


def call_fields(row: CallRow) -> dict[str, object]:
    """The StoredCall fields of a call row."""
    return {"call_id": row.id, "call_sid": row.call_sid, "campaign_id": row.campaign_id,
            "lead_id": row.lead_id, "direction": row.direction, "transport": row.transport,
            "status": row.status, "amd_result": row.amd_result, "outcome": row.outcome,
            "disposition": row.disposition, "from_number": row.from_number,
            "to": row.to_number, "error_code": row.error_code, "created_at": row.created_at,
            "answered_at": row.answered_at, "ended_at": row.ended_at,
            "duration_ms": row.duration_ms}


def tracked_state(call: TrackedCall) -> TrackedCallState:
    return TrackedCallState(call_id=call.call_id, call_sid=call.sid, campaign=call.campaign_name,
                            direction=call.direction.value,
                            status=twilio_spelling(call.timeline.status),
                            answered_by=call.answered_by, opted_out=call.opted_out,
                            handed_off=call.handed_off)


async def _read_csv(path_text: str) -> bytes:
    path = Path(path_text)
    if not path.is_absolute():
        raise ValidationError(f"csv_path {path_text!r} must be absolute (the daemon reads it)")

    def read() -> bytes:
        try:
            with path.open("rb") as f:
                data = f.read(MAX_FILE_BYTES + 1)
        except OSError as err:
            raise ValidationError(f"cannot read {path}: {err.strerror}") from err
        if len(data) > MAX_FILE_BYTES:
            raise ValidationError(f"{path} is over {MAX_FILE_BYTES // (1024 * 1024)} MiB")
        return data

    return await asyncio.to_thread(read)


# the concurrency slot of dials outside any campaign (the box's limit still applies)
MANUAL_SLOT = "manual"
# how `reautoctl dial` reports a refusal of the dialer's gate
REFUSAL_CODES = {BlockReason.DNC: "dnc", BlockReason.WINDOW: "outside_window",
                 BlockReason.NO_TIMEZONE: "no_timezone", BlockReason.PACING: "pacing"}


async def admit_now(part: TelephonyPart, target: LeadTarget, slot: str,
                    campaign_id: uuid.UUID | None, settings: CampaignSettings
                    ) -> NotAdmitted | None:
    """The dialer's gate for one number now; waits for a calls-per-second token rather than
    refusing an operator for it (at most a second at Twilio's default rate)."""
    while True:
        refused = await part.dialer.admit(
            target, slot=slot, campaign_id=campaign_id, window=settings.window(),
            max_concurrent=settings.max_concurrent, now=part.clock(),
            monotonic=part.monotonic())
        if refused is None or refused.rule_code != "calls_per_second":
            return refused
        await asyncio.sleep(part.dialer.bucket.wait_s(part.monotonic()))


def dial_refused(refused: NotAdmitted, masked_phone: str) -> ReautodError:
    code = REFUSAL_CODES.get(refused.reason, refused.reason.value)
    if refused.reason is BlockReason.PACING:
        return OverloadedError(f"not dialing {masked_phone} now: {refused.detail}", code=code)
    if refused.reason is BlockReason.WINDOW:
        when = refused.retry_at.isoformat() if refused.retry_at else "never"
        return ValidationError(f"outside the calling window: {refused.detail} "
                               f"({refused.source}); next allowed {when}", code=code)
    if refused.reason is BlockReason.NO_TIMEZONE:
        return ValidationError(f"cannot tell the time zone of {masked_phone}: import it as a "
                               "lead with a timezone column, then dial it", code=code)
    return ValidationError(f"{masked_phone}: {refused.detail}", code=code)


def campaign_methods(part: TelephonyPart) -> list[Method]:
    """The methods this part adds to the control socket."""
    db = part.db

    async def campaigns_list(_: NoParams) -> CampaignList:
        live = Counter(c.campaign_id for c in (part.tracker.tracked() if part.tracker else [])
                       if not c.finished)
        costs = CostRepository(db)
        result = []
        for row in await part.campaigns.list():
            fields = campaign_fields(row)
            settings = fields["settings"]
            result.append(CampaignSummary.model_validate({
                **fields,
                "leads": {LeadStatus(k): n
                          for k, n in (await LeadRepository(db).status_counts(row.id)).items()},
                "calls_live": live[row.id],
                "pacing": CampaignPacing(max_concurrent=settings.max_concurrent,
                                         calls_per_minute=part.calls_per_minute)
                if isinstance(settings, CampaignSettings) else None,
                "spent_micros": await costs.spent_since(row.created_at, row.id),
            }))
        return CampaignList(campaigns=result)

    async def campaign_create(params: CreateParams) -> CampaignInfo:
        name = params.name.strip()
        try:
            await part.campaigns.find(name)
        except NotFoundError:
            pass
        else:
            raise ValidationError(f"campaign {name!r} already exists", code="exists")
        settings = CampaignSettings.model_validate(params.model_dump(exclude={"name"}))
        part.opening_for(settings)  # refuse now an opening its calls could not carry
        columns = settings.to_columns()
        row = await part.campaigns.create(name, calling_window=columns["calling_window"],
                                          pacing=columns["pacing"],
                                          agent_config=columns["agent_config"])
        return CampaignInfo.model_validate(campaign_fields(row))

    async def campaign_import(params: ImportParams) -> ImportResult:
        campaign = await part.campaigns.find(params.campaign)  # before reading a large file
        data = (params.csv_text.encode() if params.csv_text is not None
                else await _read_csv(params.csv_path or ""))
        return await add_leads(db, str(campaign.id), data, source="import", clock=part.clock,
                               erased=part.erased)

    def transition(action: str) -> Method:
        allowed, target = TRANSITIONS[action]

        async def handler(params: CampaignRef) -> CampaignTransition:
            campaign = await part.campaigns.find(params.campaign)
            current = CampaignStatus(campaign.status)
            if current not in allowed:
                raise ValidationError(
                    f"campaign {campaign.name!r} is {current.value}: cannot {action} it",
                    code="bad_state")
            if target is CampaignStatus.ACTIVE:
                part.require_twilio()
                # refuse to start what the dialer could not read, or an opening that no longer
                # fits after a config change
                part.opening_for(settings_of(campaign))
            await part.campaigns.set_status(campaign.id, target)
            return CampaignTransition(campaign=campaign.name, status=target, previous=current)

        return Method(f"campaign.{action}", handler, CampaignRef, changes_state=True,
                      summary=f"{action} a campaign ({', '.join(sorted(allowed))} -> "
                              f"{target.value})")

    async def campaign_status(params: CampaignRef) -> CampaignStatusResult:
        campaign = await part.campaigns.find(params.campaign)
        blocks = DialBlockRepository(db)
        recent = await blocks.recent(campaign_id=campaign.id, limit=RECENT_BLOCKS)
        live = [tracked_state(c) for c in (part.tracker.tracked() if part.tracker else [])
                if c.campaign_id == campaign.id]
        problem = part.problem
        if problem is None and part.manager is not None:
            try:
                part.manager.check_admission()
            except ReautodError as err:  # models missing, draining or full: no dials now
                problem = err.message
        return CampaignStatusResult.model_validate({
            **campaign_fields(campaign),
            "leads": await LeadRepository(db).status_counts(campaign.id),
            "blocked_by_rule": await blocks.counts_by_rule(campaign.id),
            "recent_blocks": [DialBlock(lead_id=b.lead_id, reason=b.reason, rule=b.rule_code,
                                        detail=b.detail, source=b.source, at=b.at,
                                        retry_at=b.retry_at) for b in recent],
            "live_calls": live,
            "dialing": problem is None,
            "problem": problem,
        })

    async def dial(params: DialParams) -> DialResult:
        campaign = await part.campaigns.find(params.campaign) if params.campaign else None
        settings = settings_of(campaign) if campaign else CampaignSettings()
        phone = normalize_phone(params.number, settings.default_region)
        # an erased number is refused first, whatever else would stop the dial
        if part.erased is not None and await part.erased.is_erased(phone):
            part.metrics.dial_blocked("dnc")
            raise ValidationError(f"{mask_phone(phone)} was erased on its owner's request: it is "
                                  "never dialed again", code="erased")
        tracker = part.require_twilio()
        if part.manager is not None:
            part.manager.check_admission()
        budget = part.dialer.budget
        refusal = await budget.check_dial(campaign.id if campaign else None) if budget else None
        if refusal is not None:
            part.metrics.dial_blocked("budget")
            raise ValidationError(f"over budget ({refusal.rule_code}): {refusal.detail}",
                                  code="budget")
        contacts = ContactRepository(db)
        contact = await contacts.by_phone(phone)
        parsed = phonenumbers.parse(phone, None)
        zones = [z for z in number_timezone.time_zones_for_number(parsed)
                 if z != number_timezone.UNKNOWN_TIMEZONE]
        zone = (contact.timezone if contact and contact.timezone
                else zones[0] if len(zones) == 1 else None)
        stored_state = contact.custom.get("state") if contact else None
        state = (stored_state if isinstance(stored_state, str)
                 else await asyncio.to_thread(state_of_number, parsed))  # geodata loads once, slowly
        # the dialer's own gate: time zone, DNC, window, a call slot, a calls-per-second token
        slot = str(campaign.id) if campaign else MANUAL_SLOT
        target = LeadTarget(phone, zone, state if isinstance(state, str) else None,
                            contact.name or "" if contact else "")
        refused = await admit_now(part, target, slot, campaign.id if campaign else None,
                                  settings)
        if refused is not None:
            part.count_refusal(refused.reason)
            raise dial_refused(refused, mask_phone(phone))
        call = TrackedCall(uuid.uuid4(), phone, CallDirection.OUTBOUND,
                           campaign.id if campaign else None,
                           campaign.name if campaign else "manual", settings)
        part.hold_slot(call.call_id, slot)  # released when the call is over
        try:
            if contact is None:
                contact = await contacts.upsert(ContactInput(phone_e164=phone, timezone=zone,
                                                             source="reautoctl dial"))
            call.contact_id = contact.id
            sid = await part.place_call(tracker, call, target.name)
        except BaseException:
            part.release_slot(call.call_id)
            raise
        return DialResult(call_id=call.call_id, call_sid=sid, to=phone,
                          campaign=call.campaign_name)

    async def dnc_add(params: DncParams) -> DncAddResult:
        campaign = await part.campaigns.find(params.campaign) if params.campaign else None
        region = settings_of(campaign).default_region if campaign else "US"
        entry = await part.dnc.add(
            normalize_phone(params.number, region), source=DncChannel.OPERATOR,
            now=part.clock(), reason=params.reason,
            campaign_id=str(campaign.id) if campaign else None,
            scope=DncScope.CAMPAIGN if campaign else DncScope.GLOBAL)
        return DncAddResult(number=entry.phone, scope=entry.scope,
                            campaign=campaign.name if campaign else None)

    async def dnc_check(params: DncCheckParams) -> DncCheckResult:
        campaign = await part.campaigns.find(params.campaign) if params.campaign else None
        region = settings_of(campaign).default_region if campaign else "US"
        phone = normalize_phone(params.number, region)
        result = await part.dnc.check(phone, str(campaign.id) if campaign else None)
        entry = result.entry
        if entry is None:
            return DncCheckResult(number=phone, suppressed=result.suppressed)
        return DncCheckResult(number=phone, suppressed=result.suppressed, scope=entry.scope,
                              source=entry.source, reason=entry.reason, since=entry.created_at)

    async def calls_history(params: HistoryParams) -> CallHistory:
        campaign = await part.campaigns.find(params.campaign) if params.campaign else None
        rows = await part.calls.recent(campaign_id=campaign.id if campaign else None,
                                       limit=params.limit)
        return CallHistory(calls=[StoredCall.model_validate(call_fields(r)) for r in rows])

    async def call_show(params: CallRef) -> CallDetail:
        call_id = call_uuid(params.call_id)
        row = await part.calls.get(call_id)
        timeline = await part.calls.timeline(call_id)
        turns = await part.calls.turns(call_id)
        live = part.tracker.get(call_id) if part.tracker else None
        agent = await agent_record(db, row)  # a playbook call: stages, scores, booking
        cost = await CostRepository(db).for_call(call_id)
        return CallDetail.model_validate({
            **call_fields(row),
            "timeline": [StatusChange(status=e.status, at=e.at, source=e.source,
                                      sequence=e.sequence, detail=e.detail) for e in timeline],
            "turns": [StoredTurn(seq=t.seq, speaker=t.speaker, text=t.text,
                                 started_at=t.started_at, confidence=t.stt_confidence,
                                 response_ms=t.response_ms, interrupted=t.interrupted)
                      for t in turns],
            "live": tracked_state(live) if live else None,
            "cost": CallCostResult(total_micros=cost.total_micros, by_service=cost.by_service,
                                   by_tier=cost.by_tier, rows=cost.rows),
            "agent": agent,
        })

    async def call_transfer(params: CallRef) -> TransferResult:
        call = await part.require_twilio().transfer(params.call_id)
        return TransferResult(call_id=call.call_id, transferred_to=call.settings.transfer_number,
                              at=datetime.now(UTC))

    return [
        Method("campaigns.list", campaigns_list, summary="campaigns with their lead counts"),
        Method("campaign.create", campaign_create, CreateParams, changes_state=True,
               summary="create a campaign (name and settings)"),
        Method("campaign.import", campaign_import, ImportParams, changes_state=True,
               summary="import leads from CSV; returns the validation report"),
        *(transition(action) for action in TRANSITIONS),
        Method("campaign.status", campaign_status, CampaignRef,
               summary="a campaign's leads, blocked dials and live calls"),
        Method("dial", dial, DialParams, changes_state=True,
               summary="call one number now (budget, DNC and calling window checked first)"),
        Method("dnc.add", dnc_add, DncParams, changes_state=True,
               summary="put a number on the do-not-call list (global, or one campaign's)"),
        Method("dnc.check", dnc_check, DncCheckParams,
               summary="is a number suppressed (globally or for a campaign), and why"),
        Method("calls.history", calls_history, HistoryParams, summary="recent calls, newest first"),
        Method("call.show", call_show, CallRef, summary="one call: status timeline, turns, cost and the agent's stages, score, outcome"),
        Method("call.transfer", call_transfer, CallRef, changes_state=True,
               summary="transfer a live call to the campaign's transfer number"),
    ]

"""Control-socket methods of campaigns and Twilio calls: campaigns.list, campaign.create|import|
start|pause|resume|stop|status, dial, dnc.add|check, calls.history, call.show, call.transfer.

(`calls.list` and `call.hangup` for live calls are the pipeline's.)
"""

from __future__ import annotations

import asyncio
import functools
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from reautod.campaigns.dialer import ErasedNumbers
from reautod.campaigns.dnc import DncChannel, DncList, DncScope, normalize_phone
from reautod.campaigns.intake import ImportResult, add_leads
from reautod.campaigns.leads_import import MAX_FILE_BYTES
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
from reautod.errors import NotFoundError, ReautodError, ValidationError
from reautod.methods import Method, NoParams
from reautod.outbound.calls import LiveLine, TrackedCall
from reautod.outbound.hangup import HangUp
from reautod.outbound.manual_dial import ManualDial
from reautod.outbound.params import (
    TRANSITIONS,
    CallRef,
    CampaignRef,
    CreateParams,
    DialParams,
    DncCheckParams,
    DncParams,
    HistoryParams,
    ImportParams,
)
from reautod.outbound.twilio_side import TwilioSide
from reautod.store.call_observer import call_uuid
from reautod.store.database import Database
from reautod.store.enums import CampaignStatus, LeadStatus
from reautod.store.repositories import (
    CallRepository,
    CallRow,
    CampaignRepository,
    CampaignRow,
    CostRepository,
    DialBlockRepository,
    LeadRepository,
)
from reautod.telephony.state_machine import twilio_spelling

RECENT_BLOCKS = 10


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


class CampaignMethods:
    """The campaign and Twilio call methods; `methods()` is what the part adds to the socket."""

    def __init__(self, db: Database, twilio: TwilioSide, dnc: DncList, manual: ManualDial, *,
                 opening_for: Callable[[CampaignSettings], str],
                 calls_per_minute: Callable[[], float], line: LiveLine | None,
                 hangup: HangUp | None, erased: ErasedNumbers | None,
                 clock: Callable[[], datetime]) -> None:
        self._db = db
        self._campaigns = CampaignRepository(db)
        self._calls = CallRepository(db)
        self._twilio = twilio
        self._registry = twilio.registry
        self._dnc = dnc
        self._manual = manual
        self._opening_for = opening_for  # refuses an opening its calls could not carry
        self._calls_per_minute = calls_per_minute
        self._line = line
        self._hangup = hangup
        self._erased = erased
        self._clock = clock

    def methods(self) -> list[Method]:
        return [
            Method("campaigns.list", self.campaigns_list,
                   summary="campaigns with their lead counts"),
            Method("campaign.create", self.campaign_create, CreateParams, changes_state=True,
                   summary="create a campaign (name and settings)"),
            Method("campaign.import", self.campaign_import, ImportParams, changes_state=True,
                   summary="import leads from CSV; returns the validation report"),
            *(self._transition(action) for action in TRANSITIONS),
            Method("campaign.status", self.campaign_status, CampaignRef,
                   summary="a campaign's leads, blocked dials and live calls"),
            Method("dial", self.dial, DialParams, changes_state=True,
                   summary="call one number now (budget, DNC and calling window checked first)"),
            Method("dnc.add", self.dnc_add, DncParams, changes_state=True,
                   summary="put a number on the do-not-call list (global, or one campaign's)"),
            Method("dnc.check", self.dnc_check, DncCheckParams,
                   summary="is a number suppressed (globally or for a campaign), and why"),
            Method("calls.history", self.calls_history, HistoryParams,
                   summary="recent calls, newest first"),
            Method("call.show", self.call_show, CallRef,
                   summary="one call: status timeline, turns, cost and the agent's stages, "
                           "score, outcome"),
            Method("call.transfer", self.call_transfer, CallRef, changes_state=True,
                   summary="transfer a live call to the campaign's transfer number"),
        ]

    def _transition(self, action: str) -> Method:
        allowed, target = TRANSITIONS[action]
        return Method(f"campaign.{action}", functools.partial(self.campaign_transition, action),
                      CampaignRef, changes_state=True, result=CampaignTransition,
                      summary=f"{action} a campaign ({', '.join(sorted(allowed))} -> "
                              f"{target.value})")

    async def campaigns_list(self, _: NoParams) -> CampaignList:
        live = Counter(c.campaign_id for c in self._registry.tracked() if not c.finished)
        costs = CostRepository(self._db)
        leads = LeadRepository(self._db)
        result = []
        for row in await self._campaigns.list():
            fields = campaign_fields(row)
            settings = fields["settings"]
            result.append(CampaignSummary.model_validate({
                **fields,
                "leads": {LeadStatus(k): n for k, n in (await leads.status_counts(row.id)).items()},
                "calls_live": live[row.id],
                "pacing": CampaignPacing(max_concurrent=settings.max_concurrent,
                                         calls_per_minute=self._calls_per_minute())
                if isinstance(settings, CampaignSettings) else None,
                "spent_micros": await costs.spent_since(row.created_at, row.id),
            }))
        return CampaignList(campaigns=result)

    async def campaign_create(self, params: CreateParams) -> CampaignInfo:
        name = params.name.strip()
        try:
            await self._campaigns.find(name)
        except NotFoundError:
            pass
        else:
            raise ValidationError(f"campaign {name!r} already exists", code="exists")
        settings = CampaignSettings.model_validate(params.model_dump(exclude={"name"}))
        self._opening_for(settings)  # refuse now an opening its calls could not carry
        columns = settings.to_columns()
        row = await self._campaigns.create(name, calling_window=columns["calling_window"],
                                           pacing=columns["pacing"],
                                           agent_config=columns["agent_config"])
        return CampaignInfo.model_validate(campaign_fields(row))

    async def campaign_import(self, params: ImportParams) -> ImportResult:
        campaign = await self._campaigns.find(params.campaign)  # before reading a large file
        data = (params.csv_text.encode() if params.csv_text is not None
                else await _read_csv(params.csv_path or ""))
        return await add_leads(self._db, str(campaign.id), data, source="import",
                               clock=self._clock, erased=self._erased)

    async def campaign_transition(self, action: str, params: CampaignRef) -> CampaignTransition:
        """campaign.start|pause|resume|stop: a move of TRANSITIONS."""
        allowed, target = TRANSITIONS[action]
        campaign = await self._campaigns.find(params.campaign)
        current = CampaignStatus(campaign.status)
        if current not in allowed:
            raise ValidationError(
                f"campaign {campaign.name!r} is {current.value}: cannot {action} it",
                code="bad_state")
        if target is CampaignStatus.ACTIVE:
            self._twilio.require()
            # refuse to start what the dialer could not read, or an opening that no longer
            # fits after a config change
            self._opening_for(settings_of(campaign))
        await self._campaigns.set_status(campaign.id, target)
        return CampaignTransition(campaign=campaign.name, status=target, previous=current)

    async def campaign_status(self, params: CampaignRef) -> CampaignStatusResult:
        campaign = await self._campaigns.find(params.campaign)
        blocks = DialBlockRepository(self._db)
        recent = await blocks.recent(campaign_id=campaign.id, limit=RECENT_BLOCKS)
        live = [tracked_state(c) for c in self._registry.tracked()
                if c.campaign_id == campaign.id]
        problem = self._twilio.problem
        if problem is None and self._line is not None:
            try:
                self._line.check_admission()
            except ReautodError as err:  # models missing, draining or full: no dials now
                problem = err.message
        return CampaignStatusResult.model_validate({
            **campaign_fields(campaign),
            "leads": await LeadRepository(self._db).status_counts(campaign.id),
            "blocked_by_rule": await blocks.counts_by_rule(campaign.id),
            "recent_blocks": [DialBlock(lead_id=b.lead_id, reason=b.reason, rule=b.rule_code,
                                        detail=b.detail, source=b.source, at=b.at,
                                        retry_at=b.retry_at) for b in recent],
            "live_calls": live,
            "dialing": problem is None,
            "problem": problem,
        })

    async def dial(self, params: DialParams) -> DialResult:
        return await self._manual.dial(params.number, params.campaign)

    async def dnc_add(self, params: DncParams) -> DncAddResult:
        campaign = await self._campaigns.find(params.campaign) if params.campaign else None
        region = settings_of(campaign).default_region if campaign else "US"
        entry = await self._dnc.add(
            normalize_phone(params.number, region), source=DncChannel.OPERATOR,
            now=self._clock(), reason=params.reason,
            campaign_id=str(campaign.id) if campaign else None,
            scope=DncScope.CAMPAIGN if campaign else DncScope.GLOBAL)
        return DncAddResult(number=entry.phone, scope=entry.scope,
                            campaign=campaign.name if campaign else None)

    async def dnc_check(self, params: DncCheckParams) -> DncCheckResult:
        campaign = await self._campaigns.find(params.campaign) if params.campaign else None
        region = settings_of(campaign).default_region if campaign else "US"
        phone = normalize_phone(params.number, region)
        result = await self._dnc.check(phone, str(campaign.id) if campaign else None)
        entry = result.entry
        if entry is None:
            return DncCheckResult(number=phone, suppressed=result.suppressed)
        return DncCheckResult(number=phone, suppressed=result.suppressed, scope=entry.scope,
                              source=entry.source, reason=entry.reason, since=entry.created_at)

    async def calls_history(self, params: HistoryParams) -> CallHistory:
        campaign = await self._campaigns.find(params.campaign) if params.campaign else None
        rows = await self._calls.recent(campaign_id=campaign.id if campaign else None,
                                        limit=params.limit)
        return CallHistory(calls=[StoredCall.model_validate(call_fields(r)) for r in rows])

    async def call_show(self, params: CallRef) -> CallDetail:
        call_id = call_uuid(params.call_id)
        row = await self._calls.get(call_id)
        timeline = await self._calls.timeline(call_id)
        turns = await self._calls.turns(call_id)
        live = self._registry.get(call_id)
        agent = await agent_record(self._db, row)  # a playbook call: stages, scores, booking
        cost = await CostRepository(self._db).for_call(call_id)
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

    async def call_transfer(self, params: CallRef) -> TransferResult:
        self._twilio.require()
        call = await self._twilio.transfers.transfer_call(params.call_id)
        if self._hangup is not None:
            self._hangup.end_session(call, "transferred")  # the stream ends, the call goes on
        return TransferResult(call_id=call.call_id, transferred_to=call.settings.transfer_number,
                              at=datetime.now(UTC))

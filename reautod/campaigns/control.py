"""Control-socket methods of campaigns and Twilio calls: campaigns.list, campaign.create|import|
start|pause|resume|stop|status, dial, dnc.add|check, calls.history, call.show, call.transfer.

(`calls.list` and `call.hangup` for live calls are the pipeline's.)
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import phonenumbers
from phonenumbers import timezone as number_timezone
from pydantic import BaseModel, ConfigDict, Field, model_validator

from reautod.campaigns.call_tracker import TrackedCall
from reautod.campaigns.dnc import DncScope, DncSource, normalize_phone
from reautod.campaigns.leads_import import MAX_FILE_BYTES, import_csv, state_of_number
from reautod.campaigns.settings import CampaignSettings, settings_of
from reautod.errors import NotFoundError, ReautodError, ValidationError
from reautod.methods import Method, NoParams
from reautod.observability.logging import mask_phone
from reautod.security.text import DisplayName
from reautod.store.call_observer import call_uuid
from reautod.store.enums import CallDirection, CampaignStatus
from reautod.store.repositories import (
    CallRow,
    CampaignRow,
    ContactInput,
    ContactRepository,
    DialBlockRepository,
    LeadRepository,
)

if TYPE_CHECKING:
    from reautod.campaigns.service import TelephonyPart

MAX_REPORTED_ISSUES = 1000
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


def campaign_wire(row: CampaignRow) -> dict[str, Any]:
    try:
        settings: dict[str, Any] | str = settings_of(row).model_dump(mode="json")
    except ValueError as err:
        settings = f"invalid: {err}"
    return {"id": str(row.id), "name": row.name, "status": row.status,
            "created_at": row.created_at.isoformat(), "settings": settings}


def call_wire(row: CallRow) -> dict[str, Any]:
    return {
        "call_id": str(row.id), "call_sid": row.call_sid,
        "campaign_id": str(row.campaign_id) if row.campaign_id else None,
        "lead_id": str(row.lead_id) if row.lead_id else None,
        "direction": row.direction, "transport": row.transport, "status": row.status,
        "amd_result": row.amd_result, "outcome": row.outcome, "disposition": row.disposition,
        "from": row.from_number, "to": row.to_number, "error_code": row.error_code,
        "created_at": row.created_at.isoformat(),
        "answered_at": row.answered_at.isoformat() if row.answered_at else None,
        "ended_at": row.ended_at.isoformat() if row.ended_at else None,
        "duration_ms": row.duration_ms,
    }


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


def campaign_methods(part: TelephonyPart) -> list[Method]:
    """The methods this part adds to the control socket."""
    db = part.db

    async def campaigns_list(_: NoParams) -> dict[str, Any]:
        rows = await part.campaigns.list()
        result = []
        for row in rows:
            item = campaign_wire(row)
            item["leads"] = await LeadRepository(db).status_counts(row.id)
            result.append(item)
        return {"campaigns": result}

    async def campaign_create(params: CreateParams) -> dict[str, Any]:
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
        return campaign_wire(row)

    async def campaign_import(params: ImportParams) -> dict[str, Any]:
        campaign = await part.campaigns.find(params.campaign)
        settings = settings_of(campaign)
        data = (params.csv_text.encode() if params.csv_text is not None
                else await _read_csv(params.csv_path or ""))
        leads = LeadRepository(db)
        existing = await leads.phones(campaign.id)
        report = await asyncio.to_thread(import_csv, data, default_region=settings.default_region,
                                         existing_phones=existing)
        # people who asked for erasure are never imported again (only counted)
        erased = (await part.erased.erased_among(r.phone for r in report.rows)
                  if part.erased is not None and report.rows else set())
        rows = [row for row in report.rows if row.phone not in erased]
        people = [
            ContactInput(phone_e164=row.phone, name=row.name, email=row.email,
                         timezone=row.timezone, source=f"import:{campaign.name}"[:200],
                         custom={**row.attributes, **({"state": row.state} if row.state else {})})
            for row in rows
        ]
        added = await leads.import_contacts(campaign.id, people, next_attempt_at=part.clock())
        issues = [{"line": i.line, "problem": i.problem.value, "reason": i.reason,
                   "imported": i.imported} for i in report.issues[:MAX_REPORTED_ISSUES]]
        summary = report.summary() | {"imported": len(rows),
                                      "erased_dropped": len(report.rows) - len(rows),
                                      "new_leads": added}
        return {"campaign": campaign.name, "summary": summary,
                "issues": issues, "issues_truncated": len(report.issues) > MAX_REPORTED_ISSUES}

    def transition(action: str) -> Method:
        allowed, target = TRANSITIONS[action]

        async def handler(params: CampaignRef) -> dict[str, Any]:
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
            return {"campaign": campaign.name, "status": target.value,
                    "previous": current.value}

        return Method(f"campaign.{action}", handler, CampaignRef, changes_state=True,
                      summary=f"{action} a campaign ({', '.join(sorted(allowed))} -> "
                              f"{target.value})")

    async def campaign_status(params: CampaignRef) -> dict[str, Any]:
        campaign = await part.campaigns.find(params.campaign)
        blocks = DialBlockRepository(db)
        recent = await blocks.recent(campaign_id=campaign.id, limit=RECENT_BLOCKS)
        live = [c.wire() for c in (part.tracker.tracked() if part.tracker else [])
                if c.campaign_id == campaign.id]
        problem = part.problem
        if problem is None and part.manager is not None:
            try:
                part.manager.check_admission()
            except ReautodError as err:  # models missing, draining or full: no dials now
                problem = err.message
        return {
            **campaign_wire(campaign),
            "leads": await LeadRepository(db).status_counts(campaign.id),
            "blocked_by_rule": await blocks.counts_by_rule(campaign.id),
            "recent_blocks": [{"lead_id": str(b.lead_id), "reason": b.reason,
                               "rule": b.rule_code, "detail": b.detail, "source": b.source,
                               "at": b.at.isoformat(),
                               "retry_at": b.retry_at.isoformat() if b.retry_at else None}
                              for b in recent],
            "live_calls": live,
            "dialing": problem is None,
            "problem": problem,
        }

    async def dial(params: DialParams) -> dict[str, Any]:
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
        suppressed = await part.dnc.check(phone, str(campaign.id) if campaign else None)
        if suppressed.suppressed and suppressed.entry is not None:
            part.metrics.dial_blocked("dnc")
            raise ValidationError(
                f"{mask_phone(phone)} is on the {suppressed.entry.scope.value} do-not-call list",
                code="dnc")
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
        if zone is None:
            raise ValidationError(
                f"cannot tell the time zone of {mask_phone(phone)}: import it as a lead with a "
                "timezone column, then dial it", code="no_timezone")
        now = part.clock()
        decision = part.dialer.windows.evaluate(zone, state, now, settings.window())
        if not decision.allowed and decision.blocking_rule is not None:
            part.metrics.dial_blocked("window")
            rule = decision.blocking_rule
            when = decision.next_allowed_at.isoformat() if decision.next_allowed_at else "never"
            raise ValidationError(
                f"outside the calling window: {rule.detail} ({rule.source}); next allowed {when}",
                code="outside_window")
        if contact is None:
            contact = await contacts.upsert(ContactInput(phone_e164=phone, timezone=zone,
                                                         source="reautoctl dial"))
        call = TrackedCall(uuid.uuid4(), phone, CallDirection.OUTBOUND,
                           campaign.id if campaign else None,
                           campaign.name if campaign else "manual", settings,
                           contact_id=contact.id)
        sid = await part.place_call(tracker, call, contact.name or "")
        return {"call_id": str(call.call_id), "call_sid": sid, "to": phone,
                "campaign": call.campaign_name}

    async def dnc_add(params: DncParams) -> dict[str, Any]:
        campaign = await part.campaigns.find(params.campaign) if params.campaign else None
        region = settings_of(campaign).default_region if campaign else "US"
        entry = await part.dnc.add(
            normalize_phone(params.number, region), source=DncSource.OPERATOR,
            now=part.clock(), reason=params.reason,
            campaign_id=str(campaign.id) if campaign else None,
            scope=DncScope.CAMPAIGN if campaign else DncScope.GLOBAL)
        return {"number": entry.phone, "scope": entry.scope.value,
                "campaign": campaign.name if campaign else None}

    async def dnc_check(params: DncCheckParams) -> dict[str, Any]:
        campaign = await part.campaigns.find(params.campaign) if params.campaign else None
        region = settings_of(campaign).default_region if campaign else "US"
        phone = normalize_phone(params.number, region)
        result = await part.dnc.check(phone, str(campaign.id) if campaign else None)
        entry = result.entry
        return {"number": phone, "suppressed": result.suppressed,
                "scope": entry.scope.value if entry else None,
                "source": entry.source.value if entry else None,
                "reason": entry.reason if entry else None,
                "since": entry.created_at.isoformat() if entry else None}

    async def calls_history(params: HistoryParams) -> dict[str, Any]:
        campaign = await part.campaigns.find(params.campaign) if params.campaign else None
        rows = await part.calls.recent(campaign_id=campaign.id if campaign else None,
                                       limit=params.limit)
        return {"calls": [call_wire(r) for r in rows]}

    async def call_show(params: CallRef) -> dict[str, Any]:
        call_id = call_uuid(params.call_id)
        row = await part.calls.get(call_id)
        timeline = await part.calls.timeline(call_id)
        turns = await part.calls.turns(call_id)
        live = part.tracker.get(call_id) if part.tracker else None
        return {
            **call_wire(row),
            "timeline": [{"status": e.status, "at": e.at.isoformat(), "source": e.source,
                          "sequence": e.sequence, "detail": e.detail} for e in timeline],
            "turns": [{"seq": t.seq, "speaker": t.speaker, "text": t.text,
                       "started_at": t.started_at.isoformat(), "confidence": t.stt_confidence,
                       "response_ms": t.response_ms, "interrupted": t.interrupted}
                      for t in turns],
            "live": live.wire() if live else None,
        }

    async def call_transfer(params: CallRef) -> dict[str, Any]:
        call = await part.require_twilio().transfer(params.call_id)
        return {"call_id": str(call.call_id), "transferred_to": call.settings.transfer_number,
                "at": datetime.now(UTC).isoformat()}

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
               summary="call one number now (DNC and calling window checked first)"),
        Method("dnc.add", dnc_add, DncParams, changes_state=True,
               summary="put a number on the do-not-call list (global, or one campaign's)"),
        Method("dnc.check", dnc_check, DncCheckParams,
               summary="is a number suppressed (globally or for a campaign), and why"),
        Method("calls.history", calls_history, HistoryParams, summary="recent calls, newest first"),
        Method("call.show", call_show, CallRef, summary="one call: status timeline and turns"),
        Method("call.transfer", call_transfer, CallRef, changes_state=True,
               summary="transfer a live call to the campaign's transfer number"),
    ]

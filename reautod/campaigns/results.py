"""Typed results of the campaign control methods, shared by the daemon, `reautoctl` and the TUI.

The daemon returns these models (the control protocol writes them as JSON); the clients parse the
same models back, so a key one side renames is a validation error in a test, not a "?" on screen.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from reautod.campaigns.dnc import DncChannel, DncScope
from reautod.campaigns.settings import CampaignSettings
from reautod.dialogue.call_record import AgentRecord
from reautod.store.enums import CampaignStatus, LeadStatus

# Leads the dialer is still working on; every other status is final for the campaign.
OPEN_LEAD_STATUSES = frozenset({LeadStatus.NEW, LeadStatus.RETRY, LeadStatus.CALLBACK,
                                LeadStatus.DIALING, LeadStatus.IN_CALL})


class _Result(BaseModel):
    model_config = ConfigDict(frozen=True)


class CampaignPacing(_Result):
    """How fast a campaign may dial: its own concurrency cap and the box's rate cap."""

    max_concurrent: int = Field(description="Live calls of this campaign at most")
    calls_per_minute: float = Field(description="Dial rate cap that applies (the box's Twilio "
                                                "calls-per-second, shared by every campaign)")


class CampaignInfo(_Result):
    """A campaign and its settings (`campaign.create`; the head of `campaign.status`)."""

    id: uuid.UUID
    name: str
    status: CampaignStatus
    created_at: datetime
    settings: CampaignSettings | None = Field(description="None when the stored settings no "
                                                          "longer validate (see settings_error)")
    settings_error: str | None = None


class CampaignSummary(CampaignInfo):
    """One row of `campaigns.list`."""

    leads: dict[LeadStatus, int] = Field(description="Lead counts by status")
    calls_live: int = Field(description="Twilio calls of this campaign not yet over")
    pacing: CampaignPacing | None = Field(description="None when the settings are invalid")
    spent_micros: int = Field(description="Cost ledger total for the campaign, micro-dollars")

    @property
    def leads_total(self) -> int:
        return sum(self.leads.values())

    @property
    def leads_done(self) -> int:
        """Leads in a final status (called to an end, DNC, exhausted, failed)."""
        return sum(n for status, n in self.leads.items() if status not in OPEN_LEAD_STATUSES)

    @property
    def paused(self) -> bool:
        return self.status is CampaignStatus.PAUSED


class CampaignList(_Result):
    """`campaigns.list`: every campaign, oldest first."""

    campaigns: list[CampaignSummary]


class CampaignTransition(_Result):
    """`campaign.start|pause|resume|stop`: the state the campaign left and the one it is in."""

    campaign: str = Field(description="The campaign's name")
    status: CampaignStatus
    previous: CampaignStatus


class DialBlock(_Result):
    """One dial the dialer's gate refused (`campaign.status`'s `recent_blocks`)."""

    lead_id: uuid.UUID
    reason: str = Field(description="The gate that refused: dnc, window, no_timezone, pacing, ...")
    rule: str = Field(description="The rule's code, e.g. a state's calling-hours rule")
    detail: str
    source: str = Field(description="Where the rule comes from (a statute, the campaign, ...)")
    at: datetime
    retry_at: datetime | None = Field(description="When the lead may be dialed again; None: never")


class TrackedCallState(_Result):
    """A Twilio call reautod placed or answered, as its status callbacks left it."""

    call_id: uuid.UUID
    call_sid: str | None
    campaign: str = Field(description="The campaign's name, or 'manual' / 'inbound'")
    direction: str = Field(description="outbound or inbound")
    status: str = Field(description="Twilio's call status (queued, ringing, in-progress, ...)")
    answered_by: str | None = Field(description="Twilio's answering-machine verdict, if any")
    opted_out: bool
    handed_off: str | None = Field(description="transfer or voicemail: the media stream ended, "
                                               "the call goes on")


class CampaignStatusResult(CampaignInfo):
    """`campaign.status`: a campaign's leads, the dials its rules refused and its live calls."""

    leads: dict[LeadStatus, int] = Field(description="Lead counts by status")
    blocked_by_rule: dict[str, int] = Field(description="Refused dials counted by rule code")
    recent_blocks: list[DialBlock] = Field(description="The latest refused dials, newest first")
    live_calls: list[TrackedCallState]
    dialing: bool = Field(description="The daemon can place this campaign's calls now")
    problem: str | None = Field(description="Why not, when dialing is false")


class DialResult(_Result):
    """`dial`: the call placed."""

    call_id: uuid.UUID
    call_sid: str = Field(description="Twilio's call SID")
    to: str = Field(description="The number dialed, E.164")
    campaign: str = Field(description="The campaign's name, or 'manual'")


class DncAddResult(_Result):
    """`dnc.add`: the entry made."""

    number: str = Field(description="E.164")
    scope: DncScope
    campaign: str | None = Field(description="The campaign's name for a campaign-scoped entry")


class DncCheckResult(_Result):
    """`dnc.check`: whether a number is suppressed, and by which entry."""

    number: str = Field(description="E.164")
    suppressed: bool
    scope: DncScope | None = None
    source: DncChannel | None = Field(None, description="How the entry came in")
    reason: str | None = None
    since: datetime | None = None


class StoredCall(_Result):
    """One call row from the store (`calls.history`; the head of `call.show`)."""

    # `from` is a Python keyword: the field is `from_number`, on the wire `from`
    model_config = ConfigDict(frozen=True, validate_by_name=True, validate_by_alias=True,
                              serialize_by_alias=True)

    call_id: uuid.UUID
    call_sid: str | None
    campaign_id: uuid.UUID | None
    lead_id: uuid.UUID | None
    direction: str
    transport: str = Field(description="twilio, simulated, webrtc, ...")
    status: str
    amd_result: str | None
    outcome: str | None
    disposition: str | None
    from_number: str | None = Field(alias="from")
    to: str | None
    error_code: str | None
    created_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    duration_ms: int | None


class CallHistory(_Result):
    """`calls.history`: stored calls, newest first."""

    calls: list[StoredCall]


class StatusChange(_Result):
    """One step of a call's status timeline."""

    status: str
    at: datetime
    source: str = Field(description="Who reported it (twilio, pipeline, reautod)")
    sequence: int | None = Field(description="Twilio's callback sequence number, if any")
    detail: dict[str, Any]


class StoredTurn(_Result):
    """One stored utterance of a call."""

    seq: int
    speaker: str
    text: str
    started_at: datetime
    confidence: float | None = Field(description="The transcript's STT confidence, 0..1")
    response_ms: int | None = Field(description="End of the caller's speech to the agent's "
                                                "first audio")
    interrupted: bool


class CallCostResult(_Result):
    """One call's cost ledger so far, micro-dollars."""

    total_micros: int
    by_service: dict[str, int]
    by_tier: dict[str, int]
    rows: int = Field(description="Ledger rows; 0 for a call nothing was charged for yet")


class CallDetail(StoredCall):
    """`call.show`: one stored call with its timeline, turns, cost and the agent's record."""

    timeline: list[StatusChange]
    turns: list[StoredTurn]
    live: TrackedCallState | None = Field(description="The Twilio call while it is tracked")
    cost: CallCostResult
    agent: AgentRecord | None = Field(description="A playbook call's stages, scores, booking")


class TransferResult(_Result):
    """`call.transfer`: the live call is being put through to its campaign's human."""

    call_id: uuid.UUID
    transferred_to: str | None = Field(description="The campaign's transfer number, E.164")
    at: datetime

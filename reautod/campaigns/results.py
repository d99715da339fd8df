"""Typed results of the campaign control methods, shared by the daemon, `reautoctl` and the TUI.

The daemon returns these models (the control protocol writes them as JSON); the clients parse the
same models back, so a key one side renames is a validation error in a test, not a "?" on screen.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from reautod.campaigns.settings import CampaignSettings
from reautod.store.enums import CampaignStatus, LeadStatus

# Leads the dialer is still working on; every other status is final for the campaign.
OPEN_LEAD_STATUSES = frozenset({LeadStatus.NEW, LeadStatus.RETRY, LeadStatus.DIALING,
                                LeadStatus.IN_CALL})


class _Result(BaseModel):
    model_config = ConfigDict(frozen=True)


class CampaignPacing(_Result):
    """How fast a campaign may dial: its own concurrency cap and the box's rate cap."""

    max_concurrent: int = Field(description="Live calls of this campaign at most")
    calls_per_minute: float = Field(description="Dial rate cap that applies (the box's Twilio "
                                                "calls-per-second, shared by every campaign)")


class CampaignSummary(_Result):
    """One row of `campaigns.list`."""

    id: uuid.UUID
    name: str
    status: CampaignStatus
    created_at: datetime
    settings: CampaignSettings | None = Field(description="None when the stored settings no "
                                                          "longer validate (see settings_error)")
    settings_error: str | None = None
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

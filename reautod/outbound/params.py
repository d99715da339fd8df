"""The parameters of the campaign and Twilio call control methods (`outbound.methods`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from reautod.campaigns.leads_import import MAX_FILE_BYTES
from reautod.campaigns.settings import CampaignSettings
from reautod.security.text import DisplayName
from reautod.store.enums import CampaignStatus

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

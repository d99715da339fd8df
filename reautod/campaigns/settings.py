"""A campaign's dialing and call-handling settings, validated, and where they live in the store.

The store's campaigns row has three JSON columns; the settings are split across them so each
column holds what its name says: `calling_window` (hours, days, 24-hour cap), `pacing`
(concurrency, retries) and `agent_config` (everything about handling the call: caller ID
overrides, the call opening, AMD policy, voicemail, opt-out key, transfer number, ring timeout,
time limit, recording). Unknown keys are refused, so a typo in `reautoctl campaign create` is an
error.
"""

from __future__ import annotations

from datetime import time
from typing import TYPE_CHECKING, Annotated, Any

import phonenumbers
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from reautod.campaigns.amd import MachinePolicy
from reautod.campaigns.dnc import DTMF_KEYS
from reautod.campaigns.windows import CampaignWindow
from reautod.config import AgentSettings
from reautod.pipeline.opening import DEFAULT_OPT_OUT_KEY, OpeningFields, render_opening
from reautod.telephony.stream import MAX_OPENING_CHARS

if TYPE_CHECKING:  # the store's rows: reautoctl's result models import this module
    from reautod.store.repositories import CampaignRow

DEFAULT_ANNOUNCEMENT = "This call may be recorded for quality purposes."
DEFAULT_VOICEMAIL = (
    "Hello, this is a courtesy call. Please call us back at your convenience. "
    "To stop these calls, call back and say stop. Goodbye."
)
_WINDOW_KEYS = ("window_start", "window_end", "window_days", "max_calls_per_24h")
_PACING_KEYS = ("max_concurrent", "daily_attempt_cap")


def _e164(value: str | None, what: str) -> str | None:
    if value is None:
        return None
    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException as err:
        raise ValueError(f"{what} must be an E.164 number like +15551234567") from err
    if not phonenumbers.is_possible_number(parsed):
        raise ValueError(f"{what} is not a possible phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


# A wall-clock time without an offset (the lead's local time): written "09:00:00". JSON Schema's
# "time" format (pydantic's default for answers) requires an offset, so the admin API's document
# would call our own answers invalid; answers declare the form they have.
# One with an offset ("09:00:00Z") is refused: it is no local time, and comparing it with one
# without an offset raised TypeError.
def _local(value: time) -> time:
    if value.tzinfo is not None:
        raise ValueError("a local time, without an offset (09:00:00)")
    return value


LocalTime = Annotated[time, AfterValidator(_local), WithJsonSchema(
    {"type": "string", "pattern": r"^\d{2}:\d{2}:\d{2}(\.\d+)?$"}, mode="serialization")]

class CampaignSettings(BaseModel):
    """Per-campaign settings; every field has the strict default the compliance notes ask for."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window_start: LocalTime = Field(time(9, 0),
                                    description="Campaign hours start, lead's local time")
    window_end: LocalTime = Field(time(20, 0),
                                  description="Campaign hours end, lead's local time")
    window_days: list[int] = Field([0, 1, 2, 3, 4], description="Days called, 0 = Monday")
    max_calls_per_24h: int | None = Field(None, ge=1, le=50)
    max_concurrent: int = Field(2, ge=1, le=500, description="Live calls of this campaign")
    daily_attempt_cap: int = Field(3, ge=1, le=50, description="Attempts per lead per 24 h")
    machine_policy: MachinePolicy = Field(MachinePolicy.HANG_UP, description="On an answering "
                                          "machine: hang_up, or voicemail after the beep")
    voicemail_message: str = Field(DEFAULT_VOICEMAIL, min_length=1, max_length=1500)
    opt_out_key: str = Field(DEFAULT_OPT_OUT_KEY, description="DTMF key that opts out (0-9, * "
                             "or #)")
    business_name: str | None = Field(None, min_length=1, max_length=200, description="Business "
                                      "the opening names; default agent.business_name")
    callback_number: str | None = Field(None, description="E.164 number for DNC requests the "
                                        "opening gives; default agent.callback_number, else "
                                        "the caller ID")
    opt_out_offer: bool = Field(True, description="Offer the automated opt-out right after "
                                "naming the business")
    opening: str | None = Field(None, min_length=1, max_length=MAX_OPENING_CHARS,
                                description="Opening template; default agent.greeting")
    transfer_number: str | None = Field(None, description="E.164 number of the human to "
                                        "transfer to")
    caller_id: str | None = Field(None, description="E.164 caller ID; default twilio.from_number")
    ring_timeout_s: int = Field(30, ge=5, le=600)
    time_limit_s: int = Field(900, ge=30, le=14_400)
    record: bool = Field(False, description="Record through Twilio, after the announcement")
    recording_announcement: str = Field(DEFAULT_ANNOUNCEMENT, min_length=1, max_length=1500)
    default_region: str = Field("US", min_length=2, max_length=2,
                                description="Region for numbers written without +country")
    playbook: str | None = Field(None, pattern=r"^[a-z][a-z0-9_-]{0,47}$",
                                 description="Playbook the agent runs on this campaign's calls "
                                 "(reautoctl playbook list); none: the configured prompt")
    inbound_playbook: str | None = Field(None, pattern=r"^[a-z][a-z0-9_-]{0,47}$",
                                         description="Playbook that answers people who call "
                                         "this campaign's number back (or, as twilio."
                                         "inbound_campaign, anyone); none: playbook")

    @field_validator("window_days")
    @classmethod
    def _days(cls, days: list[int]) -> list[int]:
        if not days or any(not 0 <= d <= 6 for d in days):
            raise ValueError("window_days must be a non-empty list of 0..6 (0 = Monday)")
        return sorted(set(days))

    @field_validator("opt_out_key")
    @classmethod
    def _key(cls, key: str) -> str:
        if key not in DTMF_KEYS:
            raise ValueError("opt_out_key must be one of 0-9, * or #")
        return key

    @field_validator("transfer_number")
    @classmethod
    def _transfer(cls, value: str | None) -> str | None:
        return _e164(value, "transfer_number")

    @field_validator("caller_id")
    @classmethod
    def _caller(cls, value: str | None) -> str | None:
        return _e164(value, "caller_id")

    @field_validator("callback_number")
    @classmethod
    def _callback(cls, value: str | None) -> str | None:
        return _e164(value, "callback_number")

    @field_validator("default_region")
    @classmethod
    def _region(cls, value: str) -> str:
        region = value.upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown region {value!r} (use e.g. US, GB)")
        return region

    @model_validator(mode="after")
    def _window_order(self) -> CampaignSettings:
        if self.window_end <= self.window_start:
            raise ValueError("window_end must be after window_start")
        return self

    # -- what the other parts need -------------------------------------------------------------

    def window(self) -> CampaignWindow:
        return CampaignWindow(self.window_start, self.window_end, frozenset(self.window_days),
                              self.max_calls_per_24h)

    def opening_fields(self, agent: AgentSettings, default_caller_id: str | None) -> OpeningFields:
        """Who this campaign's calls name, its opt-out offer and the number for DNC requests
        (the campaign's, else agent.callback_number, else the caller ID)."""
        return OpeningFields(
            business_name=self.business_name or agent.business_name,
            agent_name=agent.agent_name,
            opt_out_key=self.opt_out_key if self.opt_out_offer else None,
            callback_number=(self.callback_number or agent.callback_number or self.caller_id
                             or default_caller_id),
        )

    def render_opening(self, agent: AgentSettings, default_caller_id: str | None) -> str:
        """What the agent says first on this campaign's calls, `{lead_name}` left for the call."""
        return render_opening(self.opening or agent.greeting,
                              self.opening_fields(agent, default_caller_id))

    def render_inbound_opening(self, agent: AgentSettings, default_caller_id: str | None) -> str:
        """What a caller who rang this campaign's number hears first (agent.inbound_greeting)."""
        return render_opening(agent.inbound_greeting, self.opening_fields(agent, default_caller_id))

    def playbook_for(self, direction: str) -> str | None:
        """The playbook of this campaign's calls in `direction` ("outbound" / "inbound")."""
        if direction == "inbound":
            return self.inbound_playbook or self.playbook
        return self.playbook

    # -- storage ----------------------------------------------------------------------------------

    def to_columns(self) -> dict[str, dict[str, Any]]:
        """{"calling_window": ..., "pacing": ..., "agent_config": ...} for the campaigns row."""
        data = self.model_dump(mode="json")
        window = {k: data.pop(k) for k in _WINDOW_KEYS}
        pacing = {k: data.pop(k) for k in _PACING_KEYS}
        return {"calling_window": window, "pacing": pacing, "agent_config": {"telephony": data}}

    @classmethod
    def from_columns(cls, calling_window: dict[str, Any], pacing: dict[str, Any],
                     agent_config: dict[str, Any]) -> CampaignSettings:
        telephony = agent_config.get("telephony") or {}
        return cls.model_validate({**telephony, **calling_window, **pacing})


def settings_of(campaign: CampaignRow) -> CampaignSettings:
    """A campaign's settings from its row (ValueError when the stored JSON is invalid)."""
    return CampaignSettings.from_columns(campaign.calling_window, campaign.pacing,
                                         campaign.agent_config)

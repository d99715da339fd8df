"""What a WebRTC caller and the daemon say to start a call: the offer and its answer, the same
on the page's `POST /call/offer` and the control method `call.talk`, and the campaigns the page
offers to choose from. A leaf: the caller's side (`reautoctl talk`) imports it without the
daemon's pipeline."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from reautod.security.text import DisplayName

MAX_SDP_CHARS = 64 * 1024  # a browser's audio offer is 3-6 KB

Transport = Literal["webrtc", "sounddevice"]  # the call's record: the browser page, or talk


class Offer(BaseModel):
    """A caller's request for a call: its whole SDP offer (candidates gathered) and who it is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sdp: str = Field(min_length=1, max_length=MAX_SDP_CHARS)
    type: Literal["offer"] = "offer"
    lead_name: str = Field("", max_length=80,
                           description="the name the agent greets the caller by")
    # checked and normalised as `campaign.create` stores names, so the same name matches
    campaign: DisplayName | None = Field(
        None, description="the campaign whose playbook answers (its name or id); none: the "
        "configured agent")

    @field_validator("sdp")
    @classmethod
    def _audio_sdp(cls, sdp: str) -> str:
        if not sdp.startswith("v=0"):
            raise ValueError("not SDP (it must start with v=0)")
        if "\nm=audio " not in sdp:
            raise ValueError("no audio (m=audio): the call needs the microphone")
        return sdp


class Answer(BaseModel):
    """The daemon's SDP answer and the id of the call it started."""

    model_config = ConfigDict(frozen=True)

    sdp: str
    type: Literal["answer"] = "answer"
    call_id: str


class CampaignChoice(BaseModel):
    """A campaign a caller may choose, and the playbook that would answer (None: the configured
    agent)."""

    model_config = ConfigDict(frozen=True)

    name: str
    playbook: str | None


class CampaignChoices(BaseModel):
    """The call page's campaign list (`GET /call/campaigns`)."""

    model_config = ConfigDict(frozen=True)

    campaigns: list[CampaignChoice]


# What the daemon and the caller say on the call's data channel, one model per `type`.


class _ChannelMessage(BaseModel):
    model_config = ConfigDict(frozen=True)


class TurnMessage(_ChannelMessage):
    """A line of the transcript, as the daemon recorded it."""

    type: Literal["turn"] = "turn"
    speaker: Literal["caller", "agent"]
    text: str
    interrupted: bool = False


class StateMessage(_ChannelMessage):
    """The call's state changed (a `call.state` value)."""

    type: Literal["state"] = "state"
    state: str


class BargeInMessage(_ChannelMessage):
    """The caller cut the agent off."""

    type: Literal["barge_in"] = "barge_in"


class ClosedMessage(_ChannelMessage):
    """The daemon ended the call, and why (the last message)."""

    type: Literal["closed"] = "closed"
    reason: str = Field(max_length=120)


class HangupMessage(_ChannelMessage):
    """The caller hangs up (from the page or `reautoctl talk`)."""

    type: Literal["hangup"] = "hangup"


ChannelMessage = Annotated[TurnMessage | StateMessage | BargeInMessage | ClosedMessage
                           | HangupMessage, Field(discriminator="type")]
CHANNEL_MESSAGE: TypeAdapter[ChannelMessage] = TypeAdapter(ChannelMessage)

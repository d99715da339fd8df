"""What a WebRTC caller and the daemon say to start a call: the offer and its answer, the same
on the page's `POST /call/offer` and the control method `call.talk`. A leaf: the caller's side
(`reautoctl talk`) imports it without the daemon's pipeline."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_SDP_CHARS = 64 * 1024  # a browser's audio offer is 3-6 KB

Transport = Literal["webrtc", "sounddevice"]  # the call's record: the browser page, or talk


class Offer(BaseModel):
    """A caller's request for a call: its whole SDP offer (candidates gathered) and who it is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sdp: str = Field(min_length=1, max_length=MAX_SDP_CHARS)
    type: Literal["offer"] = "offer"
    lead_name: str = Field("", max_length=80,
                           description="the name the agent greets the caller by")

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

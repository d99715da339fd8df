"""Twilio's media stream contract, in one place: the WebSocket path, the custom parameters a
`<Stream>` carries to the media endpoint's `start` event, and the codes the socket closes with.

`StreamParameters` is written by the TwiML builder (dialed and inbound calls) and by the call
simulator (`call.simulate`), and read back by the media endpoint (`api/media.py`): both sides use
this model, so a parameter one side renames fails validation instead of going missing. Twilio
stream URLs take no query string, so this is the only way the call's identity reaches the socket.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum

from pydantic import BaseModel, ConfigDict, Field

MEDIA_PATH = "/twilio/media"
MAX_PARAMETER_CHARS = 500  # name + value, per Twilio
OPENING_PARAMETER = "opening"
MAX_OPENING_CHARS = MAX_PARAMETER_CHARS - len(OPENING_PARAMETER) - 1
CALL_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"


class CloseCode(IntEnum):
    """The codes (RFC 6455) the media WebSocket closes with; a reason text says more."""

    NORMAL = 1000  # the call is over (hang-up, Twilio's stop, the caller gone)
    POLICY = 1008  # bad signature, malformed or missing start, too many malformed messages
    TOO_BIG = 1009  # a message over the serializer's MAX_MESSAGE_BYTES
    TRY_LATER = 1013  # draining, engines missing, at capacity


class Direction(StrEnum):
    OUTBOUND = "outbound"
    INBOUND = "inbound"


class StreamParameters(BaseModel):
    """What the media WebSocket handler needs to find the call; arrives in `customParameters`.

    The limits are the reader's; Twilio's own (500 characters per name + value, 4,000 per TwiML
    document) are checked where the TwiML is built.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    call_id: str | None = Field(None, pattern=CALL_ID_PATTERN,
                                description="Our call id (a new one when absent)")
    campaign: str | None = Field(None, max_length=200)
    lead_name: str = Field("", max_length=200)
    direction: Direction = Direction.OUTBOUND
    goal: str | None = Field(None, max_length=500)
    opening: str | None = Field(None, max_length=MAX_PARAMETER_CHARS,
                                description="The campaign's rendered opening (pipeline.opening)")
    resume: bool = Field(False, description="The call goes on from its checkpoint (a new "
                         "stream after the last one died: reautod.recovery)")

    def pairs(self) -> list[tuple[str, str]]:
        """(name, value) in a fixed order, absent values left out."""
        values = (("call_id", self.call_id), ("campaign", self.campaign),
                  ("lead_name", self.lead_name), ("direction", self.direction.value),
                  ("goal", self.goal), (OPENING_PARAMETER, self.opening),
                  ("resume", "1" if self.resume else None))
        return [(name, value) for name, value in values if value is not None]

    def custom_parameters(self) -> dict[str, str]:
        """As the `start` event's `customParameters` carries them."""
        return dict(self.pairs())

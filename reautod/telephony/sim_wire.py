"""The Twilio side of the Media Streams wire format (``shared/twilio.md``), for the simulator.

`TwilioWire` writes what Twilio sends (one sequence counter over every event of a stream);
`parse_agent_message` reads what the agent sends into a typed message, never raising.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reautod.telephony.audio import TELEPHONY_RATE


class TwilioWire:
    """Builds Twilio-to-server messages for one stream. Media frames skip `json.dumps`: hot path."""

    def __init__(
        self,
        *,
        account_sid: str,
        call_sid: str,
        stream_sid: str,
        omit_optional_fields: bool = False,
        timestamp_start_ms: int = 0,
    ) -> None:
        self.account_sid = account_sid
        self.call_sid = call_sid
        self.stream_sid = stream_sid
        self._omit = omit_optional_fields
        self._timestamp_start_ms = timestamp_start_ms
        self._sid_json = json.dumps(stream_sid)
        self._seq = 0

    def _event(self, event: str, **body: Any) -> str:
        message: dict[str, Any] = {"event": event}
        if not self._omit:
            self._seq += 1
            message["sequenceNumber"] = str(self._seq)
        message["streamSid"] = self.stream_sid
        message.update(body)
        return json.dumps(message)

    @staticmethod
    def connected() -> str:
        return json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})

    def start(self, tracks: tuple[str, ...], custom_parameters: Mapping[str, str]) -> str:
        return self._event("start", start={
            "accountSid": self.account_sid,
            "streamSid": self.stream_sid,
            "callSid": self.call_sid,
            "tracks": list(tracks),
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": TELEPHONY_RATE,
                            "channels": 1},
            "customParameters": dict(custom_parameters),
        })

    def media(self, payload_b64: str, frame_index: int) -> str:
        """Frame `frame_index` (0-based, 20 ms each) of the inbound track."""
        if self._omit:
            return (f'{{"event":"media","streamSid":{self._sid_json},'
                    f'"media":{{"payload":"{payload_b64}"}}}}')
        self._seq += 1
        stamp = self._timestamp_start_ms + frame_index * 20
        return (f'{{"event":"media","sequenceNumber":"{self._seq}",'
                f'"streamSid":{self._sid_json},"media":{{"track":"inbound",'
                f'"chunk":"{frame_index + 1}","timestamp":"{stamp}","payload":"{payload_b64}"}}}}')

    def dtmf(self, digit: str) -> str:
        body = {"digit": digit} if self._omit else {"track": "inbound_track", "digit": digit}
        return self._event("dtmf", dtmf=body)

    def mark(self, name: str) -> str:
        return self._event("mark", mark={"name": name})

    def stop(self) -> str:
        return self._event("stop", stop={"accountSid": self.account_sid, "callSid": self.call_sid})


@dataclass(frozen=True)
class AgentMedia:
    audio: bytes  # mu-law


@dataclass(frozen=True)
class AgentMark:
    name: str


@dataclass(frozen=True)
class AgentClear:
    pass


@dataclass(frozen=True)
class UnknownEvent:
    """Well-formed JSON with an event Twilio does not take from a server."""

    event: str


@dataclass(frozen=True)
class Malformed:
    reason: str


AgentMessage = AgentMedia | AgentMark | AgentClear | UnknownEvent | Malformed


def parse_agent_message(raw: str | bytes, stream_sid: str) -> AgentMessage:
    """Read one message from the server (the agent); anything unusable becomes `Malformed`."""
    if isinstance(raw, bytes):
        return Malformed("binary frame")
    try:
        data = json.loads(raw)
    except ValueError:
        return Malformed("not JSON")
    if not isinstance(data, dict):
        return Malformed("not a JSON object")
    event = data.get("event")
    if not isinstance(event, str):
        return Malformed("no event")
    if event not in ("media", "mark", "clear"):
        return UnknownEvent(event)
    if data.get("streamSid") != stream_sid:
        return Malformed(f"{event} with a wrong or missing streamSid")
    if event == "clear":
        return AgentClear()
    body = data.get(event)
    if event == "mark":
        name = body.get("name") if isinstance(body, dict) else None
        return AgentMark(name) if isinstance(name, str) else Malformed("mark without a name")
    payload = body.get("payload") if isinstance(body, dict) else None
    if not isinstance(payload, str):
        return Malformed("media without a payload")
    try:
        audio = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return Malformed("media payload is not base64")
    return AgentMedia(audio) if audio else Malformed("empty media payload")

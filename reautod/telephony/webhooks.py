"""Twilio's webhooks: /twilio/voice, /twilio/status, /twilio/amd, /twilio/recording
(and /twilio/stream-ended, served by reautod.recovery with `verified_form`).

Every request is checked in the same order: body size, signature (403, nothing else happens),
form fields (400 naming the bad field), then the handler. Handlers must return at once: slow work
(database writes, hang-ups, voicemail redirects) belongs to a background task the handler owns,
because Twilio gives up after 15 s and then calls the fallback URL. All handlers are idempotent;
see reautod.telephony.signatures for why replays are accepted and counted rather than refused.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Protocol, TypeVar
from urllib.parse import parse_qsl

import phonenumbers
from fastapi import APIRouter, Request, WebSocket
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from reautod.errors import ReautodError
from reautod.observability.logging import mask_phone
from reautod.telephony.signatures import SignatureResult, TwilioSignatureValidator, header_value
from reautod.telephony.state_machine import StatusEvent
from reautod.telephony.stream import MEDIA_PATH, Direction, StreamParameters
from reautod.telephony.twiml import (
    empty_twiml,
    hangup_twiml,
    stream_twiml,
)

log = logging.getLogger(__name__)

VOICE_PATH = "/twilio/voice"
STATUS_PATH = "/twilio/status"
AMD_PATH = "/twilio/amd"
RECORDING_PATH = "/twilio/recording"
# `<Connect action>`: Twilio asks it when a call's media stream ends (reautod.recovery answers)
STREAM_ENDED_PATH = "/twilio/stream-ended"
MAX_BODY_BYTES = 64 * 1024
MAX_LEAD_NAME_CHARS = 200
XML = "application/xml"


class _TwilioForm(BaseModel):
    # Twilio adds fields over time: extra ones are ignored, required ones are strict.
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class VoiceRequest(_TwilioForm):
    """An incoming call (a lead calling the campaign number back)."""

    call_sid: str = Field(alias="CallSid", min_length=1)
    from_: str = Field(alias="From")
    to: str = Field(alias="To")
    account_sid: str | None = Field(None, alias="AccountSid")
    call_status: str | None = Field(None, alias="CallStatus")
    direction: str | None = Field(None, alias="Direction")


class StatusCallback(_TwilioForm):
    """A call status callback; `call_status` is kept as sent (unknown values are the state
    machine's to ignore)."""

    call_sid: str = Field(alias="CallSid", min_length=1)
    call_status: str = Field(alias="CallStatus")
    sequence_number: int | None = Field(None, alias="SequenceNumber", ge=0)
    timestamp: str | None = Field(None, alias="Timestamp")
    callback_source: str | None = Field(None, alias="CallbackSource")
    call_duration: int | None = Field(None, alias="CallDuration", ge=0)
    sip_response_code: int | None = Field(None, alias="SipResponseCode")
    answered_by: str | None = Field(None, alias="AnsweredBy")
    account_sid: str | None = Field(None, alias="AccountSid")

    def event(self) -> StatusEvent:
        """The state machine's view of this callback."""
        return StatusEvent(self.call_status, self.sequence_number, self.at(), "twilio")

    def at(self) -> datetime | None:
        """Twilio's RFC 2822 Timestamp, or None when absent or unparseable."""
        if not self.timestamp:
            return None
        try:
            return parsedate_to_datetime(self.timestamp)
        except (TypeError, ValueError):
            return None


class AmdCallback(_TwilioForm):
    """The async answering-machine-detection result."""

    call_sid: str = Field(alias="CallSid", min_length=1)
    answered_by: str = Field(alias="AnsweredBy", min_length=1)
    machine_detection_duration_ms: int | None = Field(None, alias="MachineDetectionDuration", ge=0)

    @property
    def machine(self) -> bool:
        return self.answered_by.startswith("machine") or self.answered_by == "fax"

    @property
    def greeting_ended(self) -> bool:
        """True once a machine's greeting is over (the moment to leave a voicemail)."""
        return self.answered_by.startswith("machine_end")


class RecordingEvent(_TwilioForm):
    """A recording status callback."""

    call_sid: str = Field(alias="CallSid", min_length=1)
    recording_sid: str = Field(alias="RecordingSid", min_length=1)
    recording_status: str = Field(alias="RecordingStatus", min_length=1)
    recording_url: str | None = Field(None, alias="RecordingUrl")
    recording_duration_s: int | None = Field(None, alias="RecordingDuration", ge=-1)
    recording_channels: int | None = Field(None, alias="RecordingChannels", ge=1, le=2)


@dataclass(frozen=True)
class LeadMatch:
    """A lead found by caller ID."""

    lead_id: str
    name: str
    campaign: str


@dataclass(frozen=True)
class InboundAnswer:
    """How to answer an inbound call: the stream parameters and an optional announcement.
    `opening`: what the agent says as soon as the stream starts (rendered, `{lead_name}` left)."""

    call_id: str
    campaign: str
    lead_name: str = ""
    announcement: str | None = None
    opening: str | None = None


class WebhookHandler(Protocol):
    """What the webhooks need from the rest of the daemon; each method must return at once."""

    async def lookup_lead_by_phone(self, e164: str) -> LeadMatch | None: ...

    async def on_inbound(self, call: VoiceRequest, lead: LeadMatch | None) -> InboundAnswer | None:
        """Register an inbound call (`lead` None: a caller who is no lead yet); None declines
        it (the caller hears the declined message, then a hang-up)."""
        ...

    async def on_status(self, event: StatusCallback) -> None: ...

    async def on_amd(self, event: AmdCallback) -> None: ...

    async def on_recording(self, event: RecordingEvent) -> None: ...


class InboundGate(Protocol):
    """Whether the box takes another call now (reautod.resilience.inbound); must return at once."""

    def shed_inbound(self) -> str | None:
        """None: take it; else why it is turned away (the caller hears the busy message)."""
        ...


@dataclass(frozen=True)
class BusyMessage:
    """What a caller turned away by load shedding hears: `audio_url` played, else `text` said."""

    text: str
    audio_url: str | None = None


_Form = TypeVar("_Form", bound=BaseModel)


class Rejected(Exception):
    """A webhook request refused before its handler: `response` says why (403, 400, 413)."""

    def __init__(self, response: Response) -> None:
        self.response = response


_Rejected = Rejected


async def verified_form(validator: TwilioSignatureValidator, request: Request, path: str,
                        model: type[_Form]) -> _Form:
    """The request's form as `model`, after the body size and the signature (module docstring);
    raises Rejected."""
    body = await _read_limited(request)
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        pairs = None
    result = validator.check_form(
        path, request.url.query, pairs or [], header_value(request.headers)
    )
    if not result.accepted:
        raise Rejected(_error(403, "bad_signature", f"Twilio signature {result.value}"))
    if pairs is None:
        raise Rejected(_error(400, "invalid_input", "body is not a UTF-8 form"))
    try:
        return model.model_validate(dict(pairs))
    except PydanticValidationError as err:
        raise Rejected(_error(400, "invalid_input", _describe(err))) from None


def twilio_router(
    handler: WebhookHandler,
    validator: TwilioSignatureValidator,
    *,
    default_region: str = "US",
    voice: str | None = None,
    declined_message: str | None = None,
    gate: InboundGate | None = None,
    busy: BusyMessage = BusyMessage("All of our lines are busy. Please call again later."),
) -> APIRouter:
    """The FastAPI router serving Twilio's webhooks; include it in the app unprefixed."""
    router = APIRouter()
    stream_url = validator.websocket_url(MEDIA_PATH)
    action_url = validator.url_for(STREAM_ENDED_PATH)

    async def verified(request: Request, path: str, model: type[_Form]) -> _Form:
        return await verified_form(validator, request, path, model)

    @router.post(VOICE_PATH)
    async def voice_webhook(request: Request) -> Response:
        try:
            call = await verified(request, VOICE_PATH, VoiceRequest)
        except _Rejected as rejected:
            return rejected.response
        if gate is not None and (reason := gate.shed_inbound()) is not None:
            log.info("inbound call %s turned away: %s", call.call_sid, reason)
            return Response(hangup_twiml(busy.text, voice=voice, audio_url=busy.audio_url),
                            media_type=XML)
        caller = to_e164(call.from_, default_region)
        try:
            lead = await handler.lookup_lead_by_phone(caller) if caller else None
            log.info("inbound call %s from %s (lead %s)", call.call_sid, mask_phone(caller),
                     lead.lead_id if lead else "unknown")
            answer = await handler.on_inbound(call, lead)
            if answer is None:
                return Response(hangup_twiml(declined_message, voice=voice), media_type=XML)
            # The name is only for the agent's greeting: shorten it rather than fail the call.
            name = answer.lead_name[:MAX_LEAD_NAME_CHARS]
            params = StreamParameters(call_id=answer.call_id, campaign=answer.campaign[:200],
                                      lead_name=name, direction=Direction.INBOUND,
                                      opening=answer.opening)
            twiml = stream_twiml(stream_url, params, announcement=answer.announcement,
                                 voice=voice, action_url=action_url)
        except ReautodError as err:
            log.warning("inbound call %s not answered: %s (%s)", call.call_sid, err.message,
                        err.code)
            return _error(503, err.code, err.message)
        return Response(twiml, media_type=XML)

    @router.post(STATUS_PATH)
    async def status_webhook(request: Request) -> Response:
        try:
            event = await verified(request, STATUS_PATH, StatusCallback)
        except _Rejected as rejected:
            return rejected.response
        return await _deliver(handler.on_status(event))

    @router.post(AMD_PATH)
    async def amd_webhook(request: Request) -> Response:
        try:
            result = await verified(request, AMD_PATH, AmdCallback)
        except _Rejected as rejected:
            return rejected.response
        return await _deliver(handler.on_amd(result))

    @router.post(RECORDING_PATH)
    async def recording_webhook(request: Request) -> Response:
        try:
            event = await verified(request, RECORDING_PATH, RecordingEvent)
        except _Rejected as rejected:
            return rejected.response
        return await _deliver(handler.on_recording(event))

    return router


async def check_media_websocket(
    websocket: WebSocket, validator: TwilioSignatureValidator, path: str = MEDIA_PATH
) -> SignatureResult:
    """Check the media WebSocket upgrade before accepting it.

    The caller closes the socket unaccepted when the result is not `accepted` (Starlette then
    answers the upgrade with 403). The URL is the one our TwiML names, not what the request says.
    """
    return validator.check_websocket(validator.websocket_url(path), header_value(websocket.headers))


def to_e164(number: str | None, default_region: str = "US") -> str | None:
    """Caller ID as E.164, or None for anonymous, client:..., or unparseable values."""
    if not number:
        return None
    try:
        parsed = phonenumbers.parse(number, default_region)
    except phonenumbers.NumberParseException:
        return None
    # "Possible", not "valid": a new area code missing from phonenumbers' metadata must still
    # find its lead; a number that matches nobody simply finds no lead.
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


async def _read_limited(request: Request) -> bytes:
    """The body, refused (413) past MAX_BODY_BYTES without reading it all into memory."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        raise _Rejected(_error(413, "body_too_large", f"body over {MAX_BODY_BYTES} bytes"))
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _Rejected(_error(413, "body_too_large", f"body over {MAX_BODY_BYTES} bytes"))
        chunks.append(chunk)
    return b"".join(chunks)


async def _deliver(work: Awaitable[None]) -> Response:
    try:
        await work
    except ReautodError as err:
        log.warning("webhook handler failed: %s (%s)", err.message, err.code)
        return _error(503, err.code, err.message)
    return Response(empty_twiml(), media_type=XML)


def _error(status: int, code: str, message: str) -> Response:
    return JSONResponse({"error": code, "message": message}, status_code=status)


def _describe(err: PydanticValidationError) -> str:
    problems = []
    for item in err.errors():
        field = ".".join(str(part) for part in item["loc"]) or "<form>"
        problems.append(f"{field}: {'missing' if item['type'] == 'missing' else item['msg']}")
    return "; ".join(problems)

"""TwiML documents reautod sends: the media stream, a transfer to a human, a voicemail message
(played from our own TTS's clip when there is one).

Built with twilio.twiml.voice_response so escaping is Twilio's; every document is checked against
Twilio's 4,000-character limit for inline `twiml=` and every stream parameter against the 500-char
name+value limit, with a clear error instead of a call that fails at Twilio.

Recording consent: the announcement is a `<Say>` that plays before `<Connect>`; TwiML verbs run in
order, so when the media stream starts the announcement has finished. Recording is then started
either by REST (`TwilioCalls.start_recording`, on the stream's start event) or, with
`record_after_announcement`, by a `<Start><Recording>` placed after the `<Say>`. Nothing records
before the announcement; `record=True` at call creation is never used.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import phonenumbers
from twilio.twiml.voice_response import Connect, Dial, Start, VoiceResponse

from reautod.errors import ValidationError
from reautod.telephony.stream import MAX_PARAMETER_CHARS, StreamParameters

MAX_TWIML_CHARS = 4_000
MAX_SAY_CHARS = 1_500


class TwimlError(ValidationError):
    code = "twiml_invalid"


@dataclass(frozen=True)
class RecordingOptions:
    """How a recording started from TwiML reports back."""

    status_callback_url: str
    channels: str = "dual"


def stream_twiml(
    stream_url: str,
    parameters: StreamParameters,
    *,
    announcement: str | None = None,
    voice: str | None = None,
    record_after_announcement: RecordingOptions | None = None,
    action_url: str | None = None,
) -> str:
    """`<Say>announcement</Say>` (optional), then `<Connect><Stream url=...>` with parameters."""
    _check_ws_url(stream_url)
    response = VoiceResponse()
    if announcement is not None:
        response.say(_say_text(announcement), voice=voice)
    if record_after_announcement is not None:
        if announcement is None:
            raise TwimlError("recording from TwiML needs the consent announcement before it")
        start = Start()
        start.recording(
            recording_status_callback=_check_http_url(
                record_after_announcement.status_callback_url, "recording status callback"
            ),
            channels=record_after_announcement.channels,
        )
        response.append(start)
    connect = Connect(action=_check_http_url(action_url, "connect action") if action_url else None)
    stream = connect.stream(url=stream_url)
    for name, value in parameters.pairs():
        _check_parameter(name, value)
        stream.parameter(name=name, value=value)
    response.append(connect)
    return _finish(response)


def transfer_twiml(
    number: str,
    *,
    caller_id: str,
    timeout_s: int = 30,
    action_url: str | None = None,
    announcement: str | None = None,
    voice: str | None = None,
) -> str:
    """`<Say>` (optional), then `<Dial callerId timeout action><Number>` to a human."""
    if not 5 <= timeout_s <= 600:
        raise TwimlError(f"transfer timeout must be 5..600 seconds, got {timeout_s}")
    response = VoiceResponse()
    if announcement is not None:
        response.say(_say_text(announcement), voice=voice)
    dial = Dial(
        caller_id=_check_e164(caller_id, "caller ID"),
        timeout=timeout_s,
        action=_check_http_url(action_url, "dial action") if action_url else None,
    )
    dial.number(_check_e164(number, "transfer number"))
    response.append(dial)
    return _finish(response)


def voicemail_twiml(message: str, *, audio_url: str | None = None, voice: str | None = None,
                    pause_s: int = 1) -> str:
    """A voicemail message after the machine's greeting, then hang up: `<Play>` of `audio_url`
    (the message in the agent's own voice, telephony.clips), else `<Say>` of `message`."""
    if not 0 <= pause_s <= 10:
        raise TwimlError(f"voicemail pause must be 0..10 seconds, got {pause_s}")
    text = _say_text(message)
    response = VoiceResponse()
    if pause_s:
        response.pause(length=pause_s)
    if audio_url is not None:
        response.play(_check_http_url(audio_url, "voicemail audio"))
    else:
        response.say(text, voice=voice)
    response.hangup()
    return _finish(response)


def hangup_twiml(message: str | None = None, *, voice: str | None = None,
                 audio_url: str | None = None) -> str:
    """Optionally say something (`<Play>` of `audio_url`, else `<Say>` of `message`), then hang
    up (used to end an inbound call we do not take)."""
    response = VoiceResponse()
    if audio_url is not None:
        response.play(_check_http_url(audio_url, "busy message audio"))
    elif message:
        response.say(_say_text(message), voice=voice)
    response.hangup()
    return _finish(response)


def empty_twiml() -> str:
    """`<Response/>`: the acknowledgement for callbacks that need no instructions."""
    return _finish(VoiceResponse())


def _finish(response: VoiceResponse) -> str:
    text = str(response.to_xml())
    if len(text) > MAX_TWIML_CHARS:
        raise TwimlError(
            f"TwiML is {len(text)} characters; Twilio accepts at most {MAX_TWIML_CHARS} inline "
            "(shorten the announcement or parameters)"
        )
    return text


def _check_parameter(name: str, value: str) -> None:
    if not name:
        raise TwimlError("stream parameter name is empty")
    if len(name) + len(value) >= MAX_PARAMETER_CHARS:
        raise TwimlError(
            f"stream parameter {name!r}: name+value is {len(name) + len(value)} characters, "
            f"Twilio needs under {MAX_PARAMETER_CHARS}"
        )


def _say_text(text: str) -> str:
    cleaned = " ".join(text.split())
    if not cleaned:
        raise TwimlError("text to say is empty")
    if len(cleaned) > MAX_SAY_CHARS:
        raise TwimlError(f"text to say is {len(cleaned)} characters; at most {MAX_SAY_CHARS}")
    return cleaned


def _check_ws_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("wss", "ws") or not parts.hostname:
        raise TwimlError(f"stream URL must be wss://host/path, got {url!r}")
    if parts.query:
        raise TwimlError("stream URL must not have a query string; pass data as parameters")


def _check_http_url(url: str | None, what: str) -> str:
    parts = urlsplit(url or "")
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise TwimlError(f"{what} URL must be http(s)://host/path, got {url!r}")
    return url or ""


def _check_e164(number: str, what: str) -> str:
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException as err:
        raise TwimlError(f"{what} must be an E.164 number like +15551234567") from err
    if not phonenumbers.is_possible_number(parsed):
        raise TwimlError(f"{what} is not a possible phone number")
    formatted = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if formatted != number:
        raise TwimlError(f"{what} must be in E.164 form ({formatted}), got another spelling")
    return number

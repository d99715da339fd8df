"""TwiML builders: structure, limits, and clear errors."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from pydantic import ValidationError as PydanticValidationError

from reautod.api.media import parse_start
from reautod.telephony.stream import MAX_OPENING_CHARS, Direction, StreamParameters
from reautod.telephony.twiml import (
    MAX_TWIML_CHARS,
    RecordingOptions,
    TwimlError,
    empty_twiml,
    stream_twiml,
    transfer_twiml,
    voicemail_twiml,
)

PARAMS = StreamParameters(call_id="call-1", campaign="solar-q4", lead_name="Dana <O'Neil> & Co",
                          direction=Direction.OUTBOUND)
WSS = "wss://voice.example.com/twilio/media"


def test_stream_twiml_says_announcement_before_connect_with_parameters() -> None:
    root = ET.fromstring(stream_twiml(WSS, PARAMS, announcement="This call is recorded."))
    assert [child.tag for child in root] == ["Say", "Connect"]
    assert root[0].text == "This call is recorded."
    stream = root.find("Connect/Stream")
    assert stream is not None and stream.get("url") == WSS
    params = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
    assert params == {"call_id": "call-1", "campaign": "solar-q4",
                      "lead_name": "Dana <O'Neil> & Co", "direction": "outbound"}


def test_recording_from_twiml_comes_after_announcement() -> None:
    xml = stream_twiml(WSS, PARAMS, announcement="Recorded.",
                       record_after_announcement=RecordingOptions("https://x.example/twilio/recording"))
    root = ET.fromstring(xml)
    assert [child.tag for child in root] == ["Say", "Start", "Connect"]
    assert root.find("Start/Recording") is not None
    with pytest.raises(TwimlError, match="announcement"):
        stream_twiml(WSS, PARAMS, record_after_announcement=RecordingOptions("https://x.example/r"))


def test_parameter_limit() -> None:
    ok = StreamParameters(call_id="c", goal="g" * (500 - len("goal") - 1))
    stream_twiml(WSS, ok)
    too_long = StreamParameters(call_id="c", goal="g" * (500 - len("goal")))
    with pytest.raises(TwimlError, match="goal"):
        stream_twiml(WSS, too_long)


def test_the_opening_travels_as_a_parameter_within_the_limit() -> None:
    opening = "Hi {lead_name}, this is Alex from Acme Solar. Say stop or press 9 to opt out."
    with_opening = StreamParameters(call_id="c", campaign="k", lead_name="n", opening=opening)
    root = ET.fromstring(stream_twiml(WSS, with_opening))
    params = {p.get("name"): p.get("value") for p in root.iterfind("./Connect/Stream/Parameter")}
    assert params["opening"] == opening
    assert "opening" not in stream_twiml(WSS, PARAMS)
    stream_twiml(WSS, StreamParameters(call_id="c", opening="o" * MAX_OPENING_CHARS))
    with pytest.raises(TwimlError, match="'opening'"):
        stream_twiml(WSS, StreamParameters(call_id="c", opening="o" * (MAX_OPENING_CHARS + 1)))


def test_stream_url_must_be_websocket_without_query() -> None:
    with pytest.raises(TwimlError, match="wss://"):
        stream_twiml("https://voice.example.com/twilio/media", PARAMS)
    with pytest.raises(TwimlError, match="query"):
        stream_twiml(WSS + "?call=1", PARAMS)


def test_total_length_limit() -> None:
    # Escaping counts: each "&" becomes "&amp;" in the document.
    many = StreamParameters(call_id="c", campaign="&" * 200, lead_name="&" * 200,
                            goal="&" * 480, opening="&" * 480)
    with pytest.raises(TwimlError, match=str(MAX_TWIML_CHARS)):
        stream_twiml(WSS, many, announcement="word " * 290)


def test_transfer_twiml() -> None:
    root = ET.fromstring(transfer_twiml("+15551230000", caller_id="+15557654321", timeout_s=25,
                                        action_url="https://x.example/twilio/dial"))
    dial = root.find("Dial")
    assert dial is not None
    assert dial.get("callerId") == "+15557654321"
    assert dial.get("timeout") == "25"
    assert dial.get("action") == "https://x.example/twilio/dial"
    assert root.findtext("Dial/Number") == "+15551230000"
    with pytest.raises(TwimlError, match=r"E\.164"):
        transfer_twiml("555-123", caller_id="+15557654321")
    with pytest.raises(TwimlError, match=r"E\.164 form"):
        transfer_twiml("+1 555 123 0000", caller_id="+15557654321")
    with pytest.raises(TwimlError, match="timeout"):
        transfer_twiml("+15551230000", caller_id="+15557654321", timeout_s=0)


def test_voicemail_and_empty() -> None:
    root = ET.fromstring(voicemail_twiml("Call us back at 555."))
    assert [child.tag for child in root] == ["Pause", "Say", "Hangup"]
    with pytest.raises(TwimlError, match="empty"):
        voicemail_twiml("   ")
    assert ET.fromstring(empty_twiml()).tag == "Response"
    # in the agent's own voice: Twilio plays our clip, its <Say> voice is not used
    url = "https://voice.example.com/twilio/clips/abc.wav"
    played = ET.fromstring(voicemail_twiml("Call us back at 555.", audio_url=url, voice="alice"))
    assert [(child.tag, child.text) for child in played] == [
        ("Pause", None), ("Play", url), ("Hangup", None)]
    with pytest.raises(TwimlError, match="voicemail audio URL"):
        voicemail_twiml("Call us back.", audio_url="file:///etc/passwd")


def test_the_media_endpoint_reads_what_the_twiml_writes() -> None:
    """One model both sides use: the `<Stream>` parameters come back as the same values."""
    written = StreamParameters(call_id="call-1", campaign="solar-q4", lead_name="Dana",
                               direction=Direction.INBOUND, goal="book", opening="Hi {lead_name}")
    root = ET.fromstring(stream_twiml(WSS, written))
    custom = {p.get("name") or "": p.get("value") or ""
              for p in root.iterfind("./Connect/Stream/Parameter")}
    start = parse_start({"event": "start", "start": {"streamSid": "MZ1",
                                                     "customParameters": custom}})
    assert StreamParameters.model_validate(custom) == written
    assert (start.call_id, start.campaign, start.lead_name, start.direction, start.goal,
            start.opening) == ("call-1", "solar-q4", "Dana", "inbound", "book", "Hi {lead_name}")
    with pytest.raises(PydanticValidationError):  # what the reader would refuse, the writer can't
        StreamParameters(call_id="not a call id!")

"""TwiML builders: structure, limits, and clear errors."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from reautod.telephony.twiml import (
    MAX_OPENING_CHARS,
    MAX_TWIML_CHARS,
    Direction,
    RecordingOptions,
    StreamParameters,
    TwimlError,
    empty_twiml,
    stream_twiml,
    transfer_twiml,
    voicemail_twiml,
)

PARAMS = StreamParameters("call-1", "solar-q4", "Dana <O'Neil> & Co", Direction.OUTBOUND)
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
    ok = StreamParameters("c", "k", "n" * (500 - len("lead_name") - 1), Direction.INBOUND)
    stream_twiml(WSS, ok)
    too_long = StreamParameters("c", "k", "n" * (500 - len("lead_name")), Direction.INBOUND)
    with pytest.raises(TwimlError, match="lead_name"):
        stream_twiml(WSS, too_long)


def test_the_opening_travels_as_a_parameter_within_the_limit() -> None:
    opening = "Hi {lead_name}, this is Alex from Acme Solar. Say stop or press 9 to opt out."
    with_opening = StreamParameters("c", "k", "n", Direction.OUTBOUND, opening)
    root = ET.fromstring(stream_twiml(WSS, with_opening))
    params = {p.get("name"): p.get("value") for p in root.iterfind("./Connect/Stream/Parameter")}
    assert params["opening"] == opening
    assert "opening" not in stream_twiml(WSS, PARAMS)
    stream_twiml(WSS, StreamParameters("c", "k", "n", Direction.OUTBOUND,
                                       "o" * MAX_OPENING_CHARS))
    with pytest.raises(TwimlError, match="'opening'"):
        stream_twiml(WSS, StreamParameters("c", "k", "n", Direction.OUTBOUND,
                                           "o" * (MAX_OPENING_CHARS + 1)))


def test_stream_url_must_be_websocket_without_query() -> None:
    with pytest.raises(TwimlError, match="wss://"):
        stream_twiml("https://voice.example.com/twilio/media", PARAMS)
    with pytest.raises(TwimlError, match="query"):
        stream_twiml(WSS + "?call=1", PARAMS)


def test_total_length_limit() -> None:
    # Escaping counts: each "&" becomes "&amp;" in the document.
    many = StreamParameters("c" * 480, "&" * 480, "&" * 480, Direction.OUTBOUND)
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

"""Twilio webhooks: signature first, tolerant parsing, idempotent handling, never backwards."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest
from fastapi import FastAPI, WebSocket
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect
from twilio.request_validator import RequestValidator

from reautod.errors import OverloadedError, UnavailableError
from reautod.observability.metrics import Metrics
from reautod.resilience.inbound import InboundShedding
from reautod.resilience.shedding import LoadGovernor
from reautod.store.enums import CallStatus
from reautod.telephony.signatures import TwilioSignatureValidator
from reautod.telephony.state_machine import Applied, twilio_spelling
from reautod.telephony.webhooks import (
    BusyMessage,
    LeadMatch,
    StatusCallback,
    check_media_websocket,
    twilio_router,
)
from tests.fixtures.services import free_port
from tests.telephony.twilio_standin import MemoryWebhookHandler, TwilioStandIn, serve_app

TOKEN = "webhook-test-token"
BASE = "https://voice.example.com"
ACCOUNT = "AC" + "b" * 32
SID = "CA" + "c" * 32
LEAD = LeadMatch(lead_id="lead-7", name="Dana", campaign="solar")


class Env:
    def __init__(self) -> None:
        self.handler = MemoryWebhookHandler({"+15551230007": LEAD})
        self.validator = TwilioSignatureValidator(TOKEN, BASE)
        app = FastAPI()
        app.include_router(twilio_router(self.handler, self.validator))

        @app.websocket("/twilio/media")
        async def media(websocket: WebSocket) -> None:
            if not (await check_media_websocket(websocket, self.validator)).accepted:
                await websocket.close(code=1008)
                return
            await websocket.accept()
            await websocket.send_text("hello")
            await websocket.close()

        self.client = TestClient(app, base_url=BASE)

    def post(self, path: str, params: dict[str, str], *, sign_url: str | None = None,
             signature: str | None = "sign") -> object:
        headers = {}
        if signature == "sign":
            url = sign_url or BASE + path
            headers["X-Twilio-Signature"] = RequestValidator(TOKEN).compute_signature(url, params)
        elif signature is not None:
            headers["X-Twilio-Signature"] = signature
        return self.client.post(path, data=params, headers=headers)


@pytest.fixture
def env() -> Iterator[Env]:
    e = Env()
    with e.client:
        yield e


def status(call_status: str, seq: int | None, sid: str = SID) -> dict[str, str]:
    params = {"AccountSid": ACCOUNT, "CallSid": sid, "CallStatus": call_status,
              "Direction": "outbound-api", "From": "+15557650000", "To": "+15551230007",
              "ApiVersion": "2010-04-01", "CallbackSource": "call-progress-events",
              "Timestamp": "Sat, 21 Nov 2026 10:00:00 +0000"}
    if seq is not None:
        params["SequenceNumber"] = str(seq)
    return params


def test_status_callback_applies(env: Env) -> None:
    timeline = env.handler.expect_call(SID)
    response = env.post("/twilio/status", status("ringing", 1))
    assert response.status_code == 200  # type: ignore[attr-defined]
    assert timeline.status is CallStatus.RINGING
    assert timeline.entries[0].at is not None


@pytest.mark.parametrize("signature,sign_url", [
    (None, None),  # missing
    ("bm90IGEgc2lnbmF0dXJl", None),  # wrong
    ("sign", "http://127.0.0.1:8080/twilio/status"),  # signed for the internal URL
    ("sign", BASE + "/twilio/amd"),  # signed for another path
])
def test_bad_signatures_are_403_and_change_nothing(env: Env, signature: str | None,
                                                   sign_url: str | None) -> None:
    timeline = env.handler.expect_call(SID)
    response = env.post("/twilio/status", status("ringing", 1), signature=signature,
                        sign_url=sign_url)
    assert response.status_code == 403  # type: ignore[attr-defined]
    assert "signature" in response.json()["message"]  # type: ignore[attr-defined]
    assert timeline.status is CallStatus.QUEUED and env.handler.statuses == []
    assert env.validator.stats.missing + env.validator.stats.invalid == 1


def test_bad_signature_is_checked_before_parsing(env: Env) -> None:
    response = env.post("/twilio/status", {"nothing": "here"}, signature=None)
    assert response.status_code == 403  # type: ignore[attr-defined]


def test_replayed_callback_is_harmless_and_counted(env: Env) -> None:
    timeline = env.handler.expect_call(SID)
    for _ in range(2):
        assert env.post("/twilio/status", status("in-progress", 2)).status_code == 200  # type: ignore[attr-defined]
    assert env.validator.stats.replayed == 1
    assert [o for _, o in env.handler.statuses] == [Applied.APPLIED, Applied.DUPLICATE]
    assert len(timeline.entries) == 1


@pytest.mark.parametrize("params,field", [
    ({"CallStatus": "ringing"}, "CallSid"),
    ({"CallSid": SID}, "CallStatus"),
    ({"CallSid": SID, "CallStatus": "ringing", "SequenceNumber": "abc"}, "SequenceNumber"),
    ({"CallSid": "", "CallStatus": "ringing"}, "CallSid"),
])
def test_malformed_callbacks_are_400_with_the_field(env: Env, params: dict[str, str],
                                                    field: str) -> None:
    response = env.post("/twilio/status", params)
    assert response.status_code == 400  # type: ignore[attr-defined]
    assert field in response.json()["message"]  # type: ignore[attr-defined]
    assert env.handler.statuses == []


def test_unknown_status_and_unknown_call(env: Env) -> None:
    timeline = env.handler.expect_call(SID)
    assert env.post("/twilio/status", status("teleported", 3)).status_code == 200  # type: ignore[attr-defined]
    assert timeline.status is CallStatus.QUEUED
    other = "CA" + "d" * 32
    assert env.post("/twilio/status", status("completed", 4, sid=other)).status_code == 200  # type: ignore[attr-defined]
    assert env.handler.statuses[-1][1] is None and other not in env.handler.timelines


def test_out_of_order_callbacks_over_http(env: Env) -> None:
    timeline = env.handler.expect_call(SID)
    for call_status, seq in [("completed", 3), ("ringing", 1), ("in-progress", 2),
                             ("initiated", 0), ("ringing", 1)]:
        env.post("/twilio/status", status(call_status, seq))
    assert timeline.status is CallStatus.COMPLETED
    assert [e.sequence_number for e in timeline.entries] == [0, 1, 2, 3]


def test_body_too_large(env: Env) -> None:
    response = env.post("/twilio/status", {"CallSid": SID, "pad": "x" * 70_000})
    assert response.status_code == 413  # type: ignore[attr-defined]


FIELDS = ["CallSid", "CallStatus", "SequenceNumber", "Timestamp", "CallDuration", "Junk"]


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture],
          deadline=None)
@given(st.lists(st.dictionaries(
    st.sampled_from(FIELDS),
    st.one_of(st.sampled_from([SID, "CAunknown", "ringing", "completed", "in-progress",
                               "busy", "zzz", "", "1", "2", "-1", "7", "x"]),
              st.text(max_size=20)),
), max_size=8))
def test_fuzzed_callbacks_never_crash_or_go_backwards(env: Env,
                                                      forms: list[dict[str, str]]) -> None:
    handler = MemoryWebhookHandler()
    env.client.app.router.routes.clear()  # type: ignore[attr-defined]
    env.client.app.include_router(twilio_router(handler, env.validator))  # type: ignore[attr-defined]
    timeline = handler.expect_call(SID)
    order = [CallStatus.QUEUED, CallStatus.INITIATED, CallStatus.RINGING, CallStatus.IN_PROGRESS]
    rank = lambda s: 4 if s.terminal else order.index(s)  # noqa: E731
    previous = timeline.status
    for form in forms:
        response = env.post("/twilio/status", form)
        assert response.status_code in (200, 400)  # type: ignore[attr-defined]
        assert rank(timeline.status) >= rank(previous)
        previous = timeline.status


def test_inbound_call_from_known_lead_gets_stream_twiml(env: Env) -> None:
    params = {"AccountSid": ACCOUNT, "CallSid": SID, "From": "+1 (555) 123-0007",
              "To": "+15557650000", "CallStatus": "ringing", "Direction": "inbound"}
    response = env.post("/twilio/voice", params)
    assert response.status_code == 200  # type: ignore[attr-defined]
    root = ET.fromstring(response.text)  # type: ignore[attr-defined]
    assert [c.tag for c in root] == ["Say", "Connect"]
    stream = root.find("Connect/Stream")
    assert stream is not None and stream.get("url") == "wss://voice.example.com/twilio/media"
    values = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
    assert values == {"call_id": f"in-{SID}", "campaign": "solar", "lead_name": "Dana",
                      "direction": "inbound"}
    assert env.handler.lookups == ["+15551230007"]


@pytest.mark.parametrize("caller", ["+15559990000", "anonymous", "client:alice"])
def test_inbound_call_from_unknown_caller_is_declined(env: Env, caller: str) -> None:
    params = {"CallSid": SID, "From": caller, "To": "+15557650000"}
    response = env.post("/twilio/voice", params)
    root = ET.fromstring(response.text)  # type: ignore[attr-defined]
    assert [c.tag for c in root] == ["Hangup"]
    assert env.handler.inbound[0][1] is None


def test_amd_and_recording(env: Env) -> None:
    env.handler.expect_call(SID)
    amd = {"CallSid": SID, "AnsweredBy": "machine_end_beep", "MachineDetectionDuration": "3100"}
    assert env.post("/twilio/amd", amd).status_code == 200  # type: ignore[attr-defined]
    result = env.handler.amd[SID]
    assert result.machine and result.greeting_ended
    assert env.post("/twilio/amd", {"CallSid": SID}).status_code == 400  # type: ignore[attr-defined]
    rec = {"CallSid": SID, "RecordingSid": "RE1", "RecordingStatus": "completed",
           "RecordingUrl": "https://api.twilio.com/rec/RE1", "RecordingDuration": "42",
           "RecordingChannels": "2"}
    assert env.post("/twilio/recording", rec).status_code == 200  # type: ignore[attr-defined]
    assert env.handler.recordings["RE1"].recording_duration_s == 42


def test_media_websocket_upgrade_signature(env: Env) -> None:
    url = "wss://voice.example.com/twilio/media"
    good = RequestValidator(TOKEN).compute_signature(url, {})
    with env.client.websocket_connect("/twilio/media",
                                      headers={"X-Twilio-Signature": good}) as ws:
        assert ws.receive_text() == "hello"
    # Replayed: accepted (the media handler is per call) and counted.
    with env.client.websocket_connect("/twilio/media",
                                      headers={"X-Twilio-Signature": good}) as ws:
        assert ws.receive_text() == "hello"
    assert env.validator.stats.replayed == 1
    wrong_url = RequestValidator(TOKEN).compute_signature(BASE + "/twilio/media", {})
    for headers in ({}, {"X-Twilio-Signature": "AAAA"}, {"X-Twilio-Signature": wrong_url}):
        with pytest.raises(WebSocketDisconnect), \
                env.client.websocket_connect("/twilio/media", headers=headers) as ws:
            ws.receive_text()
    assert (env.validator.stats.missing, env.validator.stats.invalid) == (1, 2)


def test_standin_drives_signed_callbacks_end_to_end() -> None:
    port = free_port()
    handler = MemoryWebhookHandler()
    validator = TwilioSignatureValidator(TOKEN, f"http://127.0.0.1:{port}")
    app = FastAPI()
    app.include_router(twilio_router(handler, validator))
    with TwilioStandIn(ACCOUNT, TOKEN) as standin, serve_app(app, port) as base:
        status_code, body = standin._create({"To": ["+15551230007"], "From": ["+15557650000"]})
        sid = body["sid"]
        timeline = handler.expect_call(sid)
        for step in ("initiated", "ringing", "in-progress"):
            assert standin.send_status(base, sid, step).status_code == 200
        assert standin.send_amd(base, sid, "human").status_code == 200
        assert standin.send_status(base, sid, "ringing", sequence=1).status_code == 200
        assert standin.send_status(base, sid, "completed").status_code == 200
    assert status_code == 201
    assert timeline.status is CallStatus.COMPLETED
    assert [twilio_spelling(e.status) for e in timeline.entries] == [
        "initiated", "ringing", "in-progress", "completed"]
    assert handler.amd[sid].answered_by == "human"
    assert validator.stats.valid + validator.stats.replayed == 6
    assert validator.stats.invalid == validator.stats.missing == 0


class FailingHandler(MemoryWebhookHandler):
    async def lookup_lead_by_phone(self, e164: str) -> LeadMatch | None:
        raise UnavailableError("database is down")

    async def on_status(self, event: StatusCallback) -> None:
        raise UnavailableError("database is down")


def test_handler_errors_become_503_with_the_code() -> None:
    validator = TwilioSignatureValidator(TOKEN, BASE)
    app = FastAPI()
    app.include_router(twilio_router(FailingHandler(), validator))
    with TestClient(app, base_url=BASE) as client:
        for path, params in (("/twilio/voice", {"CallSid": SID, "From": "+15551230007",
                                                "To": "+15557650000"}),
                             ("/twilio/status", status("ringing", 1))):
            signature = RequestValidator(TOKEN).compute_signature(BASE + path, params)
            response = client.post(path, data=params, headers={"X-Twilio-Signature": signature})
            assert response.status_code == 503
            assert response.json()["error"] == "unavailable"


def test_long_lead_name_is_shortened_not_fatal(env: Env) -> None:
    env.handler.leads["+15551230007"] = LeadMatch("lead-8", "N" * 600, "solar")
    params = {"CallSid": SID, "From": "+15551230007", "To": "+15557650000"}
    response = env.post("/twilio/voice", params)
    assert response.status_code == 200  # type: ignore[attr-defined]
    stream = ET.fromstring(response.text).find("Connect/Stream")  # type: ignore[attr-defined]
    assert stream is not None
    names = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
    assert names["lead_name"] == "N" * 200


def test_a_shed_inbound_call_hears_the_busy_message_then_a_hangup() -> None:
    class Full:
        def check_admission(self) -> None:
            raise OverloadedError("at capacity: 4 live calls (calls.max_concurrent = 4)")

    governor = LoadGovernor(slo_s=1.0, window_s=60, min_turns=3, max_queue=4,
                            inbound_reserve_s=60)
    handler = MemoryWebhookHandler({"+15551230007": LEAD})
    app = FastAPI()
    gate = InboundShedding(Full, governor, Metrics())
    app.include_router(twilio_router(handler, TwilioSignatureValidator(TOKEN, BASE), gate=gate,
                                     busy=BusyMessage("All lines are busy. Please call later.")))
    played = FastAPI()
    played.include_router(twilio_router(
        handler, TwilioSignatureValidator(TOKEN, BASE), gate=gate,
        busy=BusyMessage("unused", audio_url="https://voice.example.com/busy.wav")))
    params = {"CallSid": SID, "From": "+15551230007", "To": "+15557650000"}
    signature = RequestValidator(TOKEN).compute_signature(BASE + "/twilio/voice", params)
    for application, first in ((app, "Say"), (played, "Play")):
        with TestClient(application, base_url=BASE) as client:
            response = client.post("/twilio/voice", data=params,
                                   headers={"X-Twilio-Signature": signature})
        assert response.status_code == 200
        root = ET.fromstring(response.text)
        assert [c.tag for c in root] == [first, "Hangup"]
        assert root[0].text == ("All lines are busy. Please call later." if first == "Say"
                                else "https://voice.example.com/busy.wav")
    assert handler.inbound == [] and handler.lookups == []  # not registered, nothing looked up
    assert governor.reserving()

"""A local stand-in for Twilio: its REST API for calls, and its signed webhook callbacks.

`TwilioStandIn` is a real HTTP server on 127.0.0.1 (http.server in a thread). It records every
request, answers Calls create/update and Recordings create with JSON shaped like Twilio's, answers
404 / code 20404 for unknown or ended calls, checks Basic auth, and can post status and AMD
callbacks to a webhook base URL, signed as Twilio signs them.

Messages (SMS): `POST .../Messages.json` with To, From and Body answers 201 with a message
resource shaped like Twilio's and records it in `messages`; `message_failures` is a script of
(status, Twilio error code) answers given before the next successes (21211: invalid To, a 400).

`MemoryWebhookHandler` is the in-memory WebhookHandler the webhook tests use: one CallTimeline
per known CallSid, everything it was given recorded.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import httpx
import uvicorn
from twilio.request_validator import RequestValidator

from reautod.telephony.state_machine import Applied, CallTimeline
from reautod.telephony.webhooks import (
    AmdCallback,
    InboundAnswer,
    LeadMatch,
    RecordingEvent,
    StatusCallback,
    VoiceRequest,
)

API = "/2010-04-01/Accounts"
ENDED = {"completed", "busy", "no-answer", "failed", "canceled"}


@dataclass
class RecordedRequest:
    method: str
    path: str
    form: dict[str, list[str]]
    authorized: bool


@dataclass
class StandInMessage:
    sid: str
    to: str
    from_: str
    body: str


@dataclass
class StandInCall:
    sid: str
    to: str
    from_: str
    status: str = "queued"
    twiml: str | None = None
    sequence: int = 0
    recordings: list[str] = field(default_factory=list)


class TwilioStandIn:
    """Twilio's Calls API on 127.0.0.1, plus signed callbacks; use as a context manager."""

    def __init__(self, account_sid: str, auth_token: str) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.requests: list[RecordedRequest] = []
        self.calls: dict[str, StandInCall] = {}
        self.messages: list[StandInMessage] = []
        self.message_failures: list[tuple[int, int]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> TwilioStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    # --- driving callbacks like Twilio ----------------------------------------------------------

    def signed_post(self, url: str, params: dict[str, str]) -> httpx.Response:
        """POST `params` to `url` form-encoded, with the X-Twilio-Signature Twilio would send."""
        signature = RequestValidator(self.auth_token).compute_signature(url, params)
        return httpx.post(url, data=params, headers={"X-Twilio-Signature": signature}, timeout=10)

    def send_status(self, webhook_base: str, sid: str, status: str,
                    sequence: int | None = None) -> httpx.Response:
        """Move a call to `status` and post the status callback (next SequenceNumber by default)."""
        with self._lock:
            call = self.calls[sid]
            call.status = status
            if sequence is None:
                sequence = call.sequence
                call.sequence += 1
        params = self._call_params(call) | {
            "CallStatus": status,
            "SequenceNumber": str(sequence),
            "CallbackSource": "call-progress-events",
            "Timestamp": format_datetime(datetime.now(UTC)),
        }
        if status in ENDED:
            params |= {"CallDuration": "0", "Duration": "0"}
        return self.signed_post(webhook_base.rstrip("/") + "/twilio/status", params)

    def send_amd(self, webhook_base: str, sid: str, answered_by: str) -> httpx.Response:
        params = {"AccountSid": self.account_sid, "CallSid": sid, "AnsweredBy": answered_by,
                  "MachineDetectionDuration": "2150"}
        return self.signed_post(webhook_base.rstrip("/") + "/twilio/amd", params)

    def _call_params(self, call: StandInCall) -> dict[str, str]:
        return {"AccountSid": self.account_sid, "ApiVersion": "2010-04-01", "CallSid": call.sid,
                "Direction": "outbound-api", "From": call.from_, "To": call.to,
                "Caller": call.from_, "Called": call.to}

    # --- the REST side --------------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet test output
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode(), keep_blank_values=True)
                status, body = standin._route(self.path, form, self.headers.get("Authorization"))
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        return Handler

    def _route(self, path: str, form: dict[str, list[str]],
               authorization: str | None) -> tuple[int, dict[str, Any]]:
        expected = "Basic " + base64.b64encode(
            f"{self.account_sid}:{self.auth_token}".encode()).decode()
        authorized = authorization == expected
        with self._lock:
            self.requests.append(RecordedRequest("POST", path, form, authorized))
        if not authorized:
            return 401, _error(401, 20003, "Authenticate")
        if path == f"{API}/{self.account_sid}/Messages.json":
            return self._message(form)
        prefix = f"{API}/{self.account_sid}/Calls"
        if path == prefix + ".json":
            return self._create(form)
        if path.startswith(prefix + "/") and path.endswith("/Recordings.json"):
            return self._record(path[len(prefix) + 1 : -len("/Recordings.json")])
        if path.startswith(prefix + "/") and path.endswith(".json"):
            return self._update(path[len(prefix) + 1 : -len(".json")], form)
        return 404, _error(404, 20404, f"The requested resource {path} was not found")

    def _create(self, form: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        for required in ("To", "From"):
            if not form.get(required):
                return 400, _error(400, 21201, f"Missing required parameter {required}.")
        sid = "CA" + uuid.uuid4().hex
        call = StandInCall(sid, form["To"][0], form["From"][0],
                           twiml=form.get("Twiml", [None])[0])
        with self._lock:
            self.calls[sid] = call
        return 201, self._call_json(call)

    def _message(self, form: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        for required in ("To", "From", "Body"):
            if not form.get(required):
                return 400, _error(400, 21602 if required == "Body" else 21604,
                                   f"A '{required}' parameter is required.")
        with self._lock:
            if self.message_failures:
                status, code = self.message_failures.pop(0)
                return status, _error(status, code, "scripted failure")
            message = StandInMessage("SM" + uuid.uuid4().hex, form["To"][0], form["From"][0],
                                     form["Body"][0])
            self.messages.append(message)
        return 201, {"sid": message.sid, "account_sid": self.account_sid, "to": message.to,
                     "from": message.from_, "body": message.body, "status": "queued",
                     "direction": "outbound-api", "num_segments": "1", "price": None,
                     "api_version": "2010-04-01",
                     "uri": f"{API}/{self.account_sid}/Messages/{message.sid}.json"}

    def _update(self, sid: str, form: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            call = self.calls.get(sid)
            if call is None or call.status in ENDED:
                return 404, _error(404, 20404, f"The requested resource /Calls/{sid} was not found")
            if "Status" in form:
                call.status = form["Status"][0]
            if "Twiml" in form:
                call.twiml = form["Twiml"][0]
            return 200, self._call_json(call)

    def _record(self, sid: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            call = self.calls.get(sid)
            if call is None or call.status in ENDED:
                return 404, _error(404, 20404, f"The requested resource /Calls/{sid} was not found")
            rec_sid = "RE" + uuid.uuid4().hex
            call.recordings.append(rec_sid)
        return 201, {"sid": rec_sid, "account_sid": self.account_sid, "call_sid": sid,
                     "status": "in-progress", "channels": 2, "source": "StartCallRecordingAPI",
                     "api_version": "2010-04-01", "uri": f"{API}/{self.account_sid}/Calls/{sid}"
                     f"/Recordings/{rec_sid}.json"}

    def _call_json(self, call: StandInCall) -> dict[str, Any]:
        return {"sid": call.sid, "account_sid": self.account_sid, "to": call.to,
                "from": call.from_, "status": call.status, "direction": "outbound-api",
                "api_version": "2010-04-01", "price": None, "duration": None,
                "uri": f"{API}/{self.account_sid}/Calls/{call.sid}.json"}

    def requests_to(self, suffix: str) -> Iterator[RecordedRequest]:
        with self._lock:
            recorded = list(self.requests)
        return (r for r in recorded if r.path.endswith(suffix))


def _error(status: int, code: int, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status}


class MemoryWebhookHandler:
    """The WebhookHandler for tests: timelines per known call, everything received recorded."""

    def __init__(self, leads: dict[str, LeadMatch] | None = None) -> None:
        self.leads = dict(leads or {})
        self.timelines: dict[str, CallTimeline] = {}
        self.statuses: list[tuple[StatusCallback, Applied | None]] = []
        self.amd: dict[str, AmdCallback] = {}
        self.recordings: dict[str, RecordingEvent] = {}
        self.inbound: list[tuple[VoiceRequest, LeadMatch | None]] = []
        self.lookups: list[str] = []

    def expect_call(self, sid: str) -> CallTimeline:
        return self.timelines.setdefault(sid, CallTimeline())

    async def lookup_lead_by_phone(self, e164: str) -> LeadMatch | None:
        self.lookups.append(e164)
        return self.leads.get(e164)

    async def on_inbound(self, call: VoiceRequest, lead: LeadMatch | None) -> InboundAnswer | None:
        self.inbound.append((call, lead))
        if lead is None:
            return None
        self.expect_call(call.call_sid)
        return InboundAnswer(call_id=f"in-{call.call_sid}", campaign=lead.campaign,
                             lead_name=lead.name, announcement="This call is recorded.")

    async def on_status(self, event: StatusCallback) -> None:
        timeline = self.timelines.get(event.call_sid)
        self.statuses.append((event, timeline.apply(event.event()) if timeline else None))

    async def on_amd(self, event: AmdCallback) -> None:
        if event.call_sid in self.timelines:
            self.amd.setdefault(event.call_sid, event)

    async def on_recording(self, event: RecordingEvent) -> None:
        self.recordings[event.recording_sid] = event


@contextlib.contextmanager
def serve_app(app: Any, port: int) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on 127.0.0.1:`port` in a thread; yields its base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    started = threading.Event()
    for _ in range(500):  # wait (bounded) for the socket to be bound
        if server.started and server.servers:
            started.set()
            break
        started.wait(0.01)
    if not started.is_set():
        server.should_exit = True
        thread.join(timeout=10)
        raise RuntimeError("uvicorn did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)

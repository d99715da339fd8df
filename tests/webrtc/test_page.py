"""Who may open the call page and start a call from it: addresses, tokens, origin, body; the
calls behind it are a fake that records the offers it was given (the real path runs in
tests/conversation/test_without_twilio.py)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from reautod.api.admin import AuthenticationError
from reautod.config import Settings
from reautod.errors import ConfigError, OverloadedError, ReautodError
from reautod.observability.events import EventBus
from reautod.security.principal import Principal, Role
from reautod.webrtc.page import call_page_router, client_allowed
from reautod.webrtc.part import WebRTCPart
from reautod.webrtc.signalling import Answer, Offer, Transport

SDP = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
LOOPBACK = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]


@dataclass
class FakeCalls:
    """Answers every offer (or refuses with `refuse`), recording what it was given."""

    offers: list[tuple[Offer, Transport]] = field(default_factory=list)
    refuse: Exception | None = None

    async def answer(self, offer: Offer, transport: Transport = "webrtc") -> Answer:
        if self.refuse is not None:
            raise self.refuse
        self.offers.append((offer, transport))
        return Answer(sdp="v=0\r\n", call_id="c1")


@dataclass
class FakeAuditor:
    """Runs each method as the real trail does, recording (method, subject, outcome)."""

    records: list[tuple[str, str, str]] = field(default_factory=list)

    async def run_method(self, name: str, params: BaseModel,
                         handler: Callable[[BaseModel], Awaitable[Any]], principal: Principal, *,
                         changes_state: bool) -> Any:
        assert changes_state
        try:
            result = await handler(params)
        except ReautodError as err:
            self.records.append((name, principal.subject, err.code))
            raise
        self.records.append((name, principal.subject, "ok"))
        return result


@dataclass
class FakeCredentials:
    """The admin API's credentials (an `Authenticator`): these tokens, and no other."""

    tokens: dict[str, Role]

    async def authenticate(self, credential: str, origin: str) -> Principal:
        role = self.tokens.get(credential)
        if role is None:
            raise AuthenticationError("invalid token")
        return Principal(f"token:{role.value}-user", role, origin)


def client(calls: FakeCalls, *, tokens: FakeCredentials | None = None,
           address: str = "127.0.0.1", auditor: FakeAuditor | None = None) -> httpx.AsyncClient:
    app = FastAPI()
    app.include_router(call_page_router(calls, LOOPBACK, tokens, auditor or FakeAuditor()))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(address, 5000)),
                             base_url="http://127.0.0.1:8080")


def test_client_addresses() -> None:
    assert client_allowed("127.0.0.1", LOOPBACK) and client_allowed("::1", LOOPBACK)
    assert client_allowed("::ffff:127.0.0.1", LOOPBACK)  # an IPv4 client on a dual-stack socket
    assert not client_allowed("10.0.0.5", LOOPBACK)
    assert not client_allowed("not-an-ip", LOOPBACK) and not client_allowed(None, LOOPBACK)


async def test_the_page_is_served_from_package_files_to_allowed_addresses_only() -> None:
    async with client(FakeCalls()) as http:
        page = await http.get("/call")
        script = await http.get("/call/call.js")
        missing = await http.get("/call/other.js")
    assert page.status_code == 200 and 'src="/call/call.js"' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert script.status_code == 200 and "RTCPeerConnection" in script.text
    assert missing.status_code == 404
    async with client(FakeCalls(), address="192.0.2.7") as http:
        assert (await http.get("/call")).status_code == 403
        assert (await http.post("/call/offer", json={"sdp": SDP})).status_code == 403
    async with client(FakeCalls()) as http:  # a proxy on loopback, serving someone elsewhere
        proxied = await http.get("/call", headers={"x-forwarded-for": "198.51.100.4"})
        rfc7239 = await http.get("/call", headers={"forwarded": 'for="[2001:db8::7]:4711"'})
        local = await http.get("/call", headers={"forwarded": "for=127.0.0.1:5000;proto=http"})
    assert proxied.status_code == 403 and rfc7239.status_code == 403
    assert local.status_code == 200


async def test_an_offer_starts_a_call_and_bad_ones_say_why() -> None:
    calls, audit = FakeCalls(), FakeAuditor()
    async with client(calls, auditor=audit) as http:
        ok = await http.post("/call/offer", json={"sdp": SDP, "lead_name": "Jordan"})
        plain = await http.post("/call/offer", content=f'{{"sdp": "{SDP}"}}',
                                headers={"content-type": "text/plain"})
        foreign = await http.post("/call/offer", json={"sdp": SDP},
                                  headers={"origin": "https://evil.example"})
        no_audio = await http.post("/call/offer", json={"sdp": "v=0\r\nm=video 9 X 96\r\n"})
        not_json = await http.post("/call/offer", content=b"{",
                                   headers={"content-type": "application/json"})
    assert ok.status_code == 200 and ok.json() == {"sdp": "v=0\r\n", "type": "answer",
                                                   "call_id": "c1"}
    assert [(o.lead_name, t) for o, t in calls.offers] == [("Jordan", "webrtc")]
    assert audit.records == [("call.page", "page:127.0.0.1", "ok")]  # who, with no admin API
    assert plain.status_code == 415  # a cross-site "simple" POST never reaches a call
    assert foreign.status_code == 403
    assert no_audio.status_code == 400 and "m=audio" in no_audio.json()["error"]["message"]
    assert not_json.status_code == 400
    calls.refuse = OverloadedError("at capacity: 4 live calls")
    async with client(calls) as http:
        full = await http.post("/call/offer", json={"sdp": SDP})
    assert full.status_code == 429 and full.json()["error"]["message"].startswith("at capacity")


async def test_with_the_admin_api_on_an_offer_needs_an_operators_token() -> None:
    operator, analyst = "operator-token", "analyst-token"
    tokens = FakeCredentials({operator: Role.OPERATOR, analyst: Role.ANALYST})
    calls, audit = FakeCalls(), FakeAuditor()
    async with client(calls, tokens=tokens, auditor=audit) as http:
        assert (await http.get("/call")).status_code == 200  # the page itself holds nothing
        anonymous = await http.post("/call/offer", json={"sdp": SDP})
        reader = await http.post("/call/offer", json={"sdp": SDP},
                                 headers={"authorization": f"Bearer {analyst}"})
        forged = await http.post("/call/offer", json={"sdp": SDP},
                                 headers={"authorization": "Bearer x.y.z"})
        allowed = await http.post("/call/offer", json={"sdp": SDP},
                                  headers={"authorization": f"Bearer {operator}"})
    assert anonymous.status_code == 401 and forged.status_code == 401
    assert reader.status_code == 403
    assert allowed.status_code == 200 and len(calls.offers) == 1
    assert audit.records == [("call.page", "token:operator-user", "ok")]


def test_a_page_open_beyond_loopback_needs_the_admin_api() -> None:
    settings = Settings(webrtc={"enabled": True, "allowed_networks": ["10.0.0.0/8"]}).webrtc
    with pytest.raises(ConfigError, match=re.escape("10.0.0.0/8")):
        WebRTCPart(settings, calls=None, bus=EventBus(), credentials=None,  # type: ignore[arg-type]
                   auditor=FakeAuditor())

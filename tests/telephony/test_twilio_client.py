"""The Twilio REST client against the local stand-in."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from reautod.config import TwilioSettings
from reautod.errors import ConfigError, UnavailableError
from reautod.resilience.breaker import BreakerOpenError
from reautod.resilience.service import Resilience
from reautod.resilience.settings import ResilienceSettings, ServicePolicy
from reautod.telephony.twilio_client import (
    MachineDetection,
    OutboundCall,
    TwilioCalls,
    TwilioError,
)
from reautod.telephony.twiml import transfer_twiml
from tests.fixtures.fault_proxy import FaultProxy
from tests.fixtures.services import free_port
from tests.telephony.twilio_standin import TwilioStandIn

ACCOUNT = "AC" + "a" * 32
TOKEN = "standin-token"


@pytest.fixture
def standin() -> Iterator[TwilioStandIn]:
    with TwilioStandIn(ACCOUNT, TOKEN) as server:
        yield server


@pytest.fixture
def calls(standin: TwilioStandIn) -> TwilioCalls:
    return TwilioCalls(ACCOUNT, TOKEN, api_base_url=standin.base_url)


def outbound(**overrides: object) -> OutboundCall:
    values: dict[str, object] = {
        "to": "+15551230001", "from_": "+15557650000", "twiml": "<Response><Hangup/></Response>",
        "status_callback_url": "https://voice.example.com/twilio/status",
        "amd_callback_url": "https://voice.example.com/twilio/amd",
        "machine_detection": MachineDetection.DETECT_MESSAGE_END,
        "ring_timeout_s": 25, "time_limit_s": 600,
    }
    values.update(overrides)
    return OutboundCall(**values)  # type: ignore[arg-type]


async def test_create_sends_the_right_parameters(calls: TwilioCalls, standin: TwilioStandIn) -> None:
    created = await calls.create(outbound())
    assert created.sid.startswith("CA") and created.status == "queued"
    [request] = standin.requests_to("/Calls.json")
    form = request.form
    assert request.authorized
    assert form["To"] == ["+15551230001"] and form["From"] == ["+15557650000"]
    assert form["Twiml"] == ["<Response><Hangup/></Response>"]
    assert form["StatusCallback"] == ["https://voice.example.com/twilio/status"]
    assert form["StatusCallbackEvent"] == ["initiated", "ringing", "answered", "completed"]
    assert form["MachineDetection"] == ["DetectMessageEnd"]
    assert form["AsyncAmd"] == ["true"]
    assert form["AsyncAmdStatusCallback"] == ["https://voice.example.com/twilio/amd"]
    assert form["Timeout"] == ["25"] and form["TimeLimit"] == ["600"]
    assert "Record" not in form  # never record before the consent announcement


async def test_create_without_amd(calls: TwilioCalls, standin: TwilioStandIn) -> None:
    await calls.create(outbound(machine_detection=MachineDetection.OFF, amd_callback_url=None))
    [request] = standin.requests_to("/Calls.json")
    assert "MachineDetection" not in request.form and "AsyncAmd" not in request.form


async def test_invalid_call_is_refused_before_twilio(calls: TwilioCalls,
                                                     standin: TwilioStandIn) -> None:
    with pytest.raises(TwilioError, match="ring timeout"):
        await calls.create(outbound(ring_timeout_s=1000))
    with pytest.raises(TwilioError, match="AMD callback"):
        await calls.create(outbound(amd_callback_url=None))
    with pytest.raises(TwilioError, match="4,000"):
        await calls.create(outbound(twiml="x" * 4001))
    assert list(standin.requests_to(".json")) == []


async def test_hangup_and_already_ended(calls: TwilioCalls, standin: TwilioStandIn) -> None:
    created = await calls.create(outbound())
    assert await calls.hangup(created.sid) is True
    assert standin.calls[created.sid].status == "completed"
    assert await calls.hangup(created.sid) is False  # 404 / 20404: already ended, not an error
    assert await calls.hangup("CA" + "0" * 32) is False


async def test_cancel_before_answer(calls: TwilioCalls, standin: TwilioStandIn) -> None:
    created = await calls.create(outbound())
    await calls.hangup(created.sid, before_answer=True)
    [_, update] = standin.requests_to(".json")
    assert update.form["Status"] == ["canceled"]


async def test_transfer_and_recording(calls: TwilioCalls, standin: TwilioStandIn) -> None:
    created = await calls.create(outbound())
    twiml = transfer_twiml("+15550001111", caller_id="+15557650000")
    await calls.transfer(created.sid, twiml)
    assert standin.calls[created.sid].twiml == twiml
    rec = await calls.start_recording(created.sid,
                                      status_callback_url="https://voice.example.com/twilio/recording")
    assert rec.startswith("RE") and standin.calls[created.sid].recordings == [rec]
    [request] = standin.requests_to("/Recordings.json")
    assert request.form["RecordingChannels"] == ["dual"]
    assert request.form["RecordingStatusCallback"] == ["https://voice.example.com/twilio/recording"]
    await calls.hangup(created.sid)
    with pytest.raises(TwilioError) as err:
        await calls.redirect(created.sid, "<Response/>")
    assert err.value.status == 404 and err.value.twilio_code == 20404


async def test_wrong_credentials_are_a_twilio_error(standin: TwilioStandIn) -> None:
    bad = TwilioCalls(ACCOUNT, "wrong-token", api_base_url=standin.base_url)
    with pytest.raises(TwilioError) as err:
        await bad.create(outbound())
    assert err.value.status == 401 and err.value.twilio_code == 20003


async def test_unreachable_twilio_is_unavailable() -> None:
    dead = TwilioCalls(ACCOUNT, TOKEN, api_base_url=f"http://127.0.0.1:{free_port()}",
                       timeout_s=2)
    with pytest.raises(UnavailableError, match="cannot reach Twilio"):
        await dead.create(outbound())


def test_configuration_errors() -> None:
    with pytest.raises(ConfigError, match="account SID"):
        TwilioCalls("", TOKEN)
    with pytest.raises(ConfigError, match="api_base_url"):
        TwilioCalls(ACCOUNT, TOKEN, api_base_url="localhost:9")


async def test_from_settings(standin: TwilioStandIn) -> None:
    settings = TwilioSettings(account_sid=ACCOUNT, from_number="+15557650000",
                              api_base_url=standin.base_url)
    calls = TwilioCalls.from_settings(settings, TOKEN)
    assert (await calls.create(outbound())).sid.startswith("CA")
    with pytest.raises(ConfigError, match="auth token"):
        TwilioCalls.from_settings(settings, None)


async def test_twilio_unreachable_retries_only_what_is_safe_and_opens_its_circuit(
    standin: TwilioStandIn,
) -> None:
    port = int(standin.base_url.rsplit(":", 1)[1])
    policy = ServicePolicy(failures=3, recovery_s=0.5, retries=2, backoff_base_s=0.01,
                           backoff_max_s=0.01)
    resilience = Resilience(ResilienceSettings(twilio=policy))
    with FaultProxy("127.0.0.1", port) as proxy:
        calls = TwilioCalls(ACCOUNT, TOKEN, api_base_url=f"http://127.0.0.1:{proxy.port}",
                            resilience=resilience)
        created = await calls.create(outbound())
        proxy.reset()
        tried = proxy.connections
        with pytest.raises(UnavailableError, match="cannot reach Twilio"):
            await calls.create(outbound())  # it may have reached Twilio: never sent twice
        assert proxy.connections == tried + 1
        with pytest.raises(BreakerOpenError):  # a hangup is retried, and opens the circuit
            await calls.hangup(created.sid)
        assert proxy.connections == tried + 3 and resilience.state("twilio") == "open"
        with pytest.raises(BreakerOpenError):
            await calls.redirect(created.sid, "<Response/>")
        assert proxy.connections == tried + 3  # refused without trying

        proxy.heal()
        await asyncio.sleep(0.55)
        assert await calls.hangup(created.sid)  # the probe
        assert resilience.state("twilio") == "closed"

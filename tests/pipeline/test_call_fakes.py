"""Whole calls over a real WebSocket with the Twilio simulator and recording fake engines."""

from __future__ import annotations

import base64
import itertools
import xml.etree.ElementTree as ET

import pytest

from reautod.call_events import CallState
from reautod.campaigns.settings import CampaignSettings
from reautod.config import AgentSettings, Settings
from reautod.pipeline.twilio_media import TWILIO_FORMAT
from reautod.telephony.simulator import (
    CallOptions,
    Hangup,
    Pause,
    Utterance,
    WaitForAgent,
    run_call,
)
from reautod.telephony.stream import Direction, StreamParameters
from reautod.telephony.twiml import stream_twiml
from tests.pipeline.conftest import make_settings, serve_media
from tests.pipeline.fakes import FakeEngines

pytestmark = pytest.mark.timeout(120)


async def test_greeting_then_answer_with_marks(short_speech: Utterance) -> None:
    engines = FakeEngines()
    async with serve_media(engines) as served:
        result = await run_call(
            CallOptions(url=served.url, speed=1.0,
                        custom_parameters={"call_id": "c1", "lead_name": "Jane Doe",
                                           "campaign": "spring"}),
            [WaitForAgent(timeout_s=15), short_speech, WaitForAgent(timeout_s=15), Hangup()],
        )
    obs = served.observer
    # Greeting first, with the lead's name, before any caller turn.
    assert engines.tts.texts[0][1].startswith("Hi Jane Doe, this is Alex")
    first_agent = obs.turns_of("c1")[0]
    assert first_agent.speaker == "agent" and first_agent.text.startswith("Hi Jane Doe")
    caller = obs.turns_of("c1", "caller")
    assert [t.text for t in caller] == ["I would like to hear more"]
    assert caller[0].confidence == pytest.approx(0.87)
    # The LLM saw the system prompt with the lead and goal, the greeting, then the caller.
    _, messages = engines.llm.requests[0]
    assert messages[0].role == "system" and "Jane Doe" in messages[0].content
    assert "free consultation" in messages[0].content
    assert [m.role for m in messages[1:]] == ["assistant", "user"]
    assert messages[-1].content == "I would like to hear more"
    answer = obs.turns_of("c1", "agent")[1]
    assert answer.text == engines.llm.reply and not answer.interrupted
    # the live state follows the conversation: speaking the greeting, listening, thinking, ...
    states = [state for call_id, state in obs.states if call_id == first_agent.call_id]
    assert states[0] == CallState.SPEAKING
    assert {CallState.LISTENING, CallState.THINKING, CallState.SPEAKING} <= set(states)
    assert all(a != b for a, b in itertools.pairwise(states)), "only changes reported"
    assert set(answer.latencies) == {"stt_s", "llm_first_token_s", "tts_first_audio_s",
                                     "voice_to_voice_s"}
    assert 0 <= answer.latencies["stt_s"] <= answer.latencies["voice_to_voice_s"]
    # The simulator got valid mu-law media, every message a whole 40 ms outbound frame, and echoed
    # every mark as played.
    assert result.agent_media
    assert {m.nbytes for m in result.agent_media} == {TWILIO_FORMAT.out_frame_bytes // 2}
    assert result.malformed == 0 and result.unknown_events == 0
    assert len(result.marks) >= 4 and all(m.played for m in result.marks)
    assert result.timeouts == ()
    assert obs.reason("c1") == "stop"
    assert served.manager.live_calls() == []


async def greeting_of(engines: FakeEngines, settings: Settings, params: dict[str, str]) -> str:
    """The agent's first turn, as the observer got it, on a call that hangs up after it."""
    async with serve_media(engines, settings) as served:
        await run_call(CallOptions(url=served.url, custom_parameters=params),
                       [WaitForAgent(timeout_s=15), Hangup()])
    first = served.observer.turns_of(params["call_id"])[0]
    assert first.speaker == "agent" and engines.tts.texts[0][1] == first.text
    return first.text


async def test_the_opening_a_dialed_call_carries_is_what_the_agent_says_first() -> None:
    campaign = CampaignSettings(business_name="Bright Roofs", opt_out_key="7",
                                callback_number="+12125550199")
    opening = campaign.render_opening(AgentSettings(), "+15005550006")
    twiml = stream_twiml("wss://voice.example.com/twilio/media", StreamParameters(
        call_id="o1", campaign="roofs", lead_name="Jane Doe", direction=Direction.OUTBOUND,
        opening=opening))
    root = ET.fromstring(twiml)
    params = {p.get("name") or "": p.get("value") or ""
              for p in root.iterfind("./Connect/Stream/Parameter")}
    text = await greeting_of(FakeEngines(), make_settings(), params)
    assert text == ("Hi Jane Doe, this is Alex, an automated assistant calling from Bright Roofs. "
                    "To stop these calls, say stop or press 7. To ask us not to call you again, "
                    "you can also call 2 1 2, 5 5 5, 0 1 9 9. Do you have a minute?")


async def test_without_a_campaign_the_config_opening_is_compliant() -> None:
    params = {"call_id": "s1", "lead_name": "Jane Doe"}
    plain = await greeting_of(FakeEngines(), make_settings(), params)
    assert "calling from Acme Solar. To stop these calls, say stop or press 9. Do you" in plain
    settings = Settings(calls=make_settings().calls.model_dump(),
                        agent={"business_name": "Bright Roofs", "callback_number": "+12125550199"})
    with_number = await greeting_of(FakeEngines(), settings, params)
    assert "calling from Bright Roofs. To stop these calls, say stop or press 9. " in with_number
    assert "call 2 1 2, 5 5 5, 0 1 9 9. Do you have a minute?" in with_number


async def test_inbound_call_waits_for_the_caller(short_speech: Utterance) -> None:
    engines = FakeEngines()
    async with serve_media(engines) as served:
        await run_call(
            CallOptions(url=served.url, custom_parameters={"call_id": "in1",
                                                           "direction": "inbound"}),
            [Pause(1.0), short_speech, WaitForAgent(timeout_s=15), Hangup()],
        )
    texts = [t for _, t in engines.tts.texts]
    assert not any(t.startswith("Hi ") for t in texts)
    assert served.observer.turns_of("in1", "agent")[0].text == engines.llm.reply


def test_payload_is_base64_mulaw() -> None:
    # A guard on the fake's output path: mu-law frames decode from base64 to 1 byte/sample.
    assert base64.b64decode(base64.b64encode(b"\xff" * 160)) == b"\xff" * 160

"""Barge-in: caller speech during playback clears Twilio's buffer, cancels the LLM, and the
context keeps only what the caller heard; backchannels and short noise do not interrupt."""

from __future__ import annotations

import pytest

from reautod.telephony.simulator import (
    BargeIn,
    CallOptions,
    Hangup,
    Utterance,
    WaitForAgent,
    run_call,
)
from tests.pipeline.conftest import make_settings, serve_media
from tests.pipeline.fakes import FakeEngines, FakeLLM

pytestmark = pytest.mark.timeout(120)

# Generous sanity bound only; the real figure is measured in bench/bench_e2e.py.
CLEAR_SANITY_BOUND_S = 1.5


def _clip(utterance: Utterance, seconds: float) -> Utterance:
    return Utterance(utterance.ulaw[: int(8000 * seconds)], utterance.label)


async def test_barge_in_clears_cancels_and_keeps_heard_part(
    short_speech: Utterance, long_speech: Utterance
) -> None:
    engines = FakeEngines(llm=FakeLLM(token_delay_s=0.25))
    settings = make_settings(min_barge_in_s=0.3)
    async with serve_media(engines, settings) as served:
        result = await run_call(
            CallOptions(url=served.url, custom_parameters={"call_id": "b1", "lead_name": "Jo"}),
            [WaitForAgent(timeout_s=15), short_speech,
             BargeIn(long_speech, after_s=0.3, timeout_s=15),
             WaitForAgent(timeout_s=20), Hangup()],
        )
    obs = served.observer
    assert len(result.barge_ins) == 1
    latency = result.barge_ins[0].clear_latency_s
    assert latency is not None and latency < CLEAR_SANITY_BOUND_S, latency
    # The LLM request being streamed when the caller cut in was closed early.
    assert engines.llm.outcomes[0] == "closed"
    # Only the first sentence had played (its mark echoed) before the clear.
    assert obs.barge_ins == [("b1", "That is great.")]
    interrupted = [t for t in obs.turns_of("b1", "agent") if t.interrupted]
    assert [t.text for t in interrupted] == ["That is great."]
    # The next LLM request holds the heard part, not the whole reply, then the new user turn.
    _, messages = engines.llm.requests[-1]
    assert [m.content for m in messages[-3:-1]] == ["I would like to hear more", "That is great."]
    assert messages[-1].role == "user"


async def test_backchannel_words_are_ignored(short_speech: Utterance) -> None:
    engines = FakeEngines(llm=FakeLLM(reply="Sure. " + "We install panels on homes. " * 4))

    async with serve_media(engines, make_settings(min_barge_in_s=0.3)) as served:
        engines.stt.texts["k2"] = "Mhm."
        engines.stt.delay_s = 0.3  # the check takes a while: the agent is held meanwhile
        result = await run_call(
            CallOptions(url=served.url, custom_parameters={"call_id": "k2",
                                                           "direction": "outbound"}),
            [BargeIn(_clip(short_speech, 0.9), after_s=1.0, timeout_s=15),
             WaitForAgent(timeout_s=20), Hangup()],
        )
    obs = served.observer
    assert result.clears == ()
    assert obs.barge_ins == []
    assert engines.llm.requests == []  # "mhm" never became a turn for the LLM
    # The greeting was held while the caller spoke (it ran dry before its end), then went on.
    [barge] = result.barge_ins
    assert barge.silenced_at is not None
    assert any(media.at > barge.silenced_at for media in result.agent_media)
    greeting = obs.turns_of("k2", "agent")[0]
    assert not greeting.interrupted and greeting.text.startswith("Hi there")
    assert served.manager.session("k2") is None


async def test_short_noise_does_not_interrupt(short_speech: Utterance) -> None:
    engines = FakeEngines()
    async with serve_media(engines, make_settings(min_barge_in_s=0.6)) as served:
        result = await run_call(
            CallOptions(url=served.url, custom_parameters={"call_id": "n1"}),
            [BargeIn(_clip(short_speech, 0.45), after_s=1.0, timeout_s=15),
             WaitForAgent(timeout_s=20), Hangup()],
        )
    assert result.clears == ()
    assert served.observer.barge_ins == []
    assert engines.llm.requests == []

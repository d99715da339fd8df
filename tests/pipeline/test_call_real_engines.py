"""A whole call on the real engines (random-weight test models): the words are noise, the flow
is real: greeting first, caller audio -> transcript -> LLM reply -> TTS audio as mu-law media,
marks echoed and tracked."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from reautod.config import Settings
from reautod.engines.registry import EngineSet
from reautod.telephony.simulator import CallOptions, Hangup, Utterance, WaitForAgent, run_call
from tests.pipeline.conftest import serve_media

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]


@pytest.fixture
async def engines(test_model_overrides: dict[str, Any]) -> AsyncIterator[EngineSet]:
    settings = Settings(**test_model_overrides, calls={"reprompt_after_silence_s": 30.0,
                                                       "hangup_after_silence_s": 60.0})
    engine_set = await EngineSet.load(settings)
    engine_set.require_ready()
    try:
        yield engine_set
    finally:
        await engine_set.close()


async def test_whole_call_on_test_models(
    engines: EngineSet, test_model_overrides: dict[str, Any], short_speech: Utterance,
    other_speech: Utterance,
) -> None:
    settings = Settings(**test_model_overrides, calls={"reprompt_after_silence_s": 30.0,
                                                       "hangup_after_silence_s": 60.0})
    async with serve_media(engines, settings) as served:
        result = await run_call(
            CallOptions(url=served.url, custom_parameters={"call_id": "r1", "lead_name": "Ann"}),
            [WaitForAgent(timeout_s=30), short_speech, WaitForAgent(timeout_s=30),
             other_speech, WaitForAgent(timeout_s=30), Hangup()],
        )
    obs = served.observer
    turns = obs.turns_of("r1")
    assert turns[0].speaker == "agent" and turns[0].text.startswith("Hi Ann")
    callers = obs.turns_of("r1", "caller")
    assert len(callers) >= 1
    assert all(t.confidence is not None and 0.0 <= t.confidence <= 1.0 for t in callers)
    answers = [t for t in obs.turns_of("r1", "agent")[1:] if t.error is None]
    assert answers, [t.wire() for t in turns]
    assert all("voice_to_voice_s" in t.latencies for t in answers)
    # What came back is mu-law media; every mark was echoed as played.
    assert result.agent_bytes_received > 8000  # more than a second of audio
    assert result.malformed == 0
    assert result.marks and all(m.echoed_at is not None and m.played for m in result.marks)
    assert obs.reason("r1") == "stop"

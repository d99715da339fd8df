"""Engine failures: a turn whose engine raises or stalls ends in the spoken apology, the failure
is reported, and the call goes on."""

from __future__ import annotations

import asyncio

import pytest

from reautod.config import Settings
from reautod.resilience.memory import AdmissionLimit, MemoryGuardedEngines
from reautod.resilience.recording import AlarmedRecording
from reautod.telephony.simulator import (
    CallOptions,
    CallResult,
    Hangup,
    Step,
    Utterance,
    WaitForAgent,
    run_call,
)
from reautod.topics import RecordingStopped
from tests.pipeline.conftest import Served, serve_media, wait_for
from tests.pipeline.fakes import FakeEngines, FakeLLM, FakeSTT, FakeTTS, engine_error
from tests.resilience.test_degradation import FullDisk

pytestmark = pytest.mark.timeout(120)

APOLOGY = "Sorry, I didn't catch that. Could you say it again?"


def _script(speech: Utterance) -> list[Step]:
    return [speech, WaitForAgent(timeout_s=15), speech, WaitForAgent(timeout_s=15), Hangup()]


async def _two_turns(engines: FakeEngines, speech: Utterance, call_id: str,
                     settings: Settings | None = None) -> tuple[Served, CallResult]:
    async with serve_media(engines, settings) as served:
        result = await run_call(
            CallOptions(url=served.url, custom_parameters={"call_id": call_id,
                                                           "direction": "inbound"}),
            _script(speech),
        )
    assert served.observer.reason(call_id) == "stop"
    return served, result


async def test_llm_error_apologises_and_the_call_goes_on(short_speech: Utterance) -> None:
    engines = FakeEngines(llm=FakeLLM(fail_with=engine_error("llm_failed"), fail_next=1))
    served, _ = await _two_turns(engines, short_speech, "f1")
    agent = served.observer.turns_of("f1", "agent")
    assert [(t.text, t.error) for t in agent] == [(APOLOGY, "llm_failed"),
                                                   (engines.llm.reply, None)]
    assert served.observer.started[0].engine_failures == 1


async def test_stalled_llm_times_out_into_an_apology(short_speech: Utterance) -> None:
    engines = FakeEngines(llm=FakeLLM(stall_next=1))
    settings = Settings(engines={"llm_timeout_s": 0.5},
                        calls={"reprompt_after_silence_s": 30.0, "hangup_after_silence_s": 60.0})
    served, _ = await _two_turns(engines, short_speech, "f2", settings)
    agent = served.observer.turns_of("f2", "agent")
    assert [(t.text, t.error) for t in agent] == [(APOLOGY, "llm_timeout"),
                                                   (engines.llm.reply, None)]
    assert engines.llm.outcomes[0] == "stalled"


async def test_stt_error_apologises(short_speech: Utterance) -> None:
    # Every transcription of the first utterance fails (a pause inside it may have started
    # several); once the apology is under way the engine recovers.
    engines = FakeEngines(stt=FakeSTT(fail_with=engine_error("stt_failed"), fail_next=1000))

    async def recover() -> None:
        await wait_for(lambda: any(t == APOLOGY for _, t in engines.tts.texts))
        engines.stt.fail_next = 0

    recovering = asyncio.create_task(recover())
    served, _ = await _two_turns(engines, short_speech, "f3")
    await recovering
    obs = served.observer
    callers = obs.turns_of("f3", "caller")
    assert [(t.error, t.confidence) for t in callers] == [("stt_failed", None),
                                                          (None, pytest.approx(0.87))]
    agent = obs.turns_of("f3", "agent")
    assert [t.text for t in agent] == [APOLOGY, engines.llm.reply]
    assert len(engines.llm.requests) == 1  # the lost turn never reached the LLM


async def test_tts_error_is_reported_and_the_call_goes_on(short_speech: Utterance) -> None:
    # The first reply's TTS and then its apology both fail: silence, but the call survives.
    engines = FakeEngines(tts=FakeTTS(fail_with=engine_error("tts_failed"), fail_next=2))
    served, result = await _two_turns(engines, short_speech, "f4")
    agent = served.observer.turns_of("f4", "agent")
    assert [(t.text, t.error) for t in agent] == [("", "tts_failed"), (engines.llm.reply, None)]
    assert result.agent_bytes_received > 0


async def test_out_of_memory_and_a_full_disk_cost_the_turn_and_the_recording_not_the_call(
    short_speech: Utterance,
) -> None:
    # The LLM runs out of GPU memory on the first reply (torch's message, a plain RuntimeError
    # from an engine that does not wrap it) and the disk is full from the first frame.
    engines = FakeEngines(llm=FakeLLM(fail_with=RuntimeError(
        "CUDA out of memory. Tried to allocate 64.00 MiB"), fail_next=1))
    limit = AdmissionLimit(lambda: 8, recover_s=300)
    live: list[int] = []
    guarded = MemoryGuardedEngines(
        engines, lambda engine: live.append(limit.out_of_memory(engine, live_calls=1)))
    alarms: list[RecordingStopped] = []
    disk = FullDisk()
    async with serve_media(guarded, recording=AlarmedRecording(disk, alarms.append),
                           admission=limit) as served:
        await run_call(CallOptions(url=served.url, custom_parameters={
            "call_id": "f5", "direction": "inbound"}), _script(short_speech))
    assert served.observer.reason("f5") == "stop"
    agent = served.observer.turns_of("f5", "agent")
    # (the recording's announcement opens the first reply: recording was on when it started)
    failed, answered = agent[-2:]
    assert failed.error == "engine_out_of_memory" and failed.text.endswith(APOLOGY)
    assert (answered.text, answered.error) == (engines.llm.reply, None)
    assert live == [1] and limit.limit() == 1  # the box now takes one call at most
    assert [a.reason for a in alarms] == ["disk_full"] and disk.sink.writes == 1

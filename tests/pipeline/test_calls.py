"""CallManager and call hygiene: concurrency without cross-talk, silence, max duration, DTMF,
refusals, operator hang-up, drain, and no task left behind."""

from __future__ import annotations

import asyncio
import threading

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from reautod.errors import NotFoundError
from reautod.telephony.simulator import (
    CallOptions,
    Dtmf,
    Hangup,
    Pause,
    Utterance,
    WaitForAgent,
    run_call,
)
from tests.pipeline.conftest import make_settings, serve_media, wait_for
from tests.pipeline.fakes import FakeEngines, FakeRecording
from tests.pipeline.rawclient import closed, open_call

pytestmark = pytest.mark.timeout(180)


def uptime() -> str:
    with open("/proc/loadavg") as f:
        return f.read()

REPROMPT = "Are you still there?"
GOODBYE = "Thanks for your time. Goodbye!"


async def test_five_simultaneous_calls_do_not_cross_talk(short_speech: Utterance) -> None:
    engines = FakeEngines()
    ids = [f"m{i}" for i in range(5)]
    for i, call_id in enumerate(ids):
        engines.stt.texts[call_id] = f"caller number {i} speaking"
    async with serve_media(engines, make_settings(max_concurrent=5)) as served:
        results = await asyncio.gather(*(
            run_call(CallOptions(url=served.url, custom_parameters={
                "call_id": call_id, "lead_name": f"Lead{i}"}),
                [WaitForAgent(timeout_s=30), short_speech, WaitForAgent(timeout_s=30), Hangup()])
            for i, call_id in enumerate(ids)
        ))
    obs = served.observer
    for i, (call_id, result) in enumerate(zip(ids, results, strict=True)):
        # Media with another call's streamSid would count as malformed in the simulator.
        assert result.malformed == 0 and result.agent_bytes_received > 0
        assert result.marks and all(m.played for m in result.marks)
        assert obs.turns_of(call_id, "agent")[0].text.startswith(f"Hi Lead{i},")
        debug = (result.timeouts, [t.wire() for t in obs.turns_of(call_id)],
                 [c for c in engines.stt.calls if c[0] == call_id], uptime())
        assert [t.text for t in obs.turns_of(call_id, "caller")] == [

            f"caller number {i} speaking"], debug
        requests = [m for c, m in engines.llm.requests if c == call_id]
        assert len(requests) == 1
        said = " ".join(m.content for m in requests[0] if m.role != "system")
        assert f"number {i} " in said and f"Lead{i}" in said
        assert not any(f"number {j} " in said for j in range(5) if j != i)
        assert obs.reason(call_id) == "stop"


async def test_a_replys_later_pieces_let_waiting_callers_go_first(
        short_speech: Utterance) -> None:
    engines = FakeEngines()
    engines.stt.texts["p1"] = "tell me more"
    async with serve_media(engines, make_settings()) as served:
        await run_call(CallOptions(url=served.url, custom_parameters={"call_id": "p1"}),
                       [WaitForAgent(timeout_s=30), short_speech, WaitForAgent(timeout_s=30),
                        Hangup()])
    asked = dict(zip((t for _, t in engines.tts.texts), engines.tts.ahead, strict=True))
    # the caller waits in silence for the first piece; the next ones are made while it plays
    assert asked == {served.observer.turns_of("p1", "agent")[0].text: False,
                     "That is great.": False,
                     "Let me tell you about our free consultation.": True,
                     "It takes an hour.": True}, asked


async def test_silence_reprompts_then_hangs_up_politely() -> None:
    engines = FakeEngines()
    settings = make_settings(reprompt_after_silence_s=1.0, hangup_after_silence_s=2.5)
    async with serve_media(engines, settings) as served:
        result = await run_call(
            CallOptions(url=served.url, custom_parameters={"call_id": "s1"}),
            [WaitForAgent(timeout_s=15), Pause(15.0), Hangup()],
        )
    texts = [t for _, t in engines.tts.texts]
    assert texts[1:] == [REPROMPT, GOODBYE]
    assert served.observer.reason("s1") == "silence"
    assert result.ended_by != "script"  # the server hung up, not the simulated caller
    assert result.marks and result.marks[-1].played  # the goodbye was heard before hang-up


async def test_scripted_lines_are_synthesized_once_for_all_calls() -> None:
    engines = FakeEngines()
    settings = make_settings(reprompt_after_silence_s=1.0, hangup_after_silence_s=2.5)
    async with serve_media(engines, settings) as served:
        results = []
        for call_id in ("c1", "c2"):
            results.append(await run_call(
                CallOptions(url=served.url, custom_parameters={"call_id": call_id}),
                [WaitForAgent(timeout_s=15), Pause(15.0), Hangup()],
            ))
    spoken = [(c, t) for c, t in engines.tts.texts if t in (REPROMPT, GOODBYE)]
    assert spoken == [("c1", REPROMPT), ("c1", GOODBYE)]  # the second call hit the cache
    for call_id, result in zip(("c1", "c2"), results, strict=True):
        agent = [t.text for t in served.observer.turns_of(call_id, "agent")]
        assert agent[1:] == [REPROMPT, GOODBYE]
        assert served.observer.reason(call_id) == "silence"
        assert result.marks[-1].played  # the cached goodbye was heard before hang-up
    # the same audio both times: greeting + re-prompt + goodbye lengths match call for call
    assert results[0].agent_bytes_received == results[1].agent_bytes_received
    assert served.manager.line_cache.hits == 2


async def test_max_duration_ends_the_call_politely() -> None:
    engines = FakeEngines()
    async with serve_media(engines, make_settings(max_duration_s=1.0)) as served:
        await run_call(CallOptions(url=served.url, custom_parameters={"call_id": "d1"}),
                       [Pause(15.0), Hangup()])
    assert served.observer.reason("d1") == "max_duration"
    agent = served.observer.turns_of("d1", "agent")
    assert agent[0].interrupted  # the greeting was cut for the goodbye
    assert agent[-1].text == GOODBYE


async def test_dtmf_reaches_the_agent() -> None:
    engines = FakeEngines()
    async with serve_media(engines) as served:
        await run_call(
            CallOptions(url=served.url, custom_parameters={"call_id": "t1",
                                                           "direction": "inbound"}),
            [Pause(0.5), Dtmf("5"), WaitForAgent(timeout_s=15), Hangup()],
        )
    _, messages = engines.llm.requests[0]
    assert messages[-1].content == "[pressed 5]"
    assert served.observer.dtmf == [("t1", "5")]  # telephony hears it too (opt-out key)
    assert served.observer.turns_of("t1", "agent")[0].text == engines.llm.reply


async def test_the_recording_gets_both_directions_as_they_crossed_the_socket(
        short_speech: Utterance) -> None:
    engines = FakeEngines()
    recording = FakeRecording()
    async with serve_media(engines, recording=recording) as served:
        result = await run_call(
            CallOptions(url=served.url, custom_parameters={"call_id": "r1"}),
            [WaitForAgent(timeout_s=15), short_speech, WaitForAgent(timeout_s=15), Hangup()],
        )
        await wait_for(lambda: served.observer.reason("r1") is not None)
    sink = recording.sinks["r1"]
    assert recording.rates == {"r1": 8000} and sink.closed == 1 and sink.outcomes[0].keep
    frame = 160 * 2  # 20 ms of 8 kHz PCM16: what each media message carries
    # every caller frame Twilio sent, except at most the few in flight when the call ended
    assert result.frames_sent * frame - 5 * frame <= len(sink.caller_pcm) \
        <= result.frames_sent * frame
    # the agent track is what was sent: the greeting and the answer, all of it received
    assert len(sink.agent_pcm) == result.agent_bytes_received * 2 > 0
    assert len(served.observer.turns_of("r1", "agent")) == 2


async def test_missing_engines_refuse_the_call_with_the_reason() -> None:
    engines = FakeEngines(missing="stt: run `reautoctl models pull`")
    async with serve_media(engines) as served:
        ws = await open_call(served.url, "x1")
        code, reason = await closed(ws)
    assert code == 1013
    assert "engines not ready" in reason and "models pull" in reason
    assert served.observer.started == [] and served.manager.refused["engines"] == 1


async def test_failed_upgrade_validation_refuses_the_socket() -> None:
    seen: list[str | None] = []

    def validator(ws: object) -> bool:
        seen.append(getattr(ws, "headers").get("x-twilio-signature"))  # noqa: B009
        return False

    async with serve_media(FakeEngines(), upgrade_validator=validator) as served:
        with pytest.raises(InvalidStatus) as refused:
            await connect(served.url, additional_headers={"X-Twilio-Signature": "bogus"})
    assert refused.value.response.status_code == 403
    assert seen == ["bogus"]


async def test_capacity_refuses_the_extra_call() -> None:
    async with serve_media(FakeEngines(), make_settings(max_concurrent=1)) as served:
        first = await open_call(served.url, "cap1")
        await wait_for(lambda: served.manager.session("cap1") is not None)
        second = await open_call(served.url, "cap2")
        code, reason = await closed(second)
        assert code == 1013 and "at capacity" in reason
        await first.close()


async def test_operator_hangup_says_goodbye_and_ends() -> None:
    engines = FakeEngines()
    async with serve_media(engines) as served:
        ws = await open_call(served.url, "op1", direction="inbound")
        await wait_for(lambda: served.manager.session("op1") is not None)
        with pytest.raises(NotFoundError):
            await served.manager.hangup("nope")
        await served.manager.hangup("op1")
        code, _ = await closed(ws, timeout=20)
    assert served.observer.reason("op1") == "operator"
    assert [t for _, t in engines.tts.texts] == [GOODBYE]
    assert code == 1000


async def test_drain_refuses_new_calls_and_ends_live_ones() -> None:
    engines = FakeEngines()
    async with serve_media(engines) as served:
        live = await open_call(served.url, "dr1", direction="inbound")
        await wait_for(lambda: served.manager.session("dr1") is not None)
        await served.manager.drain(0.3)
        assert served.manager.live_calls() == []
        assert served.observer.reason("dr1") == "shutdown"
        late = await open_call(served.url, "dr2")
        code, reason = await closed(late)
        assert code == 1013 and "not accepting" in reason
        await live.close()


async def test_no_tasks_or_threads_leak_after_calls(
    short_speech: Utterance, long_speech: Utterance
) -> None:
    engines = FakeEngines()
    async with serve_media(engines, make_settings(min_barge_in_s=0.3)) as served:
        baseline = asyncio.all_tasks()
        threads = threading.active_count()
        await run_call(
            CallOptions(url=served.url, custom_parameters={"call_id": "l1"}),
            [WaitForAgent(timeout_s=15), short_speech, Pause(0.3),
             long_speech, WaitForAgent(timeout_s=20), Hangup()],
        )
        ws = await open_call(served.url, "l2")  # and one that just vanishes
        await wait_for(lambda: served.manager.session("l2") is not None)
        ws.transport.abort()
        await wait_for(lambda: served.observer.reason("l2") is not None)

        def leftovers() -> set[asyncio.Task[object]]:
            current = asyncio.current_task()
            return {t for t in asyncio.all_tasks() - baseline if t is not current}

        await wait_for(lambda: not leftovers(), timeout=10)
        await wait_for(lambda: threading.active_count() <= threads, timeout=10)
    assert served.observer.reason("l1") == "stop"

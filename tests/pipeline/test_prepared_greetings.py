"""Greetings synthesized before the call connects: the CallManager's PreparedGreetings store, and
whole calls that find (or do not find) their greeting ready when the stream starts."""

from __future__ import annotations

import asyncio

import pytest

from reautod.pipeline.greetings import PreparedGreetings
from reautod.telephony.simulator import CallOptions, Hangup, WaitForAgent, run_call
from tests.pipeline.conftest import SPEECH_DIR, call_method, control_method, serve_media
from tests.pipeline.fakes import FakeEngines, FakeTTS, engine_error

pytestmark = pytest.mark.timeout(60)


def greeting_tasks(call_id: str) -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name() == f"greeting-{call_id}"]


async def settle(task: asyncio.Task[object]) -> None:
    await asyncio.wait({task}, timeout=5)


async def test_a_prepared_greeting_is_played_without_asking_tts_again() -> None:
    engines = FakeEngines()
    async with serve_media(engines) as served:
        served.manager.prepare_greeting("p1", lead_name="Jane Doe", opening=None,
                                        expires_in_s=30)
        (task,) = greeting_tasks("p1")
        await settle(task)
        assert task.done() and task.exception() is None and len(engines.tts.texts) == 1
        result = await run_call(
            CallOptions(url=served.url, custom_parameters={"call_id": "p1",
                                                           "lead_name": "Jane Doe"}),
            [WaitForAgent(timeout_s=15), Hangup()])
        outcomes = served.manager.greetings.outcomes
    greeting = served.observer.turns_of("p1", "agent")[0]
    assert greeting.text.startswith("Hi Jane Doe, this is Alex")
    # the engine was asked once, before the call connected, and never again for it
    assert engines.tts.texts == [("p1", greeting.text)]
    assert result.agent_media and outcomes == {"used": 1}
    assert len(served.manager.greetings) == 0


async def test_another_text_or_none_prepared_falls_back_to_synthesizing_at_start() -> None:
    engines = FakeEngines()
    async with serve_media(engines) as served:
        # prepared for another lead name: not this call's greeting
        served.manager.prepare_greeting("m1", lead_name="Someone Else", opening=None,
                                        expires_in_s=30)
        await run_call(CallOptions(url=served.url, custom_parameters={"call_id": "m1",
                                                                      "lead_name": "Jane Doe"}),
                       [WaitForAgent(timeout_s=15), Hangup()])
        await run_call(CallOptions(url=served.url, custom_parameters={"call_id": "a1",
                                                                      "lead_name": "Jane Doe"}),
                       [WaitForAgent(timeout_s=15), Hangup()])
        outcomes = dict(served.manager.greetings.outcomes)
    for call_id in ("m1", "a1"):
        greeting = served.observer.turns_of(call_id, "agent")[0]
        assert greeting.text.startswith("Hi Jane Doe") and not greeting.interrupted
        assert (call_id, greeting.text) in engines.tts.texts
    assert engines.tts.texts[0][1].startswith("Hi Someone Else")
    assert len(engines.tts.texts) == 3 and outcomes == {"mismatched": 1}


async def test_a_failed_prepared_greeting_is_synthesized_again_at_start() -> None:
    engines = FakeEngines(tts=FakeTTS(fail_with=engine_error("tts_failed"), fail_next=1))
    async with serve_media(engines) as served:
        served.manager.prepare_greeting("f1", lead_name="", opening=None, expires_in_s=30)
        (task,) = greeting_tasks("f1")
        await settle(task)
        await run_call(CallOptions(url=served.url, custom_parameters={"call_id": "f1"}),
                       [WaitForAgent(timeout_s=15), Hangup()])
        outcomes = dict(served.manager.greetings.outcomes)
    greeting = served.observer.turns_of("f1", "agent")[0]
    assert greeting.text.startswith("Hi there, this is Alex")
    assert [text for _, text in engines.tts.texts] == [greeting.text, greeting.text]
    assert outcomes == {"failed": 1}


async def test_a_campaign_opening_prepared_at_dial_is_the_one_the_call_speaks() -> None:
    engines = FakeEngines()
    opening = "Hello {lead_name}, {agent_name} here for Bright Roofs. Say stop to stop."
    async with serve_media(engines) as served:
        # what the dialer passes: the stream parameters it puts in the TwiML
        served.manager.prepare_greeting("o1", lead_name="Jane", opening=opening,
                                        expires_in_s=30)
        await run_call(CallOptions(url=served.url, custom_parameters={
            "call_id": "o1", "lead_name": "Jane", "opening": opening}),
            [WaitForAgent(timeout_s=15), Hangup()])
        outcomes = dict(served.manager.greetings.outcomes)
    greeting = served.observer.turns_of("o1", "agent")[0]
    assert greeting.text == "Hello Jane, Alex here for Bright Roofs. Say stop to stop."
    assert engines.tts.texts == [("o1", greeting.text)] and outcomes == {"used": 1}


async def test_a_call_that_never_connects_leaves_no_audio_and_no_task() -> None:
    tts = FakeTTS(delay_s=5)  # still synthesizing when the call is given up
    store = PreparedGreetings(max_entries=4)
    store.prepare("n1", "Hi there.", tts, timeout_s=10, expires_in_s=0.2)  # never connects
    store.prepare("n2", "Hi there.", tts, timeout_s=10, expires_in_s=30)
    expiring, dropped = greeting_tasks("n1")[0], greeting_tasks("n2")[0]
    assert store.drop("n2") is True and store.drop("n2") is False  # busy: the dialer drops it
    await settle(dropped)
    assert dropped.cancelled() and "n2" not in store
    await asyncio.sleep(0.4)
    await settle(expiring)
    assert expiring.cancelled() and "n1" not in store and len(store) == 0
    assert store.take("n1", "Hi there.") is None  # a stream after all: synthesized then
    assert store.outcomes == {"dropped": 1, "expired": 1}
    assert greeting_tasks("n1") == [] and greeting_tasks("n2") == []


async def test_the_store_is_bounded_and_close_cancels_what_it_holds() -> None:
    tts = FakeTTS(delay_s=5)
    store = PreparedGreetings(max_entries=2)
    for call_id in ("b1", "b2", "b3"):
        store.prepare(call_id, "Hi there.", tts, timeout_s=10, expires_in_s=30)
    oldest = greeting_tasks("b1")[0]
    held = greeting_tasks("b2") + greeting_tasks("b3")
    assert len(store) == 2 and "b1" not in store
    await settle(oldest)
    assert oldest.cancelled() and store.outcomes == {"evicted": 1}
    # preparing one call twice replaces its entry (and its task), it does not grow the store
    store.prepare("b3", "Hello again.", tts, timeout_s=10, expires_in_s=30)
    assert len(store) == 2
    held += greeting_tasks("b3")
    await store.close()
    assert len(store) == 0 and all(t.cancelled() for t in held)
    assert [t for t in asyncio.all_tasks() if t.get_name().startswith("greeting-b")] == []


async def test_the_manager_drops_its_greetings_when_it_closes() -> None:
    engines = FakeEngines(tts=FakeTTS(delay_s=5))
    async with serve_media(engines) as served:
        served.manager.prepare_greeting("c1", lead_name="", opening=None, expires_in_s=30)
        (task,) = greeting_tasks("c1")
    assert task.cancelled() and len(served.manager.greetings) == 0


async def test_a_simulated_call_finds_its_greeting_ready() -> None:
    audio = SPEECH_DIR / "ps_librivox_sense_and_sensibility_0880.wav"
    if not audio.exists():
        pytest.skip("speech fixture not present")
    engines = FakeEngines()
    async with serve_media(engines) as served:
        out = await call_method(control_method(served, "call.simulate"),
                                lead_audio=[str(audio)])
        outcomes = dict(served.manager.greetings.outcomes)
    greeting = out["turns"][0]["text"]
    assert greeting.startswith("Hi Sam Simulated")
    assert [t for t in engines.tts.texts if t[1] == greeting] == [(out["call_id"], greeting)]
    assert outcomes == {"used": 1} and len(served.manager.greetings) == 0

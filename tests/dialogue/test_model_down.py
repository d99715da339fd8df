"""LLM slow or down: the llm circuit notices it across calls, refuses at once while open (no
waiting out timeouts), and agents take the playbook's scripted path instead of silence: greet,
take a callback time, end politely. When the model is back a probe closes the circuit (and
`down()`, which the agents read per turn, is False again). In-process: the fake LLM of the pipeline tests, the dialogue rig."""

from __future__ import annotations

import asyncio

import pytest

from reautod.dialogue.agent import AgentFactory
from reautod.dialogue.replies import After
from reautod.engines.base import ChatMessage
from reautod.errors import EngineError
from reautod.resilience.breaker import BreakerOpenError
from reautod.resilience.llm import GuardedLanguageModel
from reautod.resilience.service import Resilience
from reautod.resilience.settings import ResilienceSettings, ServicePolicy
from tests.dialogue.conftest import Rig
from tests.pipeline.fakes import FakeLLM

HELLO = [ChatMessage("user", "hello")]


def guarded(llm: FakeLLM, *, slow_s: float = 5.0, recovery_s: float = 0.5) -> GuardedLanguageModel:
    policy = ServicePolicy(failures=2, recovery_s=recovery_s, retries=0)
    return GuardedLanguageModel(llm, Resilience(ResilienceSettings(llm=policy)), slow_s=slow_s)


async def read(model: GuardedLanguageModel) -> str:
    try:
        return "".join([c.text async for c in model.stream_chat(HELLO, call_id="c")])
    finally:
        await asyncio.sleep(0.01)  # the verdict is recorded on a task of its own


async def test_failures_open_the_circuit_and_requests_are_refused_at_once() -> None:
    fake = FakeLLM(reply="hi there", fail_with=EngineError("llm failed"), fail_next=2)
    model = guarded(fake)
    for _ in range(2):
        with pytest.raises(EngineError):
            await read(model)
    assert model.down()
    with pytest.raises(BreakerOpenError):
        await read(model)
    assert len(fake.requests) == 2  # the refused one never reached the engine

    await asyncio.sleep(0.55)
    assert not model.down()  # half-open: the next request is the probe
    assert await read(model) == "hi there"
    assert model.resilience.state("llm") == "closed"


async def test_slow_first_tokens_count_as_failures_and_barge_ins_do_not() -> None:
    fake = FakeLLM(reply="slow words", token_delay_s=0.1)
    model = guarded(fake, slow_s=0.05)
    await read(model)
    assert model.resilience.state("llm") == "closed"  # one slow reply is not an outage
    stream = model.stream_chat(HELLO, call_id="c")  # a barge-in: closed before any token
    await stream.aclose()
    await read(model)
    assert model.down()


async def test_the_agent_takes_the_scripted_path_while_the_model_is_down(rig: Rig) -> None:
    fake = FakeLLM(fail_with=EngineError("llm failed"), fail_next=2)
    model = guarded(fake, recovery_s=60)  # (recovery: the test above)
    factory = AgentFactory(records=rig.records, effects=rig.effects, observer=rig.observer,
                           window=rig.factory._window, clock=rig.factory._clock,
                           model_down=model.down)
    for _ in range(2):
        with pytest.raises(EngineError):
            await read(model)

    agent = await rig.agent("real-estate-sellers", factory)
    greeting = await agent.opening()
    assert greeting.lines and greeting.llm is None
    asked = await agent.respond("Who is this again?")
    assert asked.llm is None and asked.text.endswith("When would be a better time to call you back?")
    proposed = await agent.respond("Tomorrow at 10 in the morning.")
    assert proposed.llm is None and proposed.text.endswith("Does that work?")
    done = await agent.respond("Yes.")
    assert done.after is After.HANG_UP and done.text.startswith("Great, I'll call you")
    assert len(rig.effects.callbacks) == 1

    quiet = await rig.agent("real-estate-sellers", factory)
    await quiet.opening()
    replies = [await quiet.respond("Hmm.") for _ in range(3)]
    assert [r.after for r in replies] == [After.LISTEN, After.LISTEN, After.HANG_UP]
    assert replies[-1].text.endswith("Thanks for your time. Goodbye!")
    assert all(r.llm is None for r in replies)


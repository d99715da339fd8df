"""The qualifying agent across a crash: its checkpoint put into a fresh agent of the call gives
the same stage, facts, score and history, and the conversation goes on from that stage."""

from __future__ import annotations

import json

from reautod.config import AgentSettings
from reautod.conversation import CallContext, CallerTurn, Generate, Resumed
from reautod.dialogue.checkpoint import agent_checkpoint, restore_agent
from reautod.dialogue.seam import AgentConversation, PlaybookConversations
from reautod.pipeline.agent import AgentConversations
from tests.dialogue.conftest import Rig
from tests.dialogue.test_seam import FakeSource


async def test_a_restored_agent_goes_on_from_the_checkpointed_stage(rig: Rig) -> None:
    before = await rig.agent("real-estate-sellers")
    await before.opening()
    for said in ("Yes.", "Yes, I'm the owner.", "As soon as possible."):
        await before.respond(said)
    checkpoint = json.loads(json.dumps(agent_checkpoint(before)))  # as the store keeps it
    assert checkpoint["stage"] == before.state.stage != before.playbook.start
    assert checkpoint["version"] and checkpoint["facts"]

    after = await rig.agent("real-estate-sellers")
    call = CallContext(call_id="c1", lead_name="Dana Smith", campaign="sellers", goal=None,
                       direction="outbound")
    conversation = AgentConversation(call, after,
                                     AgentConversations(lambda: AgentSettings()).start(call))
    conversation.restore(Resumed(history=(), line="Sorry, we got cut off.", next_turn=8,
                                 state=checkpoint))
    assert after.state.stage == before.state.stage
    assert after.state.fact_values() == before.state.fact_values()
    assert after.state.score == before.state.score
    assert [(s.role, s.text) for s in after.state.history] == \
        [(s.role, s.text) for s in before.state.history]
    assert conversation.checkpoint()["stage"] == before.state.stage
    # the next answer is the checkpointed stage's, not the opening's
    await conversation.reply(CallerTurn("To downsize.", 0.9))
    await before.respond("To downsize.")
    assert after.state.stage == before.state.stage


async def test_a_stage_the_playbook_lacks_leaves_the_start(rig: Rig) -> None:
    agent = await rig.agent("real-estate-sellers")
    restore_agent(agent, {"stage": "no-such-stage", "turns": 2})
    assert agent.state.stage == agent.playbook.start and agent.state.turns == 2


async def test_a_deferred_conversation_restores_what_it_resolves_to(rig: Rig) -> None:
    call = CallContext(call_id="c1", lead_name="Dana Smith", campaign="sellers", goal=None,
                       direction="outbound")
    before = await rig.agent("real-estate-sellers")
    await before.opening()
    await before.respond("Yes.")
    resumed = Resumed(history=(("agent", "Hi Dana."), ("caller", "Yes.")),
                      line="Sorry, we got cut off.", next_turn=3,
                      state=agent_checkpoint(before))
    agent = await rig.agent("real-estate-sellers")
    with_agent = PlaybookConversations(FakeSource(agents={"sellers": agent}),
                                       AgentConversations(lambda: AgentSettings())).start(call)
    with_agent.restore(resumed)
    assert with_agent.checkpoint() == {}  # not resolved yet
    await with_agent.reply(CallerTurn("Yes, I'm the owner.", 0.9))
    assert with_agent.checkpoint()["stage"] == agent.state.stage
    assert [s.text for s in agent.state.history][:2] == [s.text for s in before.state.history][:2]

    plain = PlaybookConversations(FakeSource(), AgentConversations(lambda: AgentSettings()))
    without = plain.start(call)
    without.restore(resumed)
    reply = await without.reply(CallerTurn("Go on.", 0.9))
    part = reply.parts[0]
    assert isinstance(part, Generate)
    # the history once, not twice (restored into the fallback before it was resolved to it)
    assert [m.content for m in part.messages[1:]] == ["Hi Dana.", "Yes. Go on."]

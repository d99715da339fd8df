"""The qualifying agent across a crash: its checkpoint put into a fresh agent of the call gives
the same stage, facts, score and history, and the conversation goes on from that stage."""

from __future__ import annotations

import json

from reautod.config import AgentSettings
from reautod.conversation import CallContext, CallerTurn, Resumed
from reautod.dialogue.checkpoint import agent_checkpoint, restore_agent
from reautod.dialogue.seam import AgentConversation
from reautod.pipeline.agent import AgentConversations
from tests.dialogue.conftest import Rig


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

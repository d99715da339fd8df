"""The qualifying agent's part of a call's checkpoint (reautod.recovery): where the conversation
was (stage, what was said and learned, score, playbook version and variant), as JSON-ready data,
and putting it back into a fresh agent of the same call after a crash.

A checkpoint of another playbook version is still restored (the call goes on with the version
this daemon loaded, which the call's variant assignment already recorded); a stage that version
lacks leaves the agent at its start stage. Scheduling state (offered slots, a pending
confirmation) is not carried: the caller is asked again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from reautod.dialogue.agent import CallAgent
from reautod.dialogue.state import Learned, Said

log = logging.getLogger(__name__)


def agent_checkpoint(agent: CallAgent) -> dict[str, Any]:
    """The agent's state as the checkpoint keeps it."""
    state = agent.state
    snapshot = agent.snapshot()
    return {
        "stage": state.stage, "score": state.score, "qualified": snapshot.qualified,
        "playbook": snapshot.playbook, "version": snapshot.version, "variant": snapshot.variant,
        "turns": state.turns, "stage_turns": state.stage_turns, "objections": state.objections,
        "outcome": snapshot.outcome,
        "facts": {name: {"value": f.value, "evidence": f.evidence, "turn": f.turn,
                         "stage": f.stage} for name, f in state.facts.items()},
        "history": [[s.role, s.text, s.stage] for s in state.history],
    }


def restore_agent(agent: CallAgent, checkpoint: Mapping[str, Any]) -> None:
    """Put a checkpoint back into a fresh agent of the same call (see the module docstring)."""
    state = agent.state
    stage = checkpoint.get("stage")
    if isinstance(stage, str) and stage in agent.playbook.stages:
        state.stage = stage
    elif stage is not None:
        log.warning("call %s: checkpoint stage %r is not in playbook version %s; going on from "
                    "the start", agent.call.call_id, stage, agent.loaded.version)
    state.turns = int(checkpoint.get("turns", 0))
    state.stage_turns = int(checkpoint.get("stage_turns", 0))
    state.objections = int(checkpoint.get("objections", 0))
    for name, fact in dict(checkpoint.get("facts", {})).items():
        state.facts[name] = Learned(fact["value"], fact["evidence"], int(fact["turn"]),
                                    fact["stage"])
    state.history = [Said("caller" if role == "caller" else "agent", text, said_in)
                     for role, text, said_in in checkpoint.get("history", [])]
    agent.rescore()

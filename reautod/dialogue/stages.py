"""The stage machine's rule: which exit of a stage applies now (pure).

Exits are tried in the order written; the first whose every condition holds is taken. On a
caller turn the turn's intents are known; on entering a stage (no turn) intent and turn-count
conditions do not hold, so only the state (facts, score, booking, callback) can move the call on
at once. That lets a stage be passed through when it has nothing left to do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from reautod.dialogue.playbook import Condition, Exit, Stage
from reautod.dialogue.scoring import Score
from reautod.dialogue.vocabulary import Intent

MAX_CHAINED = 4  # stages entered in one reply, at most (a loop in a playbook stops here)


@dataclass(frozen=True)
class Situation:
    """What exits are decided on."""

    intents: frozenset[Intent] | None  # None: entering the stage, no caller turn
    facts: Mapping[str, str | float]
    score: Score
    objections: int
    stage_turns: int
    booked: bool
    callback: bool


def holds(cond: Condition, s: Situation) -> bool:
    """Whether every condition given holds in `s`."""
    checks: list[bool] = []
    if cond.intent is not None:
        checks.append(s.intents is not None and bool(s.intents & set(cond.intent)))
    if cond.turns_at_least is not None:
        checks.append(s.intents is not None and s.stage_turns >= cond.turns_at_least)
    if cond.learned is not None:
        checks.append(all(f in s.facts for f in cond.learned))
    if cond.fact is not None:
        checks.append(all(f in s.facts and str(s.facts[f]) == str(v) for f, v in cond.fact.items()))
    if cond.qualified is not None:
        checks.append(s.score.qualified == cond.qualified)
    if cond.disqualified is not None:
        checks.append((s.score.disqualified_by is not None) == cond.disqualified)
    if cond.score_at_least is not None:
        checks.append(s.score.score >= cond.score_at_least)
    if cond.score_below is not None:
        checks.append(s.score.score < cond.score_below)
    if cond.objections_at_least is not None:
        checks.append(s.objections >= cond.objections_at_least)
    if cond.booked is not None:
        checks.append(s.booked == cond.booked)
    if cond.callback is not None:
        checks.append(s.callback == cond.callback)
    return all(checks)


def exit_for(stage: Stage, s: Situation) -> Exit | None:
    """The first exit of `stage` that applies in `s`, or None to stay."""
    return next((ex for ex in stage.exits if holds(ex.when, s)), None)


def describe(cond: Condition) -> str:
    """The condition as a transition reason: "intent=affirm, learned=timeline"."""
    parts = []
    for name, value in cond.model_dump(exclude_none=True).items():
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        elif isinstance(value, dict):
            value = ",".join(f"{k}={v}" for k, v in value.items())
        parts.append(f"{name}={value}")
    return ", ".join(parts) or "always"

"""How a call's outcome is settled from what happened in it (pure)."""

from __future__ import annotations

from reautod.dialogue.replies import EndCause
from reautod.dialogue.scoring import Score
from reautod.dialogue.state import CallState
from reautod.dialogue.vocabulary import Outcome


def scored_outcome(state: CallState, score: Score) -> Outcome:
    """A booking, else a callback, else qualified or not by the score."""
    if state.booking is not None:
        return Outcome.BOOKED
    if state.callback_at is not None:
        return Outcome.CALLBACK
    return Outcome.QUALIFIED if score.qualified else Outcome.NOT_QUALIFIED


def outcome_for(cause: EndCause, state: CallState, score: Score,
                not_interested: bool) -> tuple[Outcome, str]:
    """The outcome and disposition of a call that ended without the agent deciding one."""
    if cause in (EndCause.KEYPAD_OPT_OUT, EndCause.SPOKEN_OPT_OUT):
        return Outcome.OPTED_OUT, f"opted out ({cause.value}) during {state.stage}"
    if cause is EndCause.VOICEMAIL:
        return Outcome.VOICEMAIL, "answering machine"
    scored = scored_outcome(state, score)
    if state.transferred_to is not None:
        return scored, f"transferred to a person during {state.stage} ({score.score}/100)"
    if scored in (Outcome.BOOKED, Outcome.CALLBACK, Outcome.QUALIFIED):
        return scored, f"{scored.value} ({cause.value} during {state.stage})"
    if cause is EndCause.FAILED:
        return Outcome.FAILED, f"the call failed during {state.stage}"
    if not_interested:
        return Outcome.NOT_INTERESTED, f"not interested ({cause.value} during {state.stage})"
    learned = ", ".join(sorted(state.facts)) or "nothing"
    return Outcome.NOT_QUALIFIED, f"{cause.value} during {state.stage}; learned {learned}"

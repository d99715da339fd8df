"""What to do with an answering-machine-detection result, and how an attempt ended.

Per campaign: on a machine, either hang up or leave a voicemail once the greeting has ended
(which needs `machine_detection=DetectMessageEnd`, so Twilio reports machine_end_* after the
beep). Fax lines are hung up on. "unknown" is treated as a person: the agent's opening names the
business and offers the opt-out either way, and hanging up on a person is the worse mistake.
"""

from __future__ import annotations

from enum import StrEnum

from reautod.campaigns.pacing import Outcome
from reautod.store.enums import CallStatus


class MachinePolicy(StrEnum):
    HANG_UP = "hang_up"
    VOICEMAIL = "voicemail"


class AmdAction(StrEnum):
    CONTINUE = "continue"  # a person (or unknown): the conversation goes on
    HANG_UP = "hang_up"
    LEAVE_VOICEMAIL = "leave_voicemail"  # redirect to twiml.voicemail_twiml
    WAIT = "wait"  # a machine whose greeting is still playing (should not happen with async
    # DetectMessageEnd; kept so an unexpected machine_start never starts a voicemail early)


KNOWN_ANSWERED_BY = frozenset({
    "human", "machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other",
    "fax", "unknown",
})


def amd_action(answered_by: str, policy: MachinePolicy) -> AmdAction:
    """The action for Twilio's AnsweredBy value under the campaign's machine policy."""
    value = answered_by.strip().lower()
    if value == "fax":
        return AmdAction.HANG_UP
    if not value.startswith("machine"):
        return AmdAction.CONTINUE  # human, unknown, or a value Twilio adds later
    if policy is MachinePolicy.HANG_UP:
        return AmdAction.HANG_UP
    return AmdAction.LEAVE_VOICEMAIL if value.startswith("machine_end") else AmdAction.WAIT


def attempt_outcome(final_status: CallStatus, answered_by: str | None,
                    opted_out: bool = False) -> Outcome:
    """How an attempt ended, for retries, from the final call status and the AMD result."""
    if opted_out:
        return Outcome.OPTED_OUT
    by_status = {
        CallStatus.BUSY: Outcome.BUSY,
        CallStatus.NO_ANSWER: Outcome.NO_ANSWER,
        CallStatus.FAILED: Outcome.FAILED,
        CallStatus.CANCELED: Outcome.CANCELED,
    }
    if final_status in by_status:
        return by_status[final_status]
    if answered_by is not None and (answered_by.startswith("machine") or answered_by == "fax"):
        return Outcome.VOICEMAIL
    return Outcome.ANSWERED

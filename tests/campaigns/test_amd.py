"""AMD decisions and attempt outcomes."""

from __future__ import annotations

import pytest

from reautod.campaigns.amd import (
    KNOWN_ANSWERED_BY,
    AmdAction,
    MachinePolicy,
    amd_action,
    attempt_outcome,
)
from reautod.campaigns.pacing import Outcome
from reautod.store.enums import CallStatus


@pytest.mark.parametrize("answered_by,policy,action", [
    ("human", MachinePolicy.VOICEMAIL, AmdAction.CONTINUE),
    ("unknown", MachinePolicy.HANG_UP, AmdAction.CONTINUE),
    ("something_new", MachinePolicy.HANG_UP, AmdAction.CONTINUE),
    ("fax", MachinePolicy.VOICEMAIL, AmdAction.HANG_UP),
    ("machine_start", MachinePolicy.HANG_UP, AmdAction.HANG_UP),
    ("machine_start", MachinePolicy.VOICEMAIL, AmdAction.WAIT),
    ("machine_end_beep", MachinePolicy.VOICEMAIL, AmdAction.LEAVE_VOICEMAIL),
    ("machine_end_silence", MachinePolicy.VOICEMAIL, AmdAction.LEAVE_VOICEMAIL),
    ("Machine_End_Other", MachinePolicy.VOICEMAIL, AmdAction.LEAVE_VOICEMAIL),
    ("machine_end_other", MachinePolicy.HANG_UP, AmdAction.HANG_UP),
])
def test_amd_action(answered_by: str, policy: MachinePolicy, action: AmdAction) -> None:
    assert amd_action(answered_by, policy) is action


def test_every_known_value_has_an_action() -> None:
    for value in KNOWN_ANSWERED_BY:
        for policy in MachinePolicy:
            assert amd_action(value, policy) in AmdAction


@pytest.mark.parametrize("status,answered_by,opted_out,outcome", [
    (CallStatus.BUSY, None, False, Outcome.BUSY),
    (CallStatus.NO_ANSWER, None, False, Outcome.NO_ANSWER),
    (CallStatus.FAILED, None, False, Outcome.FAILED),
    (CallStatus.CANCELED, None, False, Outcome.CANCELED),
    (CallStatus.COMPLETED, "machine_end_beep", False, Outcome.VOICEMAIL),
    (CallStatus.COMPLETED, "human", False, Outcome.ANSWERED),
    (CallStatus.COMPLETED, None, False, Outcome.ANSWERED),
    (CallStatus.COMPLETED, "human", True, Outcome.OPTED_OUT),
])
def test_attempt_outcome(status: CallStatus, answered_by: str | None, opted_out: bool,
                         outcome: Outcome) -> None:
    assert attempt_outcome(status, answered_by, opted_out) is outcome

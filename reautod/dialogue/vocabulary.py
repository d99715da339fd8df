"""The closed words of the playbook language: intents, tools, outcomes."""

from __future__ import annotations

from enum import StrEnum


class Intent(StrEnum):
    """What a caller turn does, as far as the stage machine cares (one turn may do several)."""

    AFFIRM = "affirm"
    DENY = "deny"
    NOT_INTERESTED = "not_interested"
    WRONG_PERSON = "wrong_person"
    CALLBACK_REQUEST = "callback_request"
    HUMAN_REQUEST = "human_request"
    OPT_OUT = "opt_out"
    ROBOT_QUESTION = "robot_question"
    FAQ = "faq"
    OBJECTION = "objection"
    TIME = "time"  # mentions a day or a time
    UNKNOWN = "unknown"  # none of the above


class Tool(StrEnum):
    BOOK_APPOINTMENT = "book_appointment"
    SCHEDULE_CALLBACK = "schedule_callback"
    TRANSFER_TO_HUMAN = "transfer_to_human"
    END_CALL = "end_call"
    OPT_OUT = "opt_out"
    UPDATE_LEAD = "update_lead"
    SET_SCORE = "set_score"


class Outcome(StrEnum):
    """How a call ended for the business; the values are `store.enums.CallOutcome` values."""

    QUALIFIED = "qualified"
    NOT_QUALIFIED = "not_qualified"
    BOOKED = "booked"
    CALLBACK = "callback"
    NOT_INTERESTED = "not_interested"
    OPTED_OUT = "opted_out"
    VOICEMAIL = "voicemail"
    WRONG_PERSON = "wrong_person"
    FAILED = "failed"


# Outcomes a stage exit may end the call with; the others come from tools or from outside.
EXIT_OUTCOMES = frozenset({
    Outcome.QUALIFIED, Outcome.NOT_QUALIFIED, Outcome.NOT_INTERESTED, Outcome.WRONG_PERSON,
})

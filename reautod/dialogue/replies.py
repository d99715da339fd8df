"""The in-call agent's answers to the pipeline: what to say, and what to do once it is said."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from reautod.dialogue.cache import CachedLine
from reautod.dialogue.vocabulary import Outcome
from reautod.engines.base import ChatMessage


class After(StrEnum):
    """What the pipeline does once the reply has played."""

    LISTEN = "listen"
    HANG_UP = "hang_up"
    TRANSFER = "transfer"


class EndCause(StrEnum):
    """Why a call ended, as the pipeline tells `CallAgent.end`."""

    AGENT = "agent"  # the agent's hang-up or transfer, after its reply played
    CALLER_HUNG_UP = "caller_hung_up"
    KEYPAD_OPT_OUT = "keypad_opt_out"  # the pipeline's DTMF safety net
    SPOKEN_OPT_OUT = "spoken_opt_out"  # the pipeline's phrase safety net, before the agent
    VOICEMAIL = "voicemail"
    FAILED = "failed"  # engines or transport failed
    TIME_LIMIT = "time_limit"


@dataclass(frozen=True)
class Line:
    """A fixed line: `cache_key` is set for approved lines (library, compliance), whose audio
    the response cache may hold (`cached`); other lines are scripted with the call's values.
    `shared`: the same words on many calls without a cache key (the opening's opt-out offer,
    which depends on the campaign), so the pipeline's line cache may keep their audio.
    `commitment`: the caller must hear it whole (a booking or callback confirmed): if they cut in
    before it finished, it is said again at the start of the next reply."""

    text: str
    cache_key: str | None = None
    cached: CachedLine | None = None
    shared: bool = False
    commitment: bool = False


@dataclass(frozen=True)
class LlmRequest:
    """Generate the rest of the reply from `messages`; say `fallback` if the model fails or
    produces nothing usable, and report what was heard with `CallAgent.heard`."""

    messages: tuple[ChatMessage, ...]
    max_tokens: int
    fallback: str
    sentences: int | None = None  # say at most this many of its sentences (an acknowledgement)
    model: str | None = None  # the named model that writes it (the stage's); None: the reply model


@dataclass(frozen=True)
class AgentReply:
    """Say `lines` in order, then the model's words if `llm` is set, then `question` word for
    word; then do `after`.

    `question` is the stage's approved next question after a model reply: the model only
    acknowledges what the caller said, and whatever it writes (even nothing, or a question of
    its own) the caller hears the approved question after it."""

    id: int
    stage: str
    lines: tuple[Line, ...] = ()
    llm: LlmRequest | None = None
    after: After = After.LISTEN
    reason: str | None = None  # why the call ends or transfers
    transfer_to: str | None = None  # E.164, with After.TRANSFER
    question: Line | None = None  # said after the model's words (only with `llm`)

    @property
    def text(self) -> str:
        """The fixed part of the reply, as one utterance."""
        fixed = self.lines if self.question is None else (*self.lines, self.question)
        return " ".join(line.text for line in fixed)


@dataclass(frozen=True)
class CallResult:
    """How the call ended for the business (goes into CallEnded: outcome, disposition)."""

    outcome: Outcome
    disposition: str
    score: int | None
    stage: str
    booking_ref: str | None = None
    callback_at: datetime | None = None


@dataclass(frozen=True)
class AgentSnapshot:
    """For the TUI and `reautoctl call`: where the conversation is."""

    stage: str
    score: int | None
    qualified: bool
    facts: dict[str, str | float] = field(default_factory=dict)
    objections: int = 0
    turns: int = 0
    pending: str | None = None  # a confirmation the agent waits for, in words
    outcome: str | None = None
    playbook: str = ""
    version: str = ""
    variant: str = ""

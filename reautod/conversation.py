"""The conversation seam: what the call pipeline asks the dialogue, and what the dialogue answers.

A leaf both sides import. The pipeline (reautod.pipeline) hears the caller, speaks and keeps
time; it knows nothing of prompts, stages or tools. The dialogue decides what is said and what
happens next; it knows nothing of audio, frames or Twilio. Everything between them is here.

One `Conversation` per call, made by the `Conversations` factory the daemon gives the pipeline.
The pipeline calls it on the event loop, one call at a time (never two methods at once on one
conversation), in the call's order:

    opening()                      once, when the call connects
    reply(turn) / keypress(digit)  for each finished caller turn / key press
    silence()                      the caller has been quiet for calls.reprompt_after_silence_s
    failure(code)                  an engine (or the conversation itself) failed a reply
    goodbye(reason)                the call is ending for a reason of the pipeline's own
    played(outcome)                after each reply: what the caller actually heard of it
    ended(reason)                  once, last: the call is over

`Conversations.opening(call)` is asked earlier, before a dialed call is placed, so the opening's
audio can be synthesized while the phone rings.

Playback truth: a reply is not "said" when it is generated but when the phone confirms it was
played. `played` is called once per reply, when its last audio has been heard or the caller cut
in, and always before the next `reply`/`keypress` call: what the next reply is built from already
holds what the caller heard of the previous one.

Implementations: `reautod.pipeline.agent.DialogueAgent` (one system prompt per call, today's
agent) and the qualifying agent of reautod.dialogue (playbooks, a stage machine, tools).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, Protocol, runtime_checkable

from reautod.engines.base import AudioChunk, ChatMessage

REPLY_TIMEOUT_S = 10.0  # a reply is decided within this, or the caller hears `failure`
END_TIMEOUT_S = 5.0  # `ended` gets this long


@dataclass(frozen=True)
class Resumed:
    """A call picked up again on a new media stream after the old one died with the daemon (a
    crash): what was said so far (`history`, oldest first, as the caller heard it), the line the
    agent says first, the index of the call's next turn, and the conversation's own checkpoint
    (`Checkpointed.checkpoint`, {} when it keeps none)."""

    history: tuple[tuple[Literal["caller", "agent"], str], ...]
    line: str
    next_turn: int
    state: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CallContext:
    """Who a call is with, as the call was placed (or answered): enough to start a conversation."""

    call_id: str  # the pipeline's call id (a UUID hex from the dialer, `sim-...` when simulated)
    lead_name: str  # "" when unknown; the real name: mask it before logging
    campaign: str | None
    goal: str | None  # the campaign's goal, None: the configured default
    direction: Literal["outbound", "inbound"]
    opening: str | None = None  # the campaign's rendered opening (reautod.pipeline.opening)
    resumed: Resumed | None = None  # set when the call continues after a crash


@dataclass(frozen=True)
class CallerTurn:
    """One finished caller turn: what the caller said (never empty), and the STT's confidence 0..1.

    Turns the STT lost reach the conversation as `failure("stt_...")`, never as a turn."""

    text: str
    confidence: float


@dataclass(frozen=True)
class Line:
    """A fixed, approved line: spoken word for word.

    `audio`: the line already synthesized (any sample rate; the pipeline resamples), e.g. an
    FAQ answer prepared when the playbook was loaded; None: the pipeline synthesizes `text`.
    `shared`: the same words are said on many calls (a re-prompt, a goodbye, an approved
    objection answer), so the pipeline keeps their audio in its cache shared by every call,
    keyed by the exact text, and synthesizes them once per daemon. Leave it False for lines
    holding a lead's data (their name, their appointment time).
    """

    text: str
    audio: tuple[AudioChunk, ...] | None = None
    shared: bool = False


@dataclass(frozen=True)
class Generate:
    """A reply the LLM writes from `messages` (system prompt first), streamed into speech
    sentence by sentence as it is written. The pipeline owns the request: its timeout
    (engines.llm_timeout_s), its cancellation when the caller cuts in, and the apology if it
    fails or writes nothing (code llm_empty). `max_tokens` None: engines.llm_max_tokens.
    `sentences`: say at most this many sentences of what it writes, then close the request; a
    sentence the model leaves unfinished at the end is not said (None: everything written).
    `model`: the named model that writes it (`[llm_models] local` or an `[llm_pool]`
    endpoint's model, reautod.engines.switch); None: the reply model. A name no model has fails
    the part like any LLM failure (the apology, code unavailable)."""

    messages: tuple[ChatMessage, ...]
    max_tokens: int | None = None
    sentences: int | None = None
    model: str | None = None


Say = Line | Generate


@dataclass(frozen=True)
class Listen:
    """After the reply, wait for the caller (the default)."""


@dataclass(frozen=True)
class HangUp:
    """After the reply, end the call; `reason` is the call's end reason (store, events)."""

    reason: str


@dataclass(frozen=True)
class Transfer:
    """After the reply, hand the call to a human through `CallHandoff.transfer`.

    `to`: an E.164 number, or None for the campaign's own transfer number."""

    to: str | None = None
    reason: str = "transferred"


Action = Listen | HangUp | Transfer


@dataclass(frozen=True)
class Reply:
    """What to say, in order, and what happens once the caller has heard all of it.

    `parts` are spoken back to back as one reply (e.g. an approved line, then an LLM reply).
    `then` runs only if the whole reply played without an engine failure. A reply whose `then`
    is HangUp is the call's last: the caller cannot cut in on it, and what they say while it
    plays is recorded but not answered. Any other reply a caller cut in on is answered again
    (the conversation sees their turn), its `then` dropped; a failed
    reply ends in the apology and the call listens. `then` of a goodbye is ignored (the call
    ends after a goodbye whatever it says). No parts: nothing is said and `then` runs at once
    (`Reply((), HangUp("opted_out"))` ends the call without a word). `ref` is the
    conversation's own handle on the reply (e.g. its id); the pipeline only hands it back.
    """

    parts: tuple[Say, ...]
    then: Action = field(default_factory=Listen)
    ref: object = None

    @classmethod
    def line(cls, text: str, *, shared: bool = False, then: Action | None = None) -> Reply:
        """One approved line, e.g. `Reply.line("Goodbye!", then=HangUp("not_interested"))`."""
        return cls((Line(text, shared=shared),), then if then is not None else Listen())


class ReplyCause(StrEnum):
    """Why the pipeline asked for a reply."""

    OPENING = "opening"
    TURN = "turn"
    KEYPRESS = "keypress"
    SILENCE = "silence"
    FAILURE = "failure"  # an STT failure lost the caller's turn
    GOODBYE = "goodbye"


@dataclass(frozen=True)
class Played:
    """What became of one reply, told to `Conversation.played` once it is over.

    `said`: all the text that was spoken into the call for it (LLM text as generated, lines as
    given, an apology that replaced a failed part); `heard`: what the caller heard of it, from
    the phone's playback confirmations: equal to `said` unless `interrupted`, then the part
    before the caller cut in ("" when nothing had played). `error`: the engine failure code
    (stt_failed, llm_timeout, tts_failed, conversation_failed, ...) when the reply failed and
    ended in the apology.
    """

    reply: Reply
    cause: ReplyCause
    said: str
    heard: str
    interrupted: bool
    error: str | None = None


class Conversation(Protocol):
    """The dialogue of one call. Methods are called one at a time on the event loop: the sync
    ones must return at once (no I/O); the async ones may consult a model, a calendar or the
    store, and are cancelled (CancelledError) when the caller cuts in or the call ends.

    A method deciding a reply (`opening`, `reply`, `keypress`, `silence`, `goodbye`) that
    raises ReautodError makes the caller hear `failure(err.code)` and the call go on (any other
    exception: code conversation_failed, logged with its traceback); one that takes longer than
    REPLY_TIMEOUT_S is cancelled the same way (code conversation_timeout). What `played` or
    `ended` raise is logged; the call goes on or ends regardless.
    """

    async def opening(self) -> Reply | None:
        """The first thing said when the call connects (outbound and inbound), or None to wait
        for the caller. Called once, as the call connects. If its first part is a Line whose
        text is what `Conversations.opening` gave for this call, the audio prepared while the
        phone rang is played."""
        ...

    async def reply(self, turn: CallerTurn) -> Reply:
        """Answer one finished caller turn. Not called while a goodbye or a reply that ends the
        call is being said. A caller who hangs up right after speaking still has that last
        turn answered, before `ended`, though nothing can be said to them: what the answer
        decided (an opt-out, a booking confirmed) counts; its parts and `then` are dropped."""
        ...

    async def keypress(self, digit: str) -> Reply | None:
        """The caller pressed a key (0-9, *, #); None: no reply. (Telephony sees every key too,
        through the CallObserver, and acts on the opt-out key whatever this returns.)"""
        ...

    def silence(self) -> Reply:
        """The caller said nothing for calls.reprompt_after_silence_s: a re-prompt. If the silence
        goes on to calls.hangup_after_silence_s, the pipeline ends the call with goodbye("silence")."""
        ...

    def failure(self, code: str) -> Line:
        """Said when a reply failed (code: stt_failed, llm_timeout, tts_failed, ...): it must not
        need the engine that failed, so it is a Line (mark it shared so its audio is cached)."""
        ...

    def goodbye(self, reason: str) -> Line:
        """The last line before the pipeline hangs up for `reason`: silence, max_duration,
        operator, shutdown. The call ends once it has played (or after a grace period)."""
        ...

    def played(self, outcome: Played) -> None:
        """Reply `outcome.reply` is over: record what the caller heard (the context of the next
        reply). Called once per reply, including openings, re-prompts and apologies."""
        ...

    async def ended(self, reason: str) -> None:
        """The call is over, for `reason`: stop (the caller hung up), socket_closed, silence,
        max_duration, operator, shutdown, a HangUp's or Transfer's reason, `protocol: ...` or
        `failed: ...`. Called once, last (settle the outcome, write what was learned); given
        END_TIMEOUT_S."""
        ...


class Conversations(Protocol):
    """Makes the conversation of each call (the daemon's, from campaigns and playbooks)."""

    def start(self, call: CallContext) -> Conversation:
        """A new conversation for a call that has connected: cheap, no I/O."""
        ...

    def opening(self, call: CallContext) -> Line | None:
        """The Line a call with this context will open with, known before the call is placed,
        so its audio is synthesized while the phone rings; None when it cannot be known ahead.
        Pure: no side effects (the call may never connect)."""
        ...


@runtime_checkable
class OpeningsAhead(Protocol):
    """`Conversations` whose openings are decided by the call's own dialogue (a playbook agent:
    its variant, the lead's data), which takes store reads: decided before the call is placed,
    so the opening's audio is made while the phone rings."""

    async def expected_opening(self, call: CallContext) -> Line | None:
        """What `opening()` of this call's conversation will say first, as one Line (the
        `spoken_together` lines of its opening reply); None when it cannot be known. The
        conversation `start(call)` makes later says exactly that."""
        ...

    def forget(self, call_id: str) -> None:
        """The call will not connect: drop what `expected_opening` kept for it."""
        ...


def spoken_together(parts: tuple[Say, ...]) -> tuple[Line, ...]:
    """The leading Lines of a reply that have no audio of their own: an opening's audio made
    ahead covers them as one piece."""
    lines: list[Line] = []
    for part in parts:
        if not isinstance(part, Line) or part.audio is not None:
            break
        lines.append(part)
    return tuple(lines)


class CallHandoff(Protocol):
    """What telephony does for the pipeline when a reply's `then` is Transfer: implemented by the
    part that owns Twilio calls, injected into the pipeline (which never imports telephony)."""

    async def transfer(self, call_id: str, to: str | None) -> None:
        """Bridge call `call_id` to a human (`to`, or the campaign's transfer number). On success
        the call's media stream ends (the pipeline ends the call with the Transfer's reason).
        Raise ReautodError (e.g. code no_transfer) when it cannot: the caller hears
        `failure(code)` and the conversation goes on."""
        ...


@runtime_checkable
class Checkpointed(Protocol):
    """A conversation that can be carried across a crash (optional, beside `Conversation`):
    `checkpoint` is its state as JSON-ready data, asked after each turn; `restore` puts a
    resumed call's history and checkpoint back before its first reply."""

    def checkpoint(self) -> dict[str, Any]: ...

    def restore(self, resumed: Resumed) -> None: ...


def state_of(conversation: Conversation) -> dict[str, Any]:
    """The conversation's checkpoint ({} when it keeps none)."""
    return conversation.checkpoint() if isinstance(conversation, Checkpointed) else {}

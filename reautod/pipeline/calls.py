"""CallManager: the one owner of every live call, admission, operator hang-up and drain.

Each call runs in a CallSession over its media (Twilio's stream: `run_call`), with the engines,
VAD and Smart Turn models, line cache and prepared greetings shared by every call, and a
conversation from the daemon's `Conversations` (default: today's DialogueAgent per call).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol

from fastapi import WebSocket
from pipecat.audio.turn.base_turn_analyzer import BaseTurnAnalyzer

from reautod.call_events import CallInfo, CallObserver, SafeObserver, TurnRecord
from reautod.call_recording import CallRecording
from reautod.config import Settings
from reautod.conversation import (
    CallContext,
    CallHandoff,
    Conversations,
    OpeningsAhead,
    state_of,
)
from reautod.engines.base import LanguageModel, SpeechToText, TextToSpeech
from reautod.errors import NotFoundError, OverloadedError, ReautodError, UnavailableError
from reautod.live_settings import LiveSettings
from reautod.pipeline.agent import AgentConversations
from reautod.pipeline.greetings import PreparedGreetings
from reautod.pipeline.line_cache import LineAudioCache
from reautod.pipeline.media import CallMedia
from reautod.pipeline.session import CallSession
from reautod.pipeline.smart_turn import SmartTurnModel
from reautod.pipeline.twilio_media import StartInfo, TwilioMedia
from reautod.pipeline.vad import SileroModel

log = logging.getLogger(__name__)

DRAIN_GOODBYE_S = 12.0  # after the grace: time for the goodbye to play before the hard close
# Greetings prepared for calls placed but not yet connected: a ringing call per live-call slot,
# twice over for calls whose end has not been reported yet, and a few for manual dials.
MIN_PREPARED_GREETINGS = 8


class Engines(Protocol):
    """What the pipeline needs of the engine set (reautod.engines.registry.EngineSet)."""

    @property
    def stt(self) -> SpeechToText: ...

    @property
    def llm(self) -> LanguageModel: ...

    @property
    def tts(self) -> TextToSpeech: ...

    def require_ready(self) -> None:
        """Raise UnavailableError naming what is missing and how to fix it."""
        ...


class Admission(Protocol):
    """How many live calls the box takes now (reautod.resilience.memory.AdmissionLimit: lowered
    after an engine ran out of memory); without one, `calls.max_concurrent`."""

    def limit(self) -> int: ...


class CallCheckpoints(Protocol):
    """Where calls are carried across a crash (reautod.recovery)."""

    async def resume(self, call: CallContext) -> CallContext:
        """`call` as its checkpoint left it (with `resumed` set); NotFoundError when it has none
        or cannot be resumed any more."""
        ...

    def give_back(self, call_id: str) -> None:
        """A resumed call was refused before it ran: its checkpoint is resumable again."""
        ...

    def watch(self, call: CallContext, state: Callable[[], dict[str, Any]]) -> None:
        """A call is starting: read `state()` (the conversation's checkpoint) whenever its
        checkpoint is written, until it ends."""
        ...


def _state(session: CallSession) -> dict[str, Any]:
    return state_of(session.conversation) if session.conversation is not None else {}


class _TappedObserver(SafeObserver):
    """The daemon's observer, plus per-call taps (a simulated call collecting its own turns)."""

    def __init__(self, inner: CallObserver) -> None:
        super().__init__(inner)
        self.taps: dict[str, list[TurnRecord]] = {}

    def on_turn(self, turn: TurnRecord) -> None:
        tap = self.taps.get(turn.call_id)
        if tap is not None:
            tap.append(turn)
        super().on_turn(turn)


class CallManager:
    """Admits calls, runs each in its own CallSession, and ends them on request or shutdown."""

    def __init__(self, engines: Engines, settings: Settings | LiveSettings,
                 observer: CallObserver,
                 recording: CallRecording | None = None, *,
                 conversations: Conversations | None = None,
                 handoff: CallHandoff | None = None,
                 admission: Admission | None = None,
                 checkpoints: CallCheckpoints | None = None) -> None:
        self._engines = engines
        self._admission = admission
        # the holder, not a copy: each new call takes the settings in effect when it starts
        self._live = settings if isinstance(settings, LiveSettings) else LiveSettings(settings)
        self._observer = _TappedObserver(observer)
        self._recording = recording  # None: no call is recorded
        # What each call says: the daemon's conversations (playbooks), else one prompt per call.
        self._conversations = conversations or AgentConversations(lambda: self.settings.agent)
        self._handoff = handoff  # None: a transfer cannot happen (the caller hears why)
        self._checkpoints = checkpoints  # None: calls are not carried across a crash
        self.line_cache = LineAudioCache()  # scripted lines, synthesized once per daemon
        self.greetings = PreparedGreetings(  # dialed calls' greetings, made while they ring
            max(MIN_PREPARED_GREETINGS, 2 * self.settings.calls.max_concurrent))
        self._sessions: dict[str, CallSession] = {}
        self._tasks: dict[str, asyncio.Task[str]] = {}
        self._smart_turn = SmartTurnModel()
        self._vad = SileroModel()
        self.accepting = True
        self.refused: Counter[str] = Counter()
        self.input_warnings: Counter[str] = Counter()
        self.ended: Counter[str] = Counter()

    @property
    def settings(self) -> Settings:
        """The settings in effect now (a reload changes them for the calls that start after)."""
        return self._live.current

    @property
    def engines(self) -> Engines:
        return self._engines

    async def start(self) -> None:
        """Load the shared VAD and Smart Turn models now (else the first call does)."""
        await self._vad.load()
        await self._smart_turn.load()

    def tap_turns(self, call_id: str) -> list[TurnRecord]:
        """Collect the turns of call `call_id` (until `untap`); for simulated calls."""
        return self._observer.taps.setdefault(call_id, [])

    def untap(self, call_id: str) -> None:
        self._observer.taps.pop(call_id, None)

    def live_calls(self) -> list[CallInfo]:
        return [s.info for s in self._sessions.values()]

    def session(self, call_id: str) -> CallSession | None:
        return self._sessions.get(call_id)

    def prepare_greeting(self, call_id: str, *, lead_name: str, opening: str | None,
                         expires_in_s: float, campaign: str | None = None) -> None:
        """Start synthesizing the opening of an outbound call about to be placed, for its
        stream's `start` (customParameters call_id, lead_name, opening, no goal) to find ready.
        Dropped by `drop_greeting`, or after `expires_in_s` if the call never connects."""
        line = self._conversations.opening(CallContext(
            call_id=call_id, lead_name=lead_name, campaign=campaign, goal=None,
            direction="outbound", opening=opening))
        if line is None or line.audio is not None:
            return  # nothing to say first, or its audio is ready already
        self.greetings.prepare(call_id, line.text, self._engines.tts,
                               timeout_s=self.settings.engines.tts_timeout_s,
                               expires_in_s=expires_in_s)

    async def prepare_opening(self, call_id: str, *, lead_name: str, expires_in_s: float,
                              campaign: str | None = None) -> None:
        """`prepare_greeting` for a call whose placing can wait for its opening to be decided
        (a simulated call): a campaign's playbook agent is found now and its own opening is
        synthesized, the one the call then plays."""
        call = CallContext(call_id=call_id, lead_name=lead_name, campaign=campaign, goal=None,
                           direction="outbound")
        if not isinstance(self._conversations, OpeningsAhead):
            self.prepare_greeting(call_id, lead_name=lead_name, opening=None,
                                  expires_in_s=expires_in_s, campaign=campaign)
            return
        try:
            line = await self._conversations.expected_opening(call)
        except ReautodError as err:  # the store or a playbook: the opening is made when said
            log.warning("call %s: opening not decided ahead (%s)", call_id, err.code)
            return
        if line is not None and line.audio is None:
            self.greetings.prepare(call_id, line.text, self._engines.tts,
                                   timeout_s=self.settings.engines.tts_timeout_s,
                                   expires_in_s=expires_in_s)

    def drop_greeting(self, call_id: str) -> None:
        """The call ended without a stream (or could not be placed): forget its greeting."""
        self.greetings.drop(call_id)
        if isinstance(self._conversations, OpeningsAhead):
            self._conversations.forget(call_id)

    def check_admission(self) -> None:
        """Raise why a new call cannot be taken now (draining, engines missing, full)."""
        if not self.accepting:
            self.refused["draining"] += 1
            raise UnavailableError("not accepting calls (shutting down)", code="draining")
        try:
            self._engines.require_ready()
        except UnavailableError:
            self.refused["engines"] += 1
            raise
        configured = self.settings.calls.max_concurrent
        limit = configured if self._admission is None else min(configured,
                                                                 self._admission.limit())
        if len(self._sessions) >= limit:
            self.refused["capacity"] += 1
            lowered = "" if limit == configured else f", lowered to {limit} after out of memory"
            raise OverloadedError(f"at capacity: {len(self._sessions)} live calls "
                                  f"(calls.max_concurrent = {configured}{lowered})")

    async def run_call(self, websocket: WebSocket, start: StartInfo,
                       input_warnings: dict[str, int] | None = None) -> str:
        """Run one Twilio call on an accepted media socket whose `start` was read; returns why
        it ended. A `resume` stream continues the call from its checkpoint."""
        context = start.context()
        if start.resume:
            if self._checkpoints is None:
                raise NotFoundError(f"call {start.call_id} cannot be resumed: no checkpoints")
            self.check_admission()  # before the checkpoint is taken
            context = await self._checkpoints.resume(context)
        try:
            return await self.run(TwilioMedia(websocket, start, input_warnings), context)
        except ReautodError:
            if context.resumed is not None and self._checkpoints is not None:
                self._checkpoints.give_back(context.call_id)  # refused: resumable again
            raise

    async def run(self, media: CallMedia, call: CallContext) -> str:
        """Run one call over `media` (any CallMedia: Twilio's stream, a browser, a sound card)
        to its end; returns why it ended. Raises why it was refused (`check_admission`)."""
        self.check_admission()
        if call.call_id in self._sessions:
            raise UnavailableError(f"call {call.call_id} is already live", code="duplicate_call")
        turn_analyzer: BaseTurnAnalyzer | None = await self._smart_turn.analyzer()
        vad = await self._vad.analyzer()
        session = CallSession(
            media, call,
            stt=self._engines.stt, llm=self._engines.llm, tts=self._engines.tts,
            settings=self.settings, observer=self._observer,
            conversations=self._conversations, turn_analyzer=turn_analyzer, vad=vad,
            recording=self._recording,
            line_cache=self.line_cache,
            greetings=self.greetings,
            handoff=self._handoff,
        )
        self._sessions[call.call_id] = session
        if self._checkpoints is not None:
            self._checkpoints.watch(call, lambda: _state(session))
        task = asyncio.create_task(session.run(), name=f"session-{call.call_id}")
        self._tasks[call.call_id] = task
        try:
            # Shielded: the socket handler being cancelled (server shutdown) must still let
            # the session tear down in order; close() cancels the task itself.
            reason = await asyncio.shield(task)
        finally:
            if task.done():
                self._forget(call.call_id, session)
            else:
                task.add_done_callback(lambda _t: self._forget(call.call_id, session))
        return reason

    def _forget(self, call_id: str, session: CallSession) -> None:
        if self._sessions.get(call_id) is session:
            del self._sessions[call_id]
            self._tasks.pop(call_id, None)
            self.input_warnings.update(session.info.input_warnings)

    async def hangup(self, call_id: str) -> None:
        """Politely end one live call: the agent says goodbye, then hangs up."""
        session = self._sessions.get(call_id)
        if session is None:
            raise NotFoundError(f"no live call {call_id}")
        await session.hangup("operator")

    async def drain(self, grace_s: float) -> None:
        """Stop accepting; let calls finish for `grace_s`; then end the rest politely."""
        self.accepting = False
        await self._wait_all(grace_s)
        if not self._tasks:
            return
        log.info("drain: %d call(s) still live after %.0fs, saying goodbye", len(self._tasks),
                 grace_s)
        for session in list(self._sessions.values()):
            await session.hangup("shutdown")
        await self._wait_all(DRAIN_GOODBYE_S)
        for session in list(self._sessions.values()):
            session.end("shutdown")
        await self._wait_all(DRAIN_GOODBYE_S)

    async def close(self) -> None:
        """End every call now and release the shared models."""
        self.accepting = False
        for session in list(self._sessions.values()):
            session.end("shutdown")
        await self._wait_all(DRAIN_GOODBYE_S)
        for task in list(self._tasks.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.greetings.close()
        await self._smart_turn.close()
        await self._vad.close()

    async def _wait_all(self, timeout: float) -> None:
        tasks = list(self._tasks.values())
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

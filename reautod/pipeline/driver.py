"""The pipeline's end of the conversation seam: asks the call's Conversation what to say, acts
on what it decides, and accounts for every reply until the caller has heard it.

A reply starts on the opening, a caller turn, a key press, a silence (CallHygiene), a lost turn
(the failure line) or a polite end (the goodbye). Its parts go down as SayFrame (approved lines)
and GenerateFrame (LLM parts, for the ReplyWriter), bracketed by ReplyStartFrame and
ReplyEndFrame; speech reports back when the reply is over (`reply_played`), and only then does
the conversation hear what was heard (`Conversation.played`), the turn get reported, and the
reply's `then` run: hang up, or transfer through the injected CallHandoff. On a recorded call
the driver also says what the recording's consent owes the caller (`ConsentedRecording.owed`: the
announcement at the end of the opening, again at the start of the next reply until it was heard,
and that the recording stopped after an objection) and tells it every caller turn.

Invariants: a new reply never talks over an older one (the older is interrupted first); a reply
asks the conversation only once every earlier reply was reported played, so what it answers
from holds what the caller heard; at most one reply is being decided or written at a time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from pipecat.frames.frames import Frame, InputDTMFFrame, InterruptionFrame, StartFrame
from pipecat.processors.frame_processor import FrameDirection

from reautod.call_events import CallState, TurnRecord
from reautod.conversation import (
    REPLY_TIMEOUT_S,
    CallerTurn,
    CallHandoff,
    Conversation,
    Generate,
    HangUp,
    Line,
    Listen,
    Played,
    Reply,
    ReplyCause,
    Transfer,
    spoken_together,
)
from reautod.errors import ReautodError
from reautod.pipeline.frames import (
    AgentBusyFrame,
    CallerSilentFrame,
    GenerateFrame,
    HangupRequestFrame,
    PreparedAudio,
    ReplyEndFrame,
    ReplyStartFrame,
    ReplyTiming,
    SayFrame,
    UserSpeechFrame,
    UserTurnFrame,
)
from reautod.pipeline.live import LiveCall
from reautod.pipeline.processor import CallProcessor
from reautod.pipeline.recording import ConsentedRecording
from reautod.pipeline.speech import ReplyPlayback

log = logging.getLogger(__name__)

PLAYED_WAIT_S = 2.0  # how long a reply waits for earlier ones to be reported (normally ~ms)
Decide = Callable[[], Awaitable[Reply | None]]


@dataclass
class _Reply:
    id: int
    cause: ReplyCause
    started_at: datetime
    timing: ReplyTiming
    error: str | None = None  # a failure the driver knows of (a lost turn, the conversation)
    answer: Reply | None = None  # what the conversation said, once it has
    cut: bool = False  # interrupted; waiting for speech to say what was heard


class ConversationDriver(CallProcessor):
    """Turns caller events into replies through the call's Conversation (one job: the dialogue's
    side of the call); speech reports to it through `reply_played` (a PlaybackListener)."""

    def __init__(self, *, live: LiveCall, conversation: Conversation,
                 handoff: CallHandoff | None = None,
                 opening_audio: tuple[str, PreparedAudio] | None = None,
                 recording: ConsentedRecording | None = None, turns_before: int = 0) -> None:
        super().__init__(name=f"driver-{live.call_id}")
        self._live = live
        self._conversation = conversation
        self._handoff = handoff
        self._recording = recording  # None: the call is not recorded
        # (text, its audio being made): the opening line the call was expected to start with
        self._opening_audio = opening_audio
        self._replies: dict[int, _Reply] = {}  # started, not yet reported played
        self._task: asyncio.Task[None] | None = None  # the reply being decided and sent down
        # the conversation's latest decision: a barge-in cancels its reply, never the decision
        self._deciding: asyncio.Task[Reply | None] | None = None
        self._actions: set[asyncio.Task[None]] = set()  # transfers in flight
        self._next_reply = 0
        self._turn_index = turns_before  # a resumed call numbers on from its last turn
        self._reported_busy = False
        self._played = asyncio.Event()  # set whenever a reply is reported played
        self._ending: str | None = None
        self._closed = False
        self.turns_heard = 0  # UserTurnFrames taken (the session waits for the caller's last)
        self._last_words: asyncio.Task[None] | None = None
        self._turn_taken = asyncio.Event()

    def busy(self) -> bool:
        """The agent holds the floor: a reply is being decided, written or played."""
        return any(not reply.cut for reply in self._replies.values())

    # -- pipecat plumbing

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, StartFrame):
            await self.push_frame(frame, direction)
            await self._start(ReplyCause.OPENING, self._conversation.opening)
        elif isinstance(frame, UserTurnFrame):
            await self._on_turn(frame)
        elif isinstance(frame, UserSpeechFrame):
            if frame.speaking and not self.busy():
                self._live.set_state(CallState.LISTENING)
        elif isinstance(frame, InputDTMFFrame):
            await self._on_key(str(frame.button.value))
        elif isinstance(frame, CallerSilentFrame):
            if self._ending is None and not self.busy():
                await self._start(ReplyCause.SILENCE, self._sync(self._conversation.silence))
        elif isinstance(frame, HangupRequestFrame):
            await self._end_politely(frame.reason)
        elif isinstance(frame, InterruptionFrame):
            if self._parting():
                return  # the goodbye is not cut: the caller barged in on the agent's last words
            await self._stop_reply()
            await self.push_frame(frame, direction)
        else:
            await self.push_frame(frame, direction)

    async def release(self) -> None:
        # No more decisions or actions; replies still open are reported as speech closes.
        self._closed = True
        for task in (self._task, self._deciding, self._last_words, *self._actions):
            if task is not None and not task.done():
                await self.cancel_task(task)
        self._task = self._deciding = self._last_words = None
        self._actions.clear()

    # -- caller events

    async def _on_turn(self, frame: UserTurnFrame) -> None:
        self.turns_heard += 1
        self._turn_taken.set()
        stt_s = max(0.0, frame.transcript_at - frame.speech_ended_at)
        spoken_s = max(0.0, frame.speech_ended_at - frame.speech_started_at)
        now = datetime.now(UTC)
        self._report_turn(TurnRecord(
            call_id=self._live.call_id, index=self._next_turn_index(), speaker="caller",
            text=frame.text, confidence=round(frame.confidence, 4) if frame.error is None else None,
            started_at=datetime.fromtimestamp(now.timestamp() - spoken_s, UTC), ended_at=now,
            latencies={"stt_s": round(stt_s, 4)}, error=frame.error))
        if frame.error is not None:
            self._live.info.engine_failures += 1
        else:
            self._live.info.last_utterance = frame.text
            if self._recording is not None:  # an objection stops the recording, even now
                await self._recording.caller_said(frame.text, now)
        if self._ending is not None or self._parting():
            return  # saying goodbye: nothing more is answered
        if self._live.ended:
            # The caller hung up right after speaking: nothing can be said any more, but the
            # conversation hears what they said (an opt-out, a yes) before the call is settled.
            if frame.error is None:
                await self._stop_reply()
                self._last_words = self.create_task(
                    self._hear_last(CallerTurn(frame.text, frame.confidence)),
                    name=f"last-words-{self._live.call_id}")
            return
        timing = ReplyTiming(origin=frame.speech_ended_at, stt_s=stt_s)
        if frame.error is not None:
            await self._start(ReplyCause.FAILURE, self._failure_reply(frame.error),
                              timing=timing, error=frame.error)
            return
        turn = CallerTurn(frame.text, frame.confidence)
        await self._start(ReplyCause.TURN, lambda: self._conversation.reply(turn), timing=timing)

    async def _hear_last(self, turn: CallerTurn) -> None:
        reply = _Reply(0, ReplyCause.TURN, datetime.now(UTC), ReplyTiming())
        answer = await self._ask(reply, lambda: self._conversation.reply(turn))
        if answer is not None and isinstance(answer.then, HangUp):
            log.info("call %s: the caller's last words ended the call (%s)",
                     self._live.call_id, answer.then.reason)

    async def last_words(self, turns_sent: int) -> None:
        """Wait until the conversation has heard the caller's last turn (`turns_sent` turns were
        pushed to this driver), after the caller hung up; the session bounds the wait."""
        while self.turns_heard < turns_sent:  # a turn still on its way through the pipeline
            self._turn_taken.clear()
            await self._turn_taken.wait()
        if self._last_words is not None:
            await asyncio.wait({self._last_words})

    def _parting(self) -> bool:
        """A reply that ends the call was decided: the caller hears it out (no barge-in), and
        nothing they say after it is answered; the call hangs up once it has played."""
        return any(not reply.cut and reply.answer is not None
                   and isinstance(reply.answer.then, HangUp)
                   for reply in self._replies.values())

    async def _on_key(self, digit: str) -> None:
        self._live.observer.on_dtmf(self._live.call_id, digit)
        if self._parting():
            return  # telephony acts on the key (the opt-out key); the agent is saying goodbye
        if self.busy():
            await self._interrupt()
        if self._ending is None:
            await self._start(ReplyCause.KEYPRESS, lambda: self._conversation.keypress(digit))

    async def _end_politely(self, reason: str) -> None:
        if self._ending is not None:
            return
        self._ending = reason
        if self.busy():
            await self._interrupt()
        self._live.set_state(CallState.ENDING)
        goodbye = self._sync(lambda: Reply((self._conversation.goodbye(reason),),
                                           HangUp(reason)))
        await self._start(ReplyCause.GOODBYE, goodbye)

    # -- replies

    async def _start(self, cause: ReplyCause, decide: Decide, *,
                     timing: ReplyTiming | None = None, error: str | None = None) -> None:
        if self.busy():
            await self._interrupt()  # a new reply never talks over an older one
        self._next_reply += 1
        reply = _Reply(self._next_reply, cause, datetime.now(UTC), timing or ReplyTiming(),
                       error=error)
        self._replies[reply.id] = reply
        await self._busy_changed()
        self._live.set_state(CallState.THINKING if cause in (ReplyCause.TURN, ReplyCause.KEYPRESS)
                             else CallState.SPEAKING)
        await self.push_frame(ReplyStartFrame(reply_id=reply.id, timing=reply.timing))
        self._task = self.create_task(self._send(reply, decide),
                                      name=f"reply-{self._live.call_id}")

    async def _send(self, reply: _Reply, decide: Decide) -> None:
        """Ask the conversation (once the earlier replies were played), then send the parts."""
        await self._earlier_played(reply.id)
        answer = self._with_owed(reply.cause, await self._ask(reply, decide))
        reply.answer = answer
        parts = answer.parts if answer is not None else ()
        first = 0
        if reply.cause is ReplyCause.OPENING and self._opening_audio is not None:
            # An opening whose audio was made ahead as one piece is played as one piece.
            together = spoken_together(parts)
            text, audio = self._opening_audio
            joined = " ".join(line.text for line in together)
            if len(together) > 1 and joined == text:
                await self.push_frame(SayFrame(reply_id=reply.id, line=Line(joined),
                                               prepared=audio))
                first = len(together)
        for i, part in enumerate(parts[first:], first):
            if isinstance(part, Generate):
                await self.push_frame(GenerateFrame(reply_id=reply.id, messages=part.messages,
                                                    max_tokens=part.max_tokens,
                                                    sentences=part.sentences,
                                                    model=part.model, timing=reply.timing))
            else:
                prepared = self._prepared(part) if reply.cause is ReplyCause.OPENING and i == 0 \
                    else None
                await self.push_frame(SayFrame(reply_id=reply.id, line=part, prepared=prepared))
        await self.push_frame(ReplyEndFrame(reply_id=reply.id))

    def _with_owed(self, cause: ReplyCause, answer: Reply | None) -> Reply | None:
        """`answer` with what the recording's consent owes the caller: after the opening's own
        words (the business is named first), before any other reply's. Not in a goodbye or a
        reply that ends the call (an opt-out is never held up by it)."""
        if self._recording is None or cause is ReplyCause.GOODBYE:
            return answer
        if answer is not None and not isinstance(answer.then, Listen):
            return answer
        owed = self._recording.owed()
        if not owed:
            return answer
        said = answer.parts if answer is not None else ()
        parts = (*said, *owed) if cause is ReplyCause.OPENING else (*owed, *said)
        return replace(answer, parts=parts) if answer is not None else Reply(parts)

    def _prepared(self, line: Line) -> PreparedAudio | None:
        """The audio made ahead for the opening, if this is the line it was made for."""
        if self._opening_audio is None or line.audio is not None:
            return None
        text, audio = self._opening_audio
        return audio if line.text == text else None

    async def _ask(self, reply: _Reply, decide: Decide) -> Reply | None:
        try:
            async with asyncio.timeout(REPLY_TIMEOUT_S):
                return await self._decided(decide)
        except TimeoutError:
            if self._deciding is not None:
                await self.cancel_task(self._deciding)  # stuck: the apology replaces it
            code = "conversation_timeout"
        except ReautodError as err:
            code = err.code
        except Exception:  # the conversation's bug must not end the call: it apologises
            log.exception("call %s: conversation failed", self._live.call_id)
            code = "conversation_failed"
        log.warning("call %s: no reply from the conversation (%s)", self._live.call_id, code)
        reply.error = code
        return Reply((self.fallback(code),))

    async def _decided(self, decide: Decide) -> Reply | None:
        """The conversation's answer. The caller cutting in cancels the reply, not the decision:
        a booking half made when "Yes." was followed by "please book it" must be made whole, so
        the decision runs to its end on a task of its own (what it wanted said and was not
        heard is the conversation's to say again), and the next decision waits for it."""
        previous = self._deciding
        if previous is not None and not previous.done():
            await asyncio.wait({previous})

        async def run() -> Reply | None:
            return await decide()

        # asyncio's own task, not pipecat's: pipecat's logs and swallows what the task raises,
        # and a conversation's error must reach `_ask` (its code is the failure line's)
        self._deciding = asyncio.get_running_loop().create_task(
            run(), name=f"decide-{self._live.call_id}")
        self._deciding.add_done_callback(self._decision_done)
        return await asyncio.shield(self._deciding)

    def _decision_done(self, task: asyncio.Task[Reply | None]) -> None:
        """A decision whose reply was cut off has nobody waiting: its failure is logged here."""
        if not task.cancelled() and (err := task.exception()) is not None:
            log.warning("call %s: a decision failed after its reply was cut off (%r)",
                        self._live.call_id, err)

    async def _earlier_played(self, reply_id: int) -> None:
        deadline = time.monotonic() + PLAYED_WAIT_S
        while any(other < reply_id for other in self._replies):
            self._played.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                log.warning("call %s: reply %d goes on before an earlier one was reported",
                            self._live.call_id, reply_id)
                return
            try:
                async with asyncio.timeout(left):
                    await self._played.wait()
            except TimeoutError:
                continue

    async def _interrupt(self) -> None:
        """Cut the agent off (our decision, not a barge-in): stop here and clear downstream."""
        await self._stop_reply()
        await self.push_frame(InterruptionFrame())

    async def _stop_reply(self) -> None:
        if self._task is not None and not self._task.done():
            await self.cancel_task(self._task)
        self._task = None
        if any(not reply.cut for reply in self._replies.values()):
            for reply in self._replies.values():
                reply.cut = True
            self._live.set_state(CallState.LISTENING)
        await self._busy_changed()

    # -- speech reports (PlaybackListener)

    def fallback(self, code: str) -> Line:
        try:
            return self._conversation.failure(code)
        except Exception:  # without it the reply ends in silence; the call goes on
            log.exception("call %s: conversation gave no failure line", self._live.call_id)
            return Line("")

    async def reply_played(self, playback: ReplyPlayback) -> None:
        reply = self._replies.pop(playback.reply_id, None)
        if reply is None:
            return
        self._played.set()
        if self._recording is not None:
            self._recording.played(playback.heard, " ".join(playback.said), datetime.now(UTC))
        if not playback.interrupted and (reply.answer is None or not reply.answer.parts):
            # Nothing was to be said (a key press left unanswered, or a bare `then`): no turn.
            await self._busy_changed()
            if not self._closed and reply.answer is not None:
                self._after(reply, failed=False)
            return
        said = " ".join(playback.said)
        text = playback.heard if playback.interrupted else said
        error = playback.error or reply.error
        if playback.error is not None:
            self._live.info.engine_failures += 1
        try:
            self._conversation.played(Played(reply.answer or Reply(()), reply.cause, said, text,
                                             playback.interrupted, error))
        except Exception:  # its context may lag; the call goes on
            log.exception("call %s: conversation failed to take a played reply",
                          self._live.call_id)
        if playback.interrupted:
            self._live.info.barge_ins += 1
            self._live.observer.on_barge_in(self._live.call_id, playback.heard)
        self._report_reply(reply, text, playback.interrupted, error)
        await self._busy_changed()
        if not self.busy() and self._ending is None:
            self._live.set_state(CallState.LISTENING)
        if not self._closed and not playback.interrupted:
            self._after(reply, failed=error is not None)

    def _after(self, reply: _Reply, *, failed: bool) -> None:
        """The reply played to its end: do what it said should happen next."""
        if reply.cause is ReplyCause.GOODBYE and self._ending is not None:
            self._live.end(self._ending)  # even after a failed goodbye: the call is ending
            return
        then = reply.answer.then if reply.answer is not None else None
        if failed or self._ending is not None:
            return
        if isinstance(then, HangUp):
            self._live.end(then.reason)
        elif isinstance(then, Transfer):
            task = self.create_task(self._transfer(then), name=f"transfer-{self._live.call_id}")
            self._actions.add(task)
            task.add_done_callback(self._actions.discard)

    async def _transfer(self, action: Transfer) -> None:
        if self._handoff is None:
            code = "transfer_unavailable"
        else:
            try:
                await self._handoff.transfer(self._live.call_id, action.to)
            except ReautodError as err:
                code = err.code
            else:
                self._live.end(action.reason)
                return
        log.warning("call %s: transfer failed (%s)", self._live.call_id, code)
        if self._ending is None:
            await self._start(ReplyCause.FAILURE, self._failure_reply(code), error=code)

    # -- reporting

    def _report_reply(self, reply: _Reply, text: str, interrupted: bool,
                      error: str | None) -> None:
        timing = reply.timing
        latencies: dict[str, float] = {}
        if timing.origin is not None:
            stages = {
                "stt_s": timing.stt_s,
                "llm_first_token_s": _since(timing.origin, timing.first_token_at),
                "tts_first_audio_s": _since(timing.origin, timing.first_audio_at),
                "voice_to_voice_s": _since(timing.origin, timing.first_sent_at),
            }
            latencies = {k: round(v, 4) for k, v in stages.items() if v is not None}
        self._report_turn(TurnRecord(
            call_id=self._live.call_id, index=self._next_turn_index(), speaker="agent",
            text=text, confidence=None, started_at=reply.started_at, ended_at=datetime.now(UTC),
            latencies=latencies, interrupted=interrupted, error=error))

    def _report_turn(self, turn: TurnRecord) -> None:
        self._live.info.turns += 1
        self._live.observer.on_turn(turn)

    def _next_turn_index(self) -> int:
        self._turn_index += 1
        return self._turn_index

    async def _busy_changed(self) -> None:
        busy = self.busy()
        if busy != self._reported_busy and not self._closed:
            self._reported_busy = busy
            await self.push_frame(AgentBusyFrame(busy=busy), FrameDirection.UPSTREAM)

    def _failure_reply(self, code: str) -> Decide:
        return self._sync(lambda: Reply((self.fallback(code),)))

    @staticmethod
    def _sync(make: Callable[[], Reply]) -> Decide:
        """A sync conversation call as a Decide (its errors handled like the async ones')."""
        async def decide() -> Reply:
            return make()
        return decide


def _since(origin: float, at: float | None) -> float | None:
    return None if at is None else at - origin

"""The conversation seam through a live call: a Conversation decides, the pipeline speaks, tells
it what was heard, and carries out what it decided after the reply (hang up, transfer).

The calls run over LoopbackMedia (not Twilio, 20 ms frames): the session's media seam is tested
by the same calls. Caller turns are pushed as the UserTurnProcessor would push them.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import numpy as np
import pytest
from pipecat.audio.dtmf.types import KeypadEntry
from pipecat.frames.frames import InputAudioRawFrame, InputDTMFFrame, InterruptionFrame

from reautod.conversation import (
    CallContext,
    CallerTurn,
    Generate,
    HangUp,
    Line,
    Played,
    Reply,
    ReplyCause,
    Transfer,
)
from reautod.engines.base import AudioChunk, AudioEncoding, ChatMessage
from reautod.errors import ReautodError
from reautod.pipeline import driver, session
from reautod.pipeline.calls import CallManager
from reautod.pipeline.frames import UserTurnFrame
from reautod.telephony.audio import pcm16_to_ulaw, ulaw_to_pcm16
from reautod.telephony.sim_script import Utterance
from tests.pipeline.conftest import RecordingObserver, make_settings, wait_for
from tests.pipeline.fakes import FakeEngines
from tests.pipeline.loopback import LOOPBACK_FORMAT, LoopbackMedia

pytestmark = pytest.mark.timeout(60)

SORRY = "Sorry, that did not work."
SYSTEM = (ChatMessage(role="system", content="Be brief."),)
Answer = Callable[[CallerTurn], Reply]


@dataclass
class ScriptedConversation:
    """A Conversation whose replies the test gives; it logs every call it gets, in order."""

    answer: Answer = lambda turn: Reply((Line(f"You said {turn.text}."),))
    opening_line: Line | None = None
    think_s: float = 0.0  # async work before each reply (a model, a calendar)
    fail_with: Exception | None = None
    log: list[str] = field(default_factory=list)
    played_log: list[Played] = field(default_factory=list)

    async def opening(self) -> Reply | None:
        self.log.append("opening")
        return Reply((self.opening_line,)) if self.opening_line is not None else None

    async def reply(self, turn: CallerTurn) -> Reply:
        self.log.append(f"reply:{turn.text}")
        if self.think_s:
            await asyncio.sleep(self.think_s)
        if self.fail_with is not None:
            raise self.fail_with
        return self.answer(turn)

    async def keypress(self, digit: str) -> Reply | None:
        self.log.append(f"key:{digit}")
        return None

    def silence(self) -> Reply:
        return Reply.line("Hello?")

    def failure(self, code: str) -> Line:
        self.log.append(f"failure:{code}")
        return Line(SORRY, shared=True)

    def goodbye(self, reason: str) -> Line:
        return Line("Bye.", shared=True)

    def played(self, outcome: Played) -> None:
        self.log.append(f"played:{outcome.heard}")
        self.played_log.append(outcome)

    async def ended(self, reason: str) -> None:
        self.log.append(f"ended:{reason}")


@dataclass
class ScriptedConversations:
    conversation: ScriptedConversation
    calls: list[CallContext] = field(default_factory=list)

    def start(self, call: CallContext) -> ScriptedConversation:
        self.calls.append(call)
        return self.conversation

    def opening(self, call: CallContext) -> Line | None:
        return self.conversation.opening_line


@dataclass
class FakeHandoff:
    """Implements CallHandoff: records transfers; fails with `fail_with` when set."""

    fail_with: ReautodError | None = None
    transfers: list[tuple[str, str | None]] = field(default_factory=list)

    async def transfer(self, call_id: str, to: str | None) -> None:
        self.transfers.append((call_id, to))
        if self.fail_with is not None:
            raise self.fail_with


@dataclass
class Call:
    media: LoopbackMedia
    task: asyncio.Task[str]
    observer: RecordingObserver
    engines: FakeEngines

    def agent_turns(self) -> list[tuple[str, bool, str | None]]:
        return [(t.text, t.interrupted, t.error) for t in self.observer.turns_of("k1", "agent")]

    async def ended(self) -> str:
        return await asyncio.wait_for(asyncio.shield(self.task), 10)


@contextlib.asynccontextmanager
async def live_call(conversation: ScriptedConversation, *, media: LoopbackMedia | None = None,
                    handoff: FakeHandoff | None = None,
                    direction: str = "inbound") -> AsyncIterator[Call]:
    engines = FakeEngines()
    observer = RecordingObserver()
    manager = CallManager(engines, make_settings(), observer,
                          conversations=ScriptedConversations(conversation), handoff=handoff)
    await manager.start()
    media = media or LoopbackMedia()
    context = CallContext(call_id="k1", lead_name="Kim", campaign=None, goal=None,
                          direction="inbound" if direction == "inbound" else "outbound")
    task = asyncio.create_task(manager.run(media, context))
    try:
        await wait_for(lambda: media._input is not None and manager.session("k1") is not None
                       and manager.session("k1")._ready.is_set())  # type: ignore[union-attr]
        yield Call(media, task, observer, engines)
    finally:
        if not task.done():
            media.hang_up()
        await asyncio.wait({task}, timeout=10)
        await manager.close()


def turn(text: str) -> UserTurnFrame:
    now = time.monotonic()
    return UserTurnFrame(text=text, confidence=0.9, speech_started_at=now - 1,
                         speech_ended_at=now - 0.2, transcript_at=now)


async def test_a_reply_of_lines_and_an_llm_part_is_spoken_in_order_after_async_work() -> None:
    llm_part = Generate((*SYSTEM, ChatMessage(role="user", content="prices?")))
    conversation = ScriptedConversation(
        answer=lambda t: Reply((Line("One moment.", shared=True), llm_part,
                                Line("Anything else?"))),
        think_s=0.2)
    async with live_call(conversation) as call:
        await call.media.say(turn("what does it cost"))
        await wait_for(lambda: len(conversation.played_log) == 1)
        assert call.task.done() is False
    said = ["One moment.", "That is great.", "Let me tell you about our free consultation.",
            "It takes an hour.", "Anything else?"]
    assert [text for _, text in call.engines.tts.texts] == said
    assert call.engines.llm.requests == [("k1", list(llm_part.messages))]
    outcome = conversation.played_log[0]
    assert outcome.said == outcome.heard == " ".join(said) and not outcome.interrupted
    assert outcome.cause is ReplyCause.TURN and outcome.reply.parts[1] == llm_part
    assert call.agent_turns() == [(" ".join(said), False, None)]
    # every piece ended on a mark, its audio at the media's rate padded to its whole frames
    assert len(call.media.pieces) == len(said) and call.media.rates == {8000}
    assert all(n > 0 and n % LOOPBACK_FORMAT.out_frame_bytes == 0 for n in call.media.pieces)
    latencies = call.observer.turns_of("k1", "agent")[0].latencies
    assert latencies["voice_to_voice_s"] >= 0.2  # the conversation's thinking is waited for


async def test_an_llm_part_limited_to_one_sentence_stops_the_model_after_it() -> None:
    """The agent's acknowledgement before its approved question: one sentence of the model's
    is said, the request is closed, the line after it follows; an unfinished sentence is not
    said (nothing left: the failure line, and the rest of the reply dropped)."""
    ack = Generate(SYSTEM, sentences=1)
    conversation = ScriptedConversation(answer=lambda t: Reply((ack, Line("When?"))))
    async with live_call(conversation) as call:
        await call.media.say(turn("yes"))
        await wait_for(lambda: len(conversation.played_log) == 1)
        call.engines.llm.reply = "Well I think that"  # cut off by its token cap
        await call.media.say(turn("sure"))
        await wait_for(lambda: len(conversation.played_log) == 2)
    assert [text for _, text in call.engines.tts.texts] == ["That is great.", "When?", SORRY]
    assert call.engines.llm.outcomes[0] == "closed"  # stopped after its sentence
    assert call.agent_turns() == [("That is great. When?", False, None),
                                  (SORRY, False, "llm_empty")]


async def test_audio_a_line_brings_is_played_without_the_tts() -> None:
    rate = 22050
    tone = (np.sin(2 * math.pi * 300 * np.arange(rate // 2) / rate) * 6000).astype(np.int16)
    line = Line("An approved answer.", audio=(AudioChunk(tone.tobytes(), rate),))
    conversation = ScriptedConversation(opening_line=line)
    async with live_call(conversation, direction="outbound") as call:
        await wait_for(lambda: len(conversation.played_log) == 1)
    assert call.engines.tts.texts == []
    assert conversation.played_log[0].cause is ReplyCause.OPENING
    # half a second at 22.05 kHz is 8,000 bytes at 8 kHz, less the few ms the stream resampler
    # keeps back, padded to whole 20 ms frames
    (piece,) = call.media.pieces
    assert 7040 <= piece <= 8000 and piece % LOOPBACK_FORMAT.out_frame_bytes == 0


async def test_mu_law_audio_from_the_premium_voice_is_played_as_the_same_samples() -> None:
    pcm = (np.sin(2 * math.pi * 300 * np.arange(4000) / 8000) * 6000).astype(np.int16)
    ulaw = pcm16_to_ulaw(pcm)
    line = Line("Premium words.", audio=(AudioChunk(ulaw, 8000, encoding=AudioEncoding.MULAW),))
    conversation = ScriptedConversation(opening_line=line)
    async with live_call(conversation, direction="outbound") as call:
        await wait_for(lambda: len(conversation.played_log) == 1)
    assert bytes(call.media.audio[:2 * len(ulaw)]) == ulaw_to_pcm16(ulaw).tobytes()
    assert call.media.pieces == [2 * len(ulaw)]  # 0.5 s: whole 20 ms frames, no padding


async def test_hang_up_comes_after_the_reply_was_heard() -> None:
    conversation = ScriptedConversation(
        answer=lambda t: Reply.line("Understood, goodbye.", then=HangUp("not_interested")))
    async with live_call(conversation, media=LoopbackMedia(hold_marks=True)) as call:
        await call.media.say(turn("not interested"))
        await wait_for(lambda: len(call.media.held) == 1)
        await asyncio.sleep(0.2)
        assert not call.task.done()  # said, not yet heard: the call waits
        await call.media.release()
        assert await call.ended() == "not_interested"
    assert call.observer.reason("k1") == "not_interested"
    assert [o.heard for o in conversation.played_log] == ["Understood, goodbye."]
    assert conversation.log[-1] == "ended:not_interested"  # told last, once


async def test_a_reply_with_no_parts_hangs_up_without_a_word() -> None:
    conversation = ScriptedConversation(answer=lambda t: Reply((), HangUp("opted_out")))
    async with live_call(conversation) as call:
        await call.media.say(turn("take me off your list"))
        assert await call.ended() == "opted_out"
    assert call.engines.tts.texts == [] and call.agent_turns() == []
    assert conversation.played_log == []


async def test_transfer_goes_through_the_injected_handoff() -> None:
    handoff = FakeHandoff()
    conversation = ScriptedConversation(
        answer=lambda t: Reply.line("Connecting you now.", then=Transfer("+12125550100")))
    async with live_call(conversation, handoff=handoff) as call:
        await call.media.say(turn("can I talk to a person"))
        assert await call.ended() == "transferred"
    assert handoff.transfers == [("k1", "+12125550100")]


@pytest.mark.parametrize("handoff, code", [
    (FakeHandoff(fail_with=ReautodError("no number", code="no_transfer")), "no_transfer"),
    (None, "transfer_unavailable"),
])
async def test_a_transfer_that_cannot_happen_is_apologised_for(
        handoff: FakeHandoff | None, code: str) -> None:
    conversation = ScriptedConversation(
        answer=lambda t: Reply.line("Connecting you now.", then=Transfer()))
    async with live_call(conversation, handoff=handoff) as call:
        await call.media.say(turn("a human please"))
        await wait_for(lambda: len(conversation.played_log) == 2)
        assert not call.task.done()  # the call goes on
    assert f"failure:{code}" in conversation.log
    assert call.agent_turns() == [("Connecting you now.", False, None), (SORRY, False, code)]


async def test_a_conversation_that_fails_or_hangs_gets_the_failure_line(
        monkeypatch: pytest.MonkeyPatch) -> None:
    conversation = ScriptedConversation(fail_with=ReautodError("down", code="calendar_down"))
    async with live_call(conversation) as call:
        await call.media.say(turn("book me in"))
        await wait_for(lambda: len(conversation.played_log) == 1)
        monkeypatch.setattr(driver, "REPLY_TIMEOUT_S", 0.2)
        conversation.fail_with, conversation.think_s = None, 5.0
        await call.media.say(turn("hello?"))
        await wait_for(lambda: len(conversation.played_log) == 2)
    assert call.agent_turns() == [(SORRY, False, "calendar_down"),
                                  (SORRY, False, "conversation_timeout")]
    assert [o.error for o in conversation.played_log] == ["calendar_down", "conversation_timeout"]


async def test_what_was_heard_of_a_cut_reply_is_told_before_the_next_reply() -> None:
    conversation = ScriptedConversation(
        answer=lambda t: Reply((Line("First part."), Line("Second part."))))
    async with live_call(conversation, media=LoopbackMedia(hold_marks=True)) as call:
        await call.media.say(turn("tell me"))
        await wait_for(lambda: len(call.media.held) == 2)
        await call.media.release(1)  # the caller heard the first part only
        await call.media.say(InterruptionFrame())  # and cut in (a barge-in)
        await call.media.say(turn("wait"))
        await wait_for(lambda: len(conversation.played_log) == 1 and len(call.media.held) == 2)
    assert conversation.log[:4] == ["opening", "reply:tell me", "played:First part.",
                                    "reply:wait"]
    cut = conversation.played_log[0]
    assert cut.interrupted and cut.said == "First part. Second part."
    assert call.observer.barge_ins == [("k1", "First part.")]
    assert call.media.clears == 1


async def test_a_barge_in_cancels_the_reply_but_not_the_decision_being_made() -> None:
    """"Yes." then "please book it" while the booking is being made: the booking is made whole
    (the decision runs on), and the next turn is decided only after it."""
    conversation = ScriptedConversation(think_s=0.5)
    conversation.answer = lambda t: (conversation.log.append(f"decided:{t.text}")
                                     or Reply((Line(f"You said {t.text}."),)))
    async with live_call(conversation) as call:
        await call.media.say(turn("yes"))
        await wait_for(lambda: "reply:yes" in conversation.log)
        await call.media.say(InterruptionFrame())  # the caller goes on while it is decided
        await call.media.say(turn("please book it"))
        await wait_for(lambda: "decided:please book it" in conversation.log)
    decisions = [entry for entry in conversation.log if not entry.startswith("played:")]
    assert decisions[1:5] == ["reply:yes", "decided:yes", "reply:please book it",
                              "decided:please book it"]


async def test_an_llm_part_with_its_own_cap_that_writes_nothing_ends_in_the_failure_line(
        ) -> None:
    conversation = ScriptedConversation(
        answer=lambda t: Reply((Generate(SYSTEM, max_tokens=7),)))
    async with live_call(conversation) as call:
        call.engines.llm.reply = ""
        await call.media.say(turn("hm"))
        await wait_for(lambda: len(conversation.played_log) == 1)
    assert call.engines.llm.max_tokens == [7]
    assert call.engines.llm.models == [None]  # no model named: the reply model
    assert call.agent_turns() == [(SORRY, False, "llm_empty")]
    assert "failure:llm_empty" in conversation.log


async def test_an_llm_part_naming_a_model_is_written_by_that_model() -> None:
    conversation = ScriptedConversation(
        answer=lambda t: Reply((Generate(SYSTEM, model="smart"),)))
    async with live_call(conversation) as call:
        call.engines.llm.reply = "Smart words."
        await call.media.say(turn("hm"))
        await wait_for(lambda: len(conversation.played_log) == 1)
    assert call.engines.llm.models == ["smart"]
    assert call.agent_turns()[0][0] == "Smart words."


async def test_a_key_with_no_reply_says_nothing_and_keeps_listening() -> None:
    conversation = ScriptedConversation()
    async with live_call(conversation) as call:
        await call.media.say(InputDTMFFrame(KeypadEntry("7")))
        await wait_for(lambda: "key:7" in conversation.log)
        await call.media.say(turn("hello"))
        await wait_for(lambda: len(conversation.played_log) == 1)
    assert call.observer.dtmf == [("k1", "7")]
    assert call.agent_turns() == [("You said hello.", False, None)]


async def test_the_last_reply_is_heard_out_and_nothing_said_over_it_is_answered() -> None:
    goodbye = "You won't be called again. Goodbye."
    conversation = ScriptedConversation(answer=lambda t: Reply.line(goodbye,
                                                                    then=HangUp("opted_out")))
    async with live_call(conversation, media=LoopbackMedia(hold_marks=True)) as call:
        await call.media.say(turn("stop calling me"))
        await wait_for(lambda: len(call.media.held) == 1)
        await call.media.say(InterruptionFrame())  # the caller talks over the goodbye
        await call.media.say(turn("and take my number off your list"))
        await call.media.say(InputDTMFFrame(KeypadEntry("9")))
        await wait_for(lambda: len(call.observer.turns_of("k1", "caller")) == 2)
        await asyncio.sleep(0.2)
        assert call.media.clears == 0 and not call.task.done()  # the goodbye plays on
        await call.media.release()
        assert await call.ended() == "opted_out"
    assert [e for e in conversation.log if e.startswith(("reply", "key"))] == [
        "reply:stop calling me"]  # recorded, never answered
    assert call.agent_turns() == [(goodbye, False, None)]
    assert call.observer.dtmf == [("k1", "9")]  # telephony still sees the key


def _speech_frames(utterance: Utterance) -> list[InputAudioRawFrame]:
    pcm = ulaw_to_pcm16(utterance.ulaw).tobytes()
    step = 2 * 160  # 20 ms at 8 kHz
    return [InputAudioRawFrame(audio=pcm[i:i + step], sample_rate=8000, num_channels=1)
            for i in range(0, len(pcm) - step + 1, step)]


async def test_a_caller_who_hangs_up_right_after_speaking_is_still_heard(
        short_speech: Utterance) -> None:
    conversation = ScriptedConversation(answer=lambda t: Reply.line("Goodbye.",
                                                                    then=HangUp("opted_out")))
    async with live_call(conversation) as call:
        call.engines.stt.text = "Stop calling me."
        await wait_for(lambda: len(conversation.played_log) == 0 and "opening" in conversation.log)
        for frame in _speech_frames(short_speech):  # the words, then no silence: gone at once
            await call.media.say(frame)
        call.media.hang_up()
        assert await call.ended() == "stop"
    # the turn still in the VAD's stop wait was transcribed whole and answered, before the end
    assert conversation.log == ["opening", "reply:Stop calling me.", "ended:stop"]
    assert [t.text for t in call.observer.turns_of("k1", "caller")] == ["Stop calling me."]
    assert call.engines.stt.calls[-1][1] >= 1.5  # the whole ~2 s utterance
    assert call.engines.tts.texts == []  # nothing is said to a caller who is gone


async def test_a_slow_teardown_leaves_why_the_call_ended(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session, "TEARDOWN_TIMEOUT_S", 0.0)  # the pipeline never stops in time
    conversation = ScriptedConversation(answer=lambda t: Reply((), HangUp("opted_out")))
    async with live_call(conversation) as call:
        await call.media.say(turn("take me off your list"))
        assert await call.ended() == "opted_out"
    assert conversation.log[-1] == "ended:opted_out"  # what the outcome is settled from
    assert call.observer.reason("k1") == "opted_out"

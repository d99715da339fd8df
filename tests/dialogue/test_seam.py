"""The agent behind the pipeline's conversation seam: replies as parts and `then`, what was
heard back to the agent, end reasons to causes, and which calls get a playbook at all."""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass, field

import pytest
from pipecat.audio.dtmf.types import KeypadEntry
from pipecat.frames.frames import InputDTMFFrame

from reautod import conversation as cv
from reautod.config import AgentSettings
from reautod.conversation import CallContext, CallerTurn, Line, Reply
from reautod.dialogue.agent import CallAgent
from reautod.dialogue.cache import CachedLine
from reautod.dialogue.replies import After, AgentReply, CallResult, EndCause, LlmRequest
from reautod.dialogue.replies import Line as AgentLine
from reautod.dialogue.seam import (
    AgentConversation,
    PlaybookConversations,
    end_cause,
    to_reply,
)
from reautod.dialogue.vocabulary import Outcome
from reautod.engines.base import ChatMessage
from reautod.errors import ReautodError
from reautod.pipeline.agent import AgentConversations, DialogueAgent
from reautod.pipeline.calls import CallManager
from tests.dialogue.conftest import Rig
from tests.pipeline.conftest import RecordingObserver, make_settings, wait_for
from tests.pipeline.fakes import FakeEngines
from tests.pipeline.loopback import LoopbackMedia

CALL = CallContext(call_id="c1", lead_name="Dana Smith", campaign="sellers", goal=None,
                   direction="outbound")


def fallback() -> AgentConversations:
    return AgentConversations(lambda: AgentSettings())


def played(reply: Reply, heard: str | None = None, cause: cv.ReplyCause = cv.ReplyCause.TURN) -> cv.Played:
    said = " ".join(p.text for p in reply.parts if isinstance(p, Line))
    heard = said if heard is None else heard
    return cv.Played(reply, cause, said, heard, interrupted=heard != said)


def test_a_reply_becomes_parts_then_and_ref() -> None:
    audio = CachedLine("Hello.", b"\x01\x00" * 80, 16000)
    reply = AgentReply(id=7, stage="greeter",
                       lines=(AgentLine("Hi Dana."), AgentLine("Hello.", "library:who", audio)),
                       llm=LlmRequest((ChatMessage("system", "be brief"),), 40, "Any price?"))
    out = to_reply(reply)
    first, approved, generate = out.parts
    assert first == Line("Hi Dana.")  # lead's data: not shared between calls
    assert isinstance(approved, Line) and approved.shared and approved.audio is not None
    assert approved.audio[0].pcm == audio.audio and approved.audio[0].sample_rate == 16000
    assert generate == cv.Generate((ChatMessage("system", "be brief"),), 40)
    named = to_reply(AgentReply(id=10, stage="qualifier", llm=LlmRequest(
        (ChatMessage("system", "be brief"),), 40, "Any price?", sentences=1, model="smart")))
    assert named.parts == (cv.Generate((ChatMessage("system", "be brief"),), 40, 1, "smart"),)
    assert out.then == cv.Listen() and out.ref == 7
    hang_up = to_reply(AgentReply(id=8, stage="closer", after=After.HANG_UP, reason="qualified"))
    assert hang_up.parts == () and hang_up.then == cv.HangUp("qualified")
    transfer = to_reply(AgentReply(id=9, stage="greeter", after=After.TRANSFER,
                                   reason="asked for a person", transfer_to="+13125550999"))
    assert transfer.then == cv.Transfer("+13125550999", "asked for a person")


@pytest.mark.parametrize(("reason", "agent_reason", "key", "cause"), [
    ("qualified", "qualified", False, EndCause.AGENT),
    ("opted_out", "opted_out", False, EndCause.AGENT),  # the agent's own opt-out
    ("opted_out", None, False, EndCause.SPOKEN_OPT_OUT),  # telephony's safety net
    ("opted_out", None, True, EndCause.KEYPAD_OPT_OUT),
    ("transferred", None, False, EndCause.AGENT),
    ("voicemail", None, False, EndCause.VOICEMAIL),
    ("stop", None, False, EndCause.CALLER_HUNG_UP),
    ("socket_closed", "qualified", False, EndCause.CALLER_HUNG_UP),
    ("silence", None, False, EndCause.CALLER_HUNG_UP),
    ("max_duration", None, False, EndCause.TIME_LIMIT),
    ("shutdown", None, False, EndCause.TIME_LIMIT),
    ("failed: RuntimeError", None, False, EndCause.FAILED),
    ("protocol: bad start", None, False, EndCause.FAILED),
])
def test_end_reasons_become_causes(reason: str, agent_reason: str | None, key: bool,
                                   cause: EndCause) -> None:
    assert end_cause(reason, agent_reason=agent_reason, pressed_key=key) is cause


@dataclass
class Settled:
    results: list[tuple[str, CallResult]] = field(default_factory=list)

    async def __call__(self, call: CallContext, agent: CallAgent, result: CallResult) -> None:
        self.results.append((call.call_id, result))


async def test_a_whole_call_through_the_seam(rig: Rig) -> None:
    """Opening, turns, what was heard (cut short by the caller), the agent's hang-up, the end."""
    agent = await rig.agent("real-estate-sellers")
    settled = Settled()
    conv = AgentConversation(CALL, agent, fallback().start(CALL), settled)
    opening = await conv.opening()
    assert opening is not None and opening.ref == 1 and opening.then == cv.Listen()
    text = " ".join(p.text for p in opening.parts if isinstance(p, Line))
    assert text.startswith("Hi Dana, this is Alex") or "Alex" in text
    # the caller cut in after the first words: the agent's history keeps only those
    conv.played(played(opening, heard="Hi Dana,", cause=cv.ReplyCause.OPENING))
    assert [s.text for s in agent.state.history] == ["Hi Dana,"]
    reply = await conv.reply(CallerTurn("Yes, I have a minute.", 0.9))
    assert agent.state.stage == "qualifier" and reply.ref == 2
    conv.played(played(reply))
    for said in ("Yes, I'm the owner.", "Next year, no rush.", "Just curious.", "About 90k."):
        reply = await conv.reply(CallerTurn(said, 0.9))
        conv.played(played(reply))
    assert reply.then == cv.HangUp(agent.state.disposition or "")
    await conv.ended(reply.then.reason)  # the pipeline ends the call with the cv.HangUp's reason
    [(call_id, result)] = settled.results
    assert call_id == "c1" and result.outcome is Outcome.NOT_QUALIFIED
    assert conv.result == result and ("closer" in [t for _, t in rig.records.transitions()])


async def test_sync_lines_need_no_model(rig: Rig) -> None:
    agent = await rig.agent("real-estate-sellers")
    conv = AgentConversation(CALL, agent, fallback().start(CALL))
    assert conv.goodbye("silence") == Line("Thanks for your time. Goodbye!", shared=True)
    assert conv.failure("tts_failed").text.startswith("Sorry, I didn't quite catch that")
    assert conv.silence() == Reply((Line("Are you still there?", shared=True),))
    await conv.opening()
    reply = await conv.reply(CallerTurn("Yes.", 0.9))
    conv.played(played(reply))
    # a model reply that fails is replaced by the question it was to ask
    llm_reply = await conv.reply(CallerTurn("Well, my uncle used to live here, it's a long story.",
                                            0.9))
    question = Line("Just to confirm, are you the owner of the home on Maple Street?")
    assert isinstance(llm_reply.parts[-2], cv.Generate) and llm_reply.parts[-1] == question
    assert conv.failure("llm_timeout") == question
    assert await conv.keypress("5") is None


@dataclass
class FakeSource:
    """AgentSource: an agent for campaigns in `agents`, none for the rest; records lookups."""

    agents: dict[str, CallAgent] = field(default_factory=dict)
    known: dict[str, bool] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)
    fail_with: ReautodError | None = None

    async def agent_for(self, call: CallContext) -> CallAgent | None:
        self.asked.append(call.call_id)
        if self.fail_with is not None:
            raise self.fail_with
        return self.agents.get(call.campaign or "")

    def has_playbook(self, campaign: str | None) -> bool | None:
        return self.known.get(campaign or "")


async def test_a_campaign_without_a_playbook_keeps_todays_agent() -> None:
    source = FakeSource()
    conversations = PlaybookConversations(source, fallback())
    conv = conversations.start(CALL)
    opening = await conv.opening()
    assert isinstance(conv.inner, DialogueAgent) and source.asked == ["c1"]
    assert opening is not None and opening.parts[0] == conversations.opening(CALL)
    reply = await conv.reply(CallerTurn("How much is it?", 0.9))
    assert isinstance(reply.parts[0], cv.Generate) and source.asked == ["c1"]  # resolved once


async def test_a_playbook_campaign_gets_the_agent(rig: Rig) -> None:
    agent = await rig.agent("real-estate-sellers")
    source = FakeSource(agents={"sellers": agent}, known={"sellers": True})
    settled = Settled()
    conversations = PlaybookConversations(source, fallback(), settled)
    # its opening is the agent's, decided when the call connects: nothing to prepare ahead
    assert conversations.opening(CALL) is None
    other = dataclasses.replace(CALL, campaign="plain")
    assert conversations.opening(other) == fallback().opening(other)
    conv = conversations.start(CALL)
    assert conv.silence() == Reply((Line("Are you still there?", shared=True),))
    # a turn before any opening (the opening failed) resolves the call too
    reply = await conv.reply(CallerTurn("Who is this?", 0.9))
    assert isinstance(conv.inner, AgentConversation) and conv.inner.agent is agent
    assert "automated assistant calling for Lakeside Realty" in " ".join(
        p.text for p in reply.parts if isinstance(p, Line))
    await conv.ended("stop")
    assert [r.outcome for _, r in settled.results] == [Outcome.NOT_QUALIFIED]


@dataclass
class KeypadOptOut(RecordingObserver):
    """The pipeline's observer with telephony's part of a key press (CallTracker.on_dtmf): the
    opt-out key ends the call at once, as "opted_out"."""

    manager: CallManager | None = None

    def on_dtmf(self, call_id: str, digit: str) -> None:
        super().on_dtmf(call_id, digit)
        session = self.manager.session(call_id) if self.manager is not None else None
        if digit == "9" and session is not None:
            session.end("opted_out")


async def test_the_opt_out_key_ends_a_live_playbook_call(rig: Rig) -> None:
    """The pipeline's DTMF path on a playbook call: the opening offers the key, the key reaches
    telephony, which ends the call, and the agent settles it as the keypad's opt-out."""
    agent = await rig.agent("real-estate-sellers")
    settled = Settled()
    observer = KeypadOptOut()
    conversations = PlaybookConversations(FakeSource(agents={"sellers": agent}), fallback(),
                                          settled)
    manager = CallManager(FakeEngines(), make_settings(), observer, conversations=conversations)
    observer.manager = manager
    await manager.start()
    media = LoopbackMedia()
    task = asyncio.create_task(manager.run(media, CALL))
    try:
        await wait_for(lambda: bool(observer.turns_of("c1", "agent")))
        await media.say(InputDTMFFrame(KeypadEntry("9")))
        reason = await asyncio.wait_for(asyncio.shield(task), 10)
    finally:
        if not task.done():
            media.hang_up()
        await asyncio.wait({task}, timeout=10)
        await manager.close()
    assert reason == "opted_out" and observer.dtmf == [("c1", "9")]
    [opening] = observer.turns_of("c1", "agent")
    assert "Lakeside Realty. To stop these calls, say stop or press 9." in opening.text
    [(_, result)] = settled.results
    assert (result.outcome, result.disposition) == (
        Outcome.OPTED_OUT, "opted out (keypad_opt_out) during greeter")


async def test_a_playbook_opening_decided_ahead_is_made_and_played_as_one_piece(rig: Rig) -> None:
    """A simulated campaign call: the playbook's own opening (its agent found before the call
    connects) is synthesized while the phone rings, and is what the call plays, in one piece."""
    agent = await rig.agent("real-estate-sellers")
    source = FakeSource(agents={"sellers": agent}, known={"sellers": True})
    engines = FakeEngines()
    observer = RecordingObserver()
    manager = CallManager(engines, make_settings(), observer,
                          conversations=PlaybookConversations(source, fallback()))
    await manager.start()
    media = LoopbackMedia()
    try:
        await manager.prepare_opening("c1", lead_name="Dana", expires_in_s=30,
                                      campaign="sellers")
        expected = manager.greetings.text_of("c1")
        assert expected is not None and expected.startswith("Hi Dana, ")  # the lead's data
        assert "Lakeside Realty. To stop these calls, say stop or press 9." in expected
        assert expected.endswith("Do you have a minute?")  # every line of the opening
        task = asyncio.create_task(manager.run(media, CALL))
        await wait_for(lambda: bool(observer.turns_of("c1", "agent")))
        media.hang_up()
        await asyncio.wait_for(task, 10)
    finally:
        await manager.close()
    assert source.asked == ["c1"]  # found once, ahead: the call keeps that agent (its variant)
    assert [t.text for t in observer.turns_of("c1", "agent")] == [expected]
    assert engines.tts.texts == [("c1", expected)]  # made once, before the call connected
    assert manager.greetings.outcomes == {"used": 1}
    assert len(media.marks) == 1  # one piece, no gaps between its sentences


async def test_an_opening_decided_for_a_call_that_never_connects_is_forgotten(rig: Rig) -> None:
    agent = await rig.agent("real-estate-sellers")
    source = FakeSource(agents={"sellers": agent})
    conversations = PlaybookConversations(source, fallback())
    assert await conversations.expected_opening(CALL) is not None
    conversations.forget("c1")
    conv = conversations.start(CALL)
    await conv.opening()
    assert source.asked == ["c1", "c1"]  # the call found its agent again
    plain = dataclasses.replace(CALL, campaign="plain")
    assert await conversations.expected_opening(plain) == fallback().opening(plain)


async def test_an_opening_that_cannot_be_decided_ahead_is_made_when_said() -> None:
    source = FakeSource(fail_with=ReautodError("database is down", code="store_unavailable"))
    manager = CallManager(FakeEngines(), make_settings(), RecordingObserver(),
                          conversations=PlaybookConversations(source, fallback()))
    await manager.prepare_opening("c1", lead_name="Dana", expires_in_s=30, campaign="sellers")
    assert source.asked == ["c1"] and len(manager.greetings) == 0
    await manager.close()

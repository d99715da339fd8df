"""The pure pieces: sentence splitting, playback tracking, agent context, start validation."""

from __future__ import annotations

import logging

import pytest

from reautod.api.media import StartRejected, parse_start
from reautod.call_recording import ConsentOutcome
from reautod.config import AgentSettings
from reautod.conversation import CallerTurn, Generate, Line, Played, Reply, ReplyCause
from reautod.errors import ReautodError
from reautod.pipeline.agent import DialogueAgent
from reautod.pipeline.opening import OpeningFields, render, render_opening, spoken_number
from reautod.pipeline.playback import PlaybackTracker
from reautod.pipeline.recording import GuardedSink
from reautod.pipeline.sentences import SentenceSplitter, clean, ends_sentence
from reautod.pipeline.turns import is_backchannel


async def _feed(splitter: SentenceSplitter, text: str) -> list[str]:
    out: list[str] = []
    for word in text.split(" "):
        out += await splitter.push(word + " ")
    return out


async def test_sentences_are_cut_as_they_complete() -> None:
    s = SentenceSplitter()
    assert await _feed(s, "That is great. Let me tell you more. And") == [
        "That is great.", "Let me tell you more."]
    assert await s.flush() == "And"


async def test_prices_and_titles_are_not_sentence_ends() -> None:
    # pipecat's aggregator reads past the period; a bare end-of-sentence match cut "$29." here
    s = SentenceSplitter()
    assert await _feed(s, "It costs $29.99 a month, and Dr. Smith will call. Bye") == [
        "It costs $29.99 a month,", "and Dr. Smith will call."]
    assert await s.flush() == "Bye"


async def test_which_pieces_end_a_sentence() -> None:
    s = SentenceSplitter()
    pieces = await _feed(s, "Thanks for picking up, I hear you. Is that \"right?\" Then")
    assert [ends_sentence(p) for p in pieces] == [False, True, True]  # a clause, two sentences
    assert not ends_sentence(await s.flush() or "")  # "Then": the model stopped mid-sentence


async def test_first_piece_is_cut_early_at_a_clause() -> None:
    s = SentenceSplitter()
    assert await _feed(s, "Thanks for picking up, I am calling about solar, okay") == [
        "Thanks for picking up,"]  # only the first piece is cut at a clause


async def test_run_on_text_is_cut_at_a_word_boundary() -> None:
    s = SentenceSplitter()
    pieces = await _feed(s, "word " * 30)
    assert pieces and len(pieces[0]) <= 60 and not pieces[0].endswith(" ")


async def test_control_characters_never_reach_tts() -> None:
    assert clean("a\x00b\x15c\nd\u200be") == "abc de"
    s = SentenceSplitter()
    assert await s.push("He\x00llo, there is a null\x1f in here, ") == [
        "Hello, there is a null in here,"]
    assert await s.flush() is None


def test_playback_tracker_heard_only_played_marks() -> None:
    t = PlaybackTracker()
    a, b, c = t.new_mark(1, "One."), t.new_mark(1, "Two."), t.new_mark(1, "Three.")
    assert t.playing
    assert t.echoed(a) is True
    t.clear()  # b and c were still buffered at Twilio
    assert t.echoed(b) is False and t.echoed(c) is False  # discards, not playback
    assert t.heard_text(1) == "One." and not t.playing
    assert t.echoed("stranger") is False and t.unknown_echoes == 1
    t.forget(1)  # reported: nothing of it is kept
    assert t.heard_text(1) == ""


def _played(agent: DialogueAgent, heard: str, *, said: str | None = None) -> None:
    agent.played(Played(Reply(()), ReplyCause.TURN, said if said is not None else heard, heard,
                        interrupted=said is not None))


async def test_agent_context_keeps_heard_part_and_alternates() -> None:
    agent = DialogueAgent.for_call(AgentSettings(), lead_name="Jane", goal=None)
    assert "Jane" in agent.system_prompt and "free consultation" in agent.system_prompt
    opening = await agent.opening()
    assert opening is not None and opening.parts == (agent.opening_line(),)
    assert opening.parts[0].text.startswith("Hi Jane,") and not opening.parts[0].shared
    _played(agent, "Hi Jane.")
    await agent.reply(CallerTurn("hello", 0.9))
    reply = await agent.keypress("1")
    _played(agent, "Great.", said="Great. More text here.")  # interrupted: only this was heard
    roles = [(m.role, m.content) for m in agent.messages()[1:]]
    assert roles == [("assistant", "Hi Jane."), ("user", "hello [pressed 1]"),
                     ("assistant", "Great.")]
    assert reply.parts == (Generate(agent.messages()[:-1]),)  # what the LLM was asked then
    _played(agent, "", said="Sorry, I")  # nothing heard: nothing enters the context
    assert agent.messages()[-1].content == "Great."


async def test_agent_lines_are_shared_and_inbound_waits() -> None:
    agent = DialogueAgent.for_call(AgentSettings(), lead_name="", goal=None, direction="inbound")
    assert await agent.opening() is None and agent.opening_line() is None
    assert agent.silence() == Reply((Line("Are you still there?", shared=True),))
    assert agent.goodbye("silence") == Line("Thanks for your time. Goodbye!", shared=True)
    assert agent.failure("llm_failed").shared
    # a call Twilio put through carries the inbound greeting: the caller is greeted at once
    # (before, they heard silence until the re-prompt)
    greeting = render_opening(AgentSettings().inbound_greeting,
                              OpeningFields.from_agent(AgentSettings()))
    greeted = DialogueAgent.for_call(AgentSettings(), lead_name="", goal=None,
                                     direction="inbound", opening=greeting)
    assert await greeted.opening() == Reply((Line("Thanks for calling Acme Solar. This is Alex, "
                                                  "an automated assistant. How can I help you?"),))


def test_opening_fields_and_their_spoken_forms() -> None:
    assert spoken_number("+12125550199") == "2 1 2, 5 5 5, 0 1 9 9"
    assert spoken_number("not a number") == "not a number"
    fields = OpeningFields("Curly {Braces} Ltd", "Alex", "#", None)
    template = "{business_name} for {lead_name}. {opt_out} {callback} Key {opt_out_key}."
    opening = render_opening(template, fields)
    agent = DialogueAgent.for_call(AgentSettings(), lead_name="Jane", goal=None, opening=opening)
    # Braces in a business name are text; an empty {callback} leaves no double space.
    assert agent.greeting == ("Curly {Braces} Ltd for Jane. To stop these calls, say stop or "
                              "press pound. Key pound.")
    silent = render_opening(template, OpeningFields("Acme", "Alex", None, "+12125550199"))
    assert "stop" not in silent and silent.endswith("call 2 1 2, 5 5 5, 0 1 9 9. Key .")


def test_templates_with_unknown_fields_do_not_crash() -> None:
    assert render("Hi {lead_name} {oops} {", lead_name="A") == "Hi {lead_name} {oops} {"
    assert render("Hi {lead_name} {oops}", lead_name="A") == "Hi A {oops}"


def test_backchannels() -> None:
    words = ["mhm", "uh huh", "yeah"]
    assert is_backchannel("Mhm.", words) and is_backchannel("Uh-huh", words)
    assert is_backchannel("uh huh!", words) and not is_backchannel("yeah I want it", words)
    assert not is_backchannel("", words)


def test_start_validation() -> None:
    good = {"event": "start", "streamSid": "MZ1", "start": {
        "streamSid": "MZ1", "callSid": "CA1",
        "customParameters": {"call_id": "c-1", "lead_name": "Ann", "direction": "inbound"}}}
    info = parse_start(good)
    assert (info.stream_sid, info.call_id, info.direction) == ("MZ1", "c-1", "inbound")
    # No customParameters at all: a generated call id, outbound.
    bare = parse_start({"event": "start", "start": {"streamSid": "MZ2"}})
    assert bare.call_id and bare.direction == "outbound"
    for bad in (
        {"event": "start", "start": {}},  # no streamSid
        {"event": "start", "start": "x"},
        {"event": "start", "start": {"streamSid": "MZ", "mediaFormat": {"sampleRate": 16000}}},
        {"event": "start", "start": {"streamSid": "MZ",
                                     "customParameters": {"direction": "sideways"}}},
    ):
        with pytest.raises(StartRejected):
            parse_start(bad)


def test_pipecat_logs_go_to_stdlib(caplog: pytest.LogCaptureFixture) -> None:
    from loguru import logger

    from reautod.pipeline import route_pipecat_logs

    route_pipecat_logs("WARNING")
    with caplog.at_level("DEBUG", logger="pipecat"):
        logger.debug("too chatty")
        logger.warning("worth seeing")
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        ("pipecat", "WARNING", "worth seeing")]


def test_a_failing_recording_stops_recording_once_and_never_raises(
        caplog: pytest.LogCaptureFixture) -> None:
    class Sink:
        def __init__(self) -> None:
            self.caller_pcm: list[bytes] = []
            self.agent_pcm: list[bytes] = []

        def caller(self, pcm: bytes) -> None:
            self.caller_pcm.append(pcm)

        def agent(self, pcm: bytes) -> None:
            if pcm == b"bad":
                raise ReautodError("disk full", code="recording_failed")
            self.agent_pcm.append(pcm)

        async def close(self, outcome: ConsentOutcome) -> None:
            pass

        async def discard(self) -> None:
            pass

    inner = Sink()
    sink = GuardedSink("c1", inner)
    sink.caller(b"a")
    sink.agent(b"b")
    with caplog.at_level(logging.WARNING):
        sink.agent(b"bad")
        sink.caller(b"c")
        sink.agent(b"d")
    assert not sink.recording
    assert inner.caller_pcm == [b"a"] and inner.agent_pcm == [b"b"]
    assert caplog.text.count("call c1: recording stopped (recording_failed: disk full)") == 1

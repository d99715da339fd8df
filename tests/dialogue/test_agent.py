"""The agent's checks and edge cases: refused slots, a slot lost before the yes, transfers,
the model as a supplement, failures of the store, and how calls end from outside."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from reautod.campaigns.settings import CampaignSettings
from reautod.config import AgentSettings
from reautod.conversation import Generate, Line
from reautod.dialogue.agent import AgentFactory
from reautod.dialogue.llm_extract import messages_for, read_answer, schema_for
from reautod.dialogue.offers import with_offers
from reautod.dialogue.playbook_file import parse_playbook
from reautod.dialogue.replies import After, EndCause
from reautod.dialogue.replies import Line as AgentLine
from reautod.dialogue.seam import to_reply
from reautod.dialogue.vocabulary import Outcome
from reautod.engines.base import ChatMessage
from reautod.errors import EngineError, UnavailableError
from reautod.pipeline.opening import OpeningFields
from reautod.store.repositories import AppointmentRepository
from tests.dialogue.conftest import Rig
from tests.dialogue.fakes import EXAMPLES, NOW, clock, converse, example


async def to_scheduler(rig: Rig, factory: AgentFactory | None = None):  # type: ignore[no-untyped-def]
    agent = await rig.agent("real-estate-sellers", factory)
    await agent.opening()
    for said in ("Yes.", "Yes, I'm the owner.", "As soon as possible.", "To downsize.", "About 300k."):
        reply = await agent.respond(said)
    assert agent.state.stage == "scheduler" and "Which works best" in reply.text
    return agent


async def test_a_time_outside_hours_is_refused_with_alternatives(rig: Rig) -> None:
    agent = await to_scheduler(rig)
    reply = await agent.respond("How about Saturday at 8 in the evening?")
    assert reply.text.startswith("Sorry, that time isn't available. I have ")
    assert ("book_appointment", "refused") in rig.records.decisions()
    assert agent.state.pending is None and len(agent.state.offered) == 2
    no = await agent.respond("No, neither.")  # not a confirmation: still choosing
    assert agent.state.booking is None and no.after is After.LISTEN
    pick = await agent.respond("The first one.")
    assert "Shall I book it?" in pick.text
    changed = await agent.respond("No.")
    assert changed.text == "What day and time would work best for you?"


async def test_a_slot_taken_before_the_yes_is_not_booked_twice(rig: Rig) -> None:
    agent = await to_scheduler(rig)
    other = await to_scheduler(rig)
    await agent.respond("Thursday at 10 am")
    await other.respond("Thursday at 10 am")
    booked = await agent.respond("yes")
    assert booked.text.startswith("You're all set for Thursday, December 10 at 10 AM your time")
    # max_per_slot is 2 in the example: a third call finds it full at its yes.
    third = await to_scheduler(rig)
    await third.respond("Thursday at 10 am")
    await other.respond("yes")
    lost = await third.respond("yes")
    assert lost.text.startswith("Sorry, that time isn't available.")
    rows = await AppointmentRepository(rig.db).between(NOW, datetime(2027, 1, 1, tzinfo=UTC))
    assert [r.starts_at for r in rows] == [datetime(2026, 12, 10, 16, 0, tzinfo=UTC)] * 2
    assert third.state.booking is None and ("book_appointment", "refused") in rig.records.decisions()


async def test_a_confirmation_the_caller_cut_off_is_said_again(rig: Rig) -> None:
    """The caller's trailing words cut into "You're all set for ...": the booking stands, and the
    next reply says the booked time again before anything else (here the closer's goodbye)."""
    agent = await to_scheduler(rig)
    await agent.respond("Thursday at 10 am")
    booked = await agent.respond("Yes,")
    confirmation = booked.lines[0]
    assert confirmation.commitment and confirmation.text.startswith("You're all set for Thursday")
    assert booked.after is After.HANG_UP and agent.state.booking is not None
    agent.heard(booked.id, "You're all set")  # the caller went on: "please book it"
    again = await agent.respond("please book it.")
    assert again.lines[0].text == confirmation.text and again.after is After.HANG_UP
    agent.heard(again.id, again.text)  # heard whole this time: owed no more
    assert agent.state.take_unheard() == [] and agent.state.commitments == {}
    # Heard in full the first time, nothing is repeated.
    other = await to_scheduler(rig)
    await other.respond("Thursday at 11 am")
    first = await other.respond("Yes.")
    other.heard(first.id, first.text)
    assert other.state.take_unheard() == []


async def test_transfer_to_a_person(rig: Rig) -> None:
    agent = await rig.agent("real-estate-sellers")
    await agent.opening()
    refused = await agent.respond("Can I speak to a real person?")
    assert "I can't connect you right now" in refused.text and refused.text.endswith(
        "When would be a better time to call you back?")
    rig.transfer_number = "+13125550999"
    agent = await rig.agent("real-estate-sellers")
    await agent.opening()
    reply = await agent.respond("Can I speak to a real person?")
    assert (reply.after, reply.transfer_to) == (After.TRANSFER, "+13125550999")
    result = await agent.end(EndCause.AGENT)
    assert result.outcome is Outcome.NOT_QUALIFIED  # nothing learned before the transfer
    assert result.disposition == "transferred to a person during greeter (0/100)"
    assert [d for d in rig.records.decisions() if d[0] == "transfer_to_human"] == [
        ("transfer_to_human", "refused"), ("transfer_to_human", "done")]


class FakeJsonModel:
    """JsonModel that answers with `answer` (or fails / stalls); records its requests."""

    def __init__(self, answer: str = "", fail: Exception | None = None, stall: bool = False) -> None:
        self.answer, self.fail, self.stall = answer, fail, stall
        self.requests: list[tuple[list[ChatMessage], dict[str, Any]]] = []

    async def complete_json(self, messages: list[ChatMessage], schema: dict[str, Any], *,
                            call_id: str, max_tokens: int) -> str:
        self.requests.append((messages, schema))
        if self.fail:
            raise self.fail
        if self.stall:
            await asyncio.sleep(30)
        return self.answer


async def test_the_model_fills_in_only_what_phrases_missed(rig: Rig) -> None:
    model = FakeJsonModel('{"timeline": "later"}')
    factory = AgentFactory(records=rig.records, effects=rig.effects, json_model=model, clock=clock)
    agent = await rig.agent("real-estate-sellers", factory)
    await agent.opening()
    await agent.respond("Yes.")
    await agent.respond("I own it.")  # a phrase: the model is not asked
    assert not model.requests
    await agent.respond("After the kids finish school, I suppose.")
    [(messages, schema)] = model.requests
    assert schema["properties"] == {"timeline": {"enum": ["soon", "months", "later", "unknown"]}}
    assert "After the kids finish school" in messages[-1].content
    assert agent.state.facts["timeline"].evidence == "model"
    # A phrase later corrects the model; the model never overrides a phrase.
    await agent.respond("Actually, as soon as possible.")
    assert agent.state.facts["timeline"].value == "soon"
    assert not agent.state.learn("timeline", "later", "model", "qualifier")


async def test_a_failing_or_slow_model_gives_nothing(rig: Rig) -> None:
    pb = example("real-estate-sellers").playbook
    assert read_answer('{"timeline": "someday"}', pb, ["timeline"]) == {}
    assert read_answer("not json", pb, ["timeline"]) == {}
    assert read_answer('["soon"]', pb, ["timeline"]) == {}
    assert read_answer('{"timeline": "unknown"}', pb, ["timeline"]) == {}
    assert schema_for(pb, ["is_owner"])["properties"]["is_owner"]["enum"] == ["yes", "no", "unknown"]
    assert "Question: Q?" in messages_for(pb, ["is_owner"], "Q?", "A")[1].content
    for model in (FakeJsonModel(fail=EngineError("boom")), FakeJsonModel(stall=True)):
        factory = AgentFactory(records=rig.records, effects=rig.effects, json_model=model, clock=clock)
        agent = await rig.agent("real-estate-sellers", factory)
        await agent.opening()
        await agent.respond("Yes.")
        await agent.respond("I own it.")
        reply = await agent.respond("After the kids finish school.")  # 1.5 s timeout at most
        assert "timeline" not in agent.state.facts and reply.llm is not None


async def test_store_failures_do_not_break_the_call(rig: Rig) -> None:
    rig.effects.fail_with = UnavailableError("database down")
    agent = await rig.agent("real-estate-sellers")
    await agent.opening()
    reply = await agent.respond("Put me on your do not call list.")
    assert reply.after is After.HANG_UP and ("opt_out", "failed") in rig.records.decisions()
    callback = await rig.agent("real-estate-sellers")
    await callback.opening()
    await callback.respond("Call me back tomorrow at 10.")
    sorry = await callback.respond("Yes.")
    assert sorry.after is After.LISTEN and sorry.text.startswith("Sorry, I didn't quite catch")
    assert ("schedule_callback", "failed") in rig.records.decisions()
    rig.records.accept = False  # the write-behind queue is full
    refused = await rig.agent("real-estate-sellers")
    await refused.opening()
    assert refused.journal.refused == 2  # the assignment and the first transition


@pytest.mark.parametrize(("cause", "outcome"), [
    (EndCause.VOICEMAIL, Outcome.VOICEMAIL),
    (EndCause.KEYPAD_OPT_OUT, Outcome.OPTED_OUT),
    (EndCause.FAILED, Outcome.FAILED),
    (EndCause.CALLER_HUNG_UP, Outcome.NOT_QUALIFIED),
])
async def test_ends_from_outside(rig: Rig, cause: EndCause, outcome: Outcome) -> None:
    agent = await rig.agent("real-estate-sellers")
    await agent.opening()
    result = await agent.end(cause)
    assert result.outcome is outcome and result.stage == "greeter"
    assert await agent.end(EndCause.AGENT) is result  # idempotent


async def test_what_was_heard_replaces_what_was_meant(rig: Rig) -> None:
    agent = await rig.agent("real-estate-sellers")
    opening = await agent.opening()
    agent.heard(opening.id, "Hi Dana, this is Alex")  # the caller cut in
    assert agent.state.history[-1].text == "Hi Dana, this is Alex"
    await agent.respond("Sure.")
    reply = await agent.respond("Yes I'm the owner.")
    assert reply.llm is not None
    agent.heard(reply.id, "")  # interrupted before a word: nothing was heard
    assert all(s.reply_id != reply.id for s in agent.state.history)
    snap = agent.snapshot()
    assert (snap.stage, snap.facts, snap.playbook) == ("qualifier", {"is_owner": "yes"},
                                                       "real-estate-sellers")
    await agent.respond("Tuesday at 3 pm")  # a time, but no booking in this stage
    assert agent.state.pending is None


async def test_an_unanswerable_question_is_asked_twice_then_left(rig: Rig) -> None:
    agent = await rig.agent("solar-homeowners", timezone="America/Denver")  # scripted questions
    await agent.opening()
    await agent.respond("Sure.")
    await agent.respond("Yes, we own it.")
    first = await agent.respond("Hmm, it varies.")  # no amount: asked again
    assert first.text == "About how much is your electric bill in a typical month?"
    second = await agent.respond("Hard to say really.")  # still none: the next question
    assert second.text == "How much sun does your roof get during the day?"
    assert agent.state.times_asked == {"homeowner": 1, "monthly_bill": 2, "roof": 1}


CALLER_ID = "+13125550100"


async def test_the_opening_offers_the_opt_out_right_after_the_identification(rig: Rig) -> None:
    campaign = CampaignSettings(opt_out_key="#", callback_number="+13125550188")
    rig.opening = campaign.opening_fields(AgentSettings(), CALLER_ID)
    agent = await rig.agent("real-estate-sellers")
    opening = await agent.opening()
    texts = [line.text for line in opening.lines]
    # the lead's A/B variant words the greeting ("this is Alex" or "it's Alex")
    assert texts[0].endswith("Alex, an automated assistant with Lakeside Realty.")
    assert texts[1:3] == [
        "To stop these calls, say stop or press pound.",
        "To ask us not to call you again, you can also call 3 1 2, 5 5 5, 0 1 8 8."]
    assert len(texts) == 4 and "Maple Street" in texts[3]
    assert texts[3].endswith("Do you have a minute?")
    # fixed text, the same on every call of the campaign: its audio may be cached
    assert [line.shared for line in opening.lines] == [False, True, True, False]
    assert [p.shared for p in to_reply(opening).parts if isinstance(p, Line)] == [
        False, True, True, False]
    # the very sentences of the campaign's rendered opening (today's agent, the dialer)
    rendered = campaign.render_opening(AgentSettings(), CALLER_ID)
    assert all(line.text in rendered for line in opening.lines[1:3]), rendered
    assert opening.llm is None and agent.state.history[-1].text == opening.text
    reply = await agent.respond("Yes, I have a minute.")  # the question still gets its answer
    assert agent.state.stage == "qualifier" and "owner" in reply.text


async def test_the_opening_without_the_offer_or_a_campaign(rig: Rig) -> None:
    # the campaign turned the offer off: the number for DNC requests is still given (the
    # caller ID when neither the campaign nor the config has a callback number)
    rig.opening = CampaignSettings(opt_out_offer=False).opening_fields(AgentSettings(), CALLER_ID)
    quiet = await (await rig.agent("real-estate-sellers")).opening()
    assert "press" not in quiet.text and "To stop these calls" not in quiet.text
    identification, callback = [line.text for line in quiet.lines][:2]
    # the lead's A/B variant words the greeting ("this is Alex" or "it's Alex")
    assert identification.endswith("Alex, an automated assistant with Lakeside Realty.")
    assert callback == "To ask us not to call you again, you can also call 3 1 2, 5 5 5, 0 1 0 0."
    # no campaign's fields: the configured agent's (the factory's default, from_agent)
    rig.opening = None
    plain = await (await rig.agent("real-estate-sellers")).opening()
    assert [line.text for line in plain.lines][1] == "To stop these calls, say stop or press 9."
    configured = AgentFactory(records=rig.records, effects=rig.effects, clock=clock,
                              opening=OpeningFields.from_agent(AgentSettings(
                                  business_name="Lakeside Realty LLC",
                                  callback_number="+18005550199")))
    own = await (await rig.agent("real-estate-sellers", configured)).opening()
    assert [line.text for line in own.lines][1:3] == [
        "To stop these calls, say stop or press 9.",
        "To ask us not to call you again, you can also call 8 0 0, 5 5 5, 0 1 9 9."]


def test_the_offers_follow_the_sentence_naming_the_business() -> None:
    offers = ("To stop these calls, say stop or press 9.",)
    said = [AgentLine("Hello. This is Acme Inc. calling for you! Got a minute?")]
    assert [ln.text for ln in with_offers(said, offers, ("nobody", "acme inc."))] == [
        "Hello. This is Acme Inc. calling for you!", offers[0], "Got a minute?"]
    # no business named: after the whole first line; nothing to offer: as it was
    other = [AgentLine("Hi there. Got a minute?"), AgentLine("Second.")]
    assert [ln.text for ln in with_offers(other, offers, ("Acme",))] == [
        "Hi there. Got a minute?", offers[0], "Second."]
    assert with_offers(other, (), ("Acme",)) == other
    assert [ln.text for ln in with_offers([], offers, ("Acme",))] == list(offers)
    named_last = [AgentLine("This is Acme.")]
    assert with_offers(named_last, offers, ("Acme",))[0] is named_last[0]


TIMELINE_QUESTION = "If the price were right, when would you ideally want to sell?"


@pytest.mark.parametrize("model_says", [
    "Thanks, that helps.",  # an acknowledgement: the question follows it
    "Great. What color is your front door?",  # a question of its own: ours still follows
    "",  # nothing: the fallback is the question itself
])
async def test_the_approved_question_follows_whatever_the_model_writes(rig: Rig,
                                                                       model_says: str) -> None:
    agent = await rig.agent("real-estate-sellers")
    rig.llm.reply = model_says
    talk = await converse(agent, ["Yes, I have a minute.", "Yes, I'm the owner."], rig.llm)
    reply = talk.replies[-1]
    assert reply.llm is not None and rig.llm.requests  # the model was asked to acknowledge
    assert reply.question == AgentLine(TIMELINE_QUESTION) and reply.llm.fallback == TIMELINE_QUESTION
    *_, generate, question = to_reply(reply).parts
    assert isinstance(generate, Generate) and question == Line(TIMELINE_QUESTION)
    assert talk.heard[-1].endswith(TIMELINE_QUESTION), talk.heard[-1]
    assert talk.heard[-1].count(TIMELINE_QUESTION) == 1
    # one sentence of the model's is said before it: its own question never is
    assert reply.llm.sentences == 1 and isinstance(generate, Generate) and generate.sentences == 1
    assert "front door" not in talk.heard[-1]
    assert agent.state.asked == "timeline" and agent.state.last_question == TIMELINE_QUESTION
    assert agent.state.history[-1].text == talk.heard[-1]  # the history holds what was heard


async def test_the_stage_s_named_model_writes_its_replies(rig: Rig) -> None:
    sellers = (EXAMPLES / "real-estate-sellers.yaml").read_text()
    goal = "    goal: Learn whether they own the home, when they would sell, why, and their price.\n"
    playbook = parse_playbook(sellers.replace(goal, goal + "    model: smart\n"),
                              models={"smart"})
    agent = await rig.agent(playbook)
    talk = await converse(agent, ["Yes, I have a minute.", "Yes, I'm the owner."], rig.llm)
    reply = talk.replies[-1]
    assert reply.stage == "qualifier" and reply.llm is not None and reply.llm.model == "smart"
    *_, generate, _question = to_reply(reply).parts
    assert isinstance(generate, Generate) and generate.model == "smart"
    assert rig.llm.models == ["smart"]  # the greeter, naming none, spoke its lines only


async def test_a_lead_without_a_street_hears_lines_that_need_none(rig: Rig) -> None:
    agent = await rig.agent("real-estate-sellers", custom={}, city=None)  # a caller who rang in
    opening = (await agent.opening()).text
    assert " on ." not in opening and " near " not in opening, opening
    assert opening.endswith("lately. Do you have a minute?") or \
        opening.endswith("your home. Do you have a minute?"), opening
    asked = await agent.respond("Yes, I have a minute.")
    assert asked.text.endswith("are you the owner of the home?"), asked.text
    prompt = agent.lines.system_prompt("qualifier", None).content
    assert "who owns a home. Speak naturally" in prompt, prompt


async def test_a_caller_who_rang_in_is_answered_by_the_inbound_example(rig: Rig) -> None:
    campaign = CampaignSettings(opt_out_key="#", callback_number="+13125550188")
    rig.opening = campaign.opening_fields(AgentSettings(), CALLER_ID)
    agent = await rig.agent("real-estate-inbound", direction="inbound", custom={}, city=None,
                            name=None)  # a stranger who just became a lead
    opening = await agent.opening()
    # greeted as the one who answers, with no offer to stop calls we did not make
    assert opening.text == ("Thanks for calling Lakeside Realty. This is Alex, an automated "
                            "assistant. Are you calling about selling a home?")
    reply = await agent.respond("Yes, I am.")
    assert agent.state.stage == "qualifier" and reply.text.endswith("Are you the owner of the home?")

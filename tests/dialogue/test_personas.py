"""Scripted lead personas at the dialogue level (no audio): each ends with the right outcome,
transitions and score, whatever the (fake, rambling) model says in between."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from reautod.dialogue.agent import AgentFactory
from reautod.dialogue.cache import ResponseCache
from reautod.dialogue.ports import AgentCall
from reautod.dialogue.replies import After, EndCause
from reautod.dialogue.vocabulary import Outcome
from reautod.store.repositories import (
    AppointmentRepository,
)
from tests.dialogue.conftest import Rig
from tests.dialogue.fakes import NOW, clock, converse, example


async def test_interested_lead_books(rig: Rig) -> None:
    agent = await rig.agent("real-estate-sellers")
    talk = await converse(agent, [
        "Yes, I have a minute.",
        "Yes, I'm the owner.",
        "Probably in the next few months.",
        "We're moving closer to our grandkids.",
        "Maybe around four hundred thousand.",
        "Tuesday at three works.",
        "Yes please.",
    ], rig.llm)
    assert talk.result.outcome is Outcome.BOOKED
    assert talk.result.score == 90  # owner 30 + months 24.5 + motivation 15 + price 20
    assert rig.records.transitions() == [(None, "greeter"), ("greeter", "qualifier"),
                                         ("qualifier", "scheduler"), ("scheduler", "closer")]
    # Spoken in the lead's time; stored in UTC (15:00 CST = 21:00 UTC).
    assert "Tuesday, December 15 at 3 PM your time. Shall I book it?" in talk.heard[-2]
    assert "You're all set for Tuesday, December 15 at 3 PM your time" in talk.heard[-1]
    [row] = await AppointmentRepository(rig.db).between(NOW, datetime(2027, 1, 1, tzinfo=UTC))
    assert row.starts_at == datetime(2026, 12, 15, 21, 0, tzinfo=UTC)
    assert row.contact_id == rig.lead.contact_id and row.timezone == "America/Chicago"
    assert talk.result.booking_ref == str(row.id)
    assert talk.replies[-1].after is After.HANG_UP
    assert ("book_appointment", "proposed") in rig.records.decisions()
    assert ("book_appointment", "done") in rig.records.decisions()
    facts = agent.snapshot().facts
    assert facts == {"is_owner": "yes", "timeline": "months",
                     "motivation": "We're moving closer to our grandkids.", "price": 400000.0}
    # The whole conversation reached the model, across stages, as the caller heard it.
    last_request = rig.llm.requests[-1][1]
    assert "Yes, I'm the owner." in " ".join(m.content for m in last_request)
    assert ("ended", "booked") in rig.observer.events


async def test_lead_asks_for_a_callback(rig: Rig) -> None:
    agent = await rig.agent("real-estate-sellers")
    talk = await converse(agent, [
        "I'm driving right now, can you call me back tomorrow at 4?",
        "Yes.",
    ], rig.llm)
    assert talk.result.outcome is Outcome.CALLBACK
    assert talk.heard[1] == ("No problem at all. I'll call you back Wednesday, December 9 at "
                             "4 PM your time. Does that work?")
    assert rig.effects.callbacks == [datetime(2026, 12, 9, 22, 0, tzinfo=UTC)]
    assert talk.result.callback_at == datetime(2026, 12, 9, 22, 0, tzinfo=UTC)
    assert rig.records.transitions() == [(None, "greeter")]
    assert rig.records.decisions() == [("schedule_callback", "proposed"),
                                       ("schedule_callback", "done")]
    assert talk.replies[-1].after is After.HANG_UP


async def test_callback_outside_calling_hours_moves_to_the_window(rig: Rig) -> None:
    agent = await rig.agent("real-estate-sellers")
    talk = await converse(agent, ["Call me back tonight at 10.", "Okay."], rig.llm)
    # 10 PM is outside the calling window (campaign hours 09:00-20:00 by default, federal
    # 08:00-21:00): the earliest allowed is 9 AM the next day, on the lead's clock.
    assert "The earliest I can is Wednesday, December 9 at 9 AM your time" in talk.heard[1]
    assert rig.effects.callbacks == [datetime(2026, 12, 9, 15, 0, tzinfo=UTC)]
    assert talk.result.outcome is Outcome.CALLBACK


async def test_objects_twice_then_agrees(rig: Rig) -> None:
    agent = await rig.agent("real-estate-sellers")
    talk = await converse(agent, [
        "Honestly the market is bad right now.",
        "I already have an agent.",
        "Okay, sure, go ahead.",
        "Yes, it's mine.",
        "As soon as possible.",
        "We need more space for the kids.",
        "Around 350k.",
        "Thursday afternoon.",
        "The second one.",
        "Yes.",
    ], rig.llm)
    assert agent.state.objections == 2
    assert rig.records.transitions() == [
        (None, "greeter"), ("greeter", "objections"), ("objections", "qualifier"),
        ("qualifier", "scheduler"), ("scheduler", "closer")]
    assert talk.result.outcome is Outcome.BOOKED and talk.result.score == 100
    assert "12 PM or 12:30 PM" in talk.heard[8]  # Thursday afternoon's first two slots
    assert "Thursday, December 10 at 12:30 PM your time" in talk.heard[9]


async def test_not_interested(rig: Rig) -> None:
    agent = await rig.agent("real-estate-sellers")
    talk = await converse(agent, ["No thanks, I'm not interested.",
                                  "No, really, I'm not interested."], rig.llm)
    assert talk.result.outcome is Outcome.NOT_INTERESTED
    assert talk.result.score is None
    assert rig.records.transitions() == [(None, "greeter"), ("greeter", "objections")]
    assert talk.heard[-1].startswith("I understand. Thanks for your time")
    assert rig.records.decisions() == [("end_call", "done")]  # with the turn as evidence
    assert talk.replies[-1].after is After.HANG_UP
    assert not rig.llm.requests  # every line was approved or scripted


async def test_stop_calling_me(rig: Rig) -> None:
    agent = await rig.agent("real-estate-sellers")
    talk = await converse(agent, ["Stop calling me."], rig.llm)
    assert talk.result.outcome is Outcome.OPTED_OUT
    assert rig.effects.opted_out == ["+13125550123"]
    assert talk.heard[-1] == "Understood. I've removed your number and you won't be called again. Goodbye."
    assert talk.replies[-1].after is After.HANG_UP and talk.replies[-1].reason == "opted_out"
    assert rig.records.decisions() == [("opt_out", "done")]


async def test_after_its_opt_out_goodbye_the_agent_only_hangs_up(rig: Rig) -> None:
    agent = await rig.agent("real-estate-sellers")
    await converse(agent, ["Stop calling me."], rig.llm)
    # the caller talks over the goodbye, or the STT split their words into two turns
    after = await agent.respond("Yes, I'm the owner, and do not call me again.")
    assert after.after is After.HANG_UP and after.reason == "opted_out"
    assert after.lines == () and after.llm is None and after.question is None
    assert not rig.llm.requests
    assert (await agent.end(EndCause.CALLER_HUNG_UP)).outcome is Outcome.OPTED_OUT
    assert rig.records.decisions() == [("opt_out", "done")]  # decided once


async def test_are_you_a_robot_then_qualifies(rig: Rig) -> None:
    agent = await rig.agent("real-estate-sellers")
    talk = await converse(agent, [
        "Wait, are you a robot?",
        "Okay, go ahead.",
        "Yes I own it.",
        "Not sure, someday maybe.",
        "Just curious what it's worth.",
        "I'd hope for 500 thousand.",
    ], rig.llm)
    assert talk.heard[1].startswith("Yes, I'm an automated assistant calling for Lakeside Realty.")
    assert talk.heard[1].endswith("Do you have a minute?")  # and the question again
    assert talk.replies[1].lines[0].cache_key == "compliance:disclosure"
    # owner 30 + later 3.5 + motivation 15 + price 20 = 68.5 -> 68: qualified, goes to booking
    assert talk.result.score == 68
    assert talk.result.outcome is Outcome.QUALIFIED  # the caller hung up without booking
    assert rig.records.transitions()[-1] == ("qualifier", "scheduler")


async def test_wrong_person(rig: Rig) -> None:
    agent = await rig.agent("real-estate-sellers")
    talk = await converse(agent, ["Sorry, I'm not the owner, you have the wrong number."], rig.llm)
    assert talk.result.outcome is Outcome.WRONG_PERSON
    assert talk.heard[-1] == "Sorry for the trouble. Have a good day!"


async def test_solar_scripted_lead_books_without_the_model(rig: Rig) -> None:
    agent = await rig.agent("solar-homeowners", timezone="America/Denver")
    talk = await converse(agent, [
        "Sure.",
        "Yes we own it.",
        "About two hundred dollars.",
        "Full sun, no trees.",
        "This summer would be great.",
        "Tomorrow at 10 am.",
        "Yes, book it.",
    ], rig.llm)
    assert talk.result.outcome is Outcome.BOOKED and talk.result.score == 100
    assert not rig.llm.requests
    assert talk.heard[2] == "About how much is your electric bill in a typical month?"
    [row] = await AppointmentRepository(rig.db).between(NOW, datetime(2027, 1, 1, tzinfo=UTC))
    assert row.starts_at == datetime(2026, 12, 9, 17, 0, tzinfo=UTC)  # 10:00 MST


async def test_approved_answers_come_from_the_cache_with_their_audio(rig: Rig) -> None:
    cache = ResponseCache()
    loaded = example("real-estate-sellers")
    await cache.warm(loaded.name, loaded.version, {"library:how-got-number": (
        "Your number came from public property records for homeowners in the area. If you'd "
        "like, I can take you off our list.")}, synthesize=_tone)
    factory = AgentFactory(records=rig.records, effects=rig.effects, cache=cache, clock=clock)
    agent = factory.start(AgentCall(uuid.uuid4(), rig.lead), loaded)
    await agent.opening()
    reply = await agent.respond("How did you get my number?")
    [answer, question] = reply.lines
    assert answer.cache_key == "library:how-got-number"
    assert answer.cached is not None and answer.cached.audio == b"\x01\x00" * 4
    assert question.text.endswith("Do you have a minute?")
    assert cache.stats().audio_hits == 1


async def _tone(text: str) -> tuple[bytes, int]:
    return b"\x01\x00" * 4, 8000

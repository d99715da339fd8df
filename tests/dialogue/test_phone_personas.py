"""Scripted lead personas through the real phone path: reautod as a subprocess on the real small
models (greedy replies), a campaign running the real-estate example playbook, and one simulated
call per persona (`reautoctl call simulate`: the lead's lines spoken by the real voice, heard by
the real STT). The decisions come from code (extraction, tools), so each persona ends with the
same outcome, transitions and score in the store whatever the tiny model phrases.

- an interested lead who books: the appointment row (one of the campaign's slots, in UTC),
  confirmed in the lead's time before it was booked; what a user then sees (`reautoctl call
  show`, `reautoctl stats`, the A/B report);
- one who asks for a callback, one who objects twice then agrees, one who is not interested,
  one who asks "are you a robot?" (told it is an automated assistant), one who says "stop
  calling me" (on the do-not-call list, the call ended by the agent's goodbye).

One daemon for the module; the calls run one after another, at the phone's own pace (a loaded
machine's slow reply must not look like the end of the agent's turn to the simulated lead). Side
by side they were not reliable on a loaded 2-core box: five lead scripts synthesized at once ran
past the TTS timeout before the calls even started.
"""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from reautod.config import DatabaseSettings
from reautod.dialogue.call_record import AgentRecord
from reautod.dialogue.part import SIMULATED_PHONE
from reautod.store.call_observer import call_uuid
from reautod.store.database import Database
from reautod.store.models import DncEntry
from reautod.store.repositories import AppointmentRepository
from reautod.store.repositories.appointments import AppointmentRow
from tests.conversation.conftest import small_daemon  # noqa: F401 (the daemon on small models)
from tests.dialogue.test_daemon_agent import Stored, ctl_json, stored
from tests.fixtures.daemon import DaemonProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

LEAD = [
    "Yes, I have a minute.",
    "Yes, I'm the owner. I want to sell as soon as possible because we are downsizing.",
    "We are moving closer to our grandkids.",
    "About four hundred thousand dollars.",
    "The first one works for me.",
    "Yes, please book it.",
]


async def appointment_of(d: DaemonProcess, call_id: str) -> AppointmentRow | None:
    db = Database(f"sqlite+aiosqlite:///{d.workdir / 'state' / 'reautod.db'}", DatabaseSettings())
    await db.open()
    try:
        return await AppointmentRepository(db).of_call(call_uuid(call_id))
    finally:
        await db.close()


@pytest.fixture(scope="module")
def sellers(small_daemon: DaemonProcess) -> DaemonProcess:  # noqa: F811
    """The daemon, with the campaign `sellers` running the real-estate example playbook."""
    created = small_daemon.ctl("campaign", "create", "sellers", "--set",
                               "playbook=real-estate-sellers")
    assert created.returncode == 0, created.stderr
    return small_daemon


async def test_a_simulated_lead_qualifies_and_books(sellers: DaemonProcess) -> None:
    daemon = sellers
    args = [a for line in LEAD for a in ("--say", line)]
    # At the phone's own pace: the simulated lead waits 30 s of call time for each reply, which
    # a loaded test machine can need for the STT and the booking (--fast halves that wait).
    result = ctl_json(daemon, "call", "simulate", "--campaign", "sellers", *args, timeout=600)
    heard = [t["text"] for t in result["turns"] if t["speaker"] == "caller"]
    said = [t["text"] for t in result["turns"] if t["speaker"] == "agent"]

    call, _moves, _scores, _first = await stored(daemon, result["call_id"])
    appointment = await appointment_of(daemon, result["call_id"])
    print(result["simulator"])  # how long each reply took (shown with -s)
    assert call.outcome == "booked", (call.outcome, call.disposition, heard, said,
                                      result["simulator"])
    # The appointment: one of the campaign's slots (20 minutes, in its Chicago business
    # hours), stored in UTC, confirmed to the caller in their time before it was booked.
    assert appointment is not None and appointment.contact_id is not None
    assert appointment.timezone == "America/Chicago"
    local = appointment.starts_at.astimezone(ZoneInfo("America/Chicago"))
    assert local.weekday() < 5 and time(9) <= local.time() < time(17), local
    assert (appointment.ends_at - appointment.starts_at).total_seconds() == 20 * 60
    assert any("Shall I book it?" in line for line in said), said
    assert any("You're all set for" in line for line in said), said

    shown = ctl_json(daemon, "call", "show", result["call_id"])
    record = AgentRecord.model_validate(shown["agent"])
    assert record.playbook == "real-estate-sellers" and record.variant in ("a", "warm-open")
    assert record.outcome == "booked"
    stages = [(t.from_stage, t.to_stage) for t in record.transitions]
    assert stages[:3] == [(None, "greeter"), ("greeter", "qualifier"), ("qualifier", "scheduler")]
    assert ("scheduler", "closer") in stages
    assert record.score is not None and record.score >= 60
    assert record.scores[-1].reason and "qualified" in record.scores[-1].reason
    assert {f.fact for f in record.scores[-1].factors} == {"is_owner", "timeline", "motivation",
                                                           "price"}
    assert record.appointment is not None and record.appointment.id == str(appointment.id)
    booking = [d.status for d in record.decisions if d.tool == "book_appointment"]
    assert booking == ["proposed", "done"], record.decisions  # confirmed, then booked
    text = daemon.ctl("call", "show", result["call_id"])
    assert text.returncode == 0, text.stderr
    for expected in ("real-estate-sellers", "scheduler", "closer", "book_appointment", "booked"):
        assert expected in text.stdout, text.stdout
    print(text.stdout)  # what a user reads (shown with -s)

    stats = ctl_json(daemon, "stats", "--campaign", "sellers")
    assert sum(day["booked"] for day in stats["days"]) == 1, stats
    report = ctl_json(daemon, "playbook", "ab-report", "real-estate-sellers")
    rows = {row["variant"]: row for row in report["variants"]}
    assert rows[record.variant]["calls"] == 1 and rows[record.variant]["booked"] == 1, report
    assert datetime.fromisoformat(record.appointment.starts_at) == appointment.starts_at


async def persona(daemon: DaemonProcess, *lines: str) -> tuple[Stored, list[str]]:
    """One simulated call of the campaign where the lead says `lines` (each after the agent's
    reply), then hangs up: the call as stored, and what the agent said."""
    args = [a for line in lines for a in ("--say", line)]
    result = ctl_json(daemon, "call", "simulate", "--campaign", "sellers", *args, timeout=300)
    said = [t["text"] for t in result["turns"] if t["speaker"] == "agent"]
    return await stored(daemon, result["call_id"]), said


async def on_dnc(daemon: DaemonProcess, phone: str) -> list[tuple[str, str | None]]:
    db = Database(f"sqlite+aiosqlite:///{daemon.workdir / 'state' / 'reautod.db'}",
                  DatabaseSettings())
    await db.open()
    try:
        async with AsyncSession(db.engine) as session:
            rows = await session.execute(select(DncEntry.source, DncEntry.channel)
                                         .where(DncEntry.phone_e164 == phone))
            return [(source, channel) for source, channel in rows]
    finally:
        await db.close()


async def test_a_lead_who_asks_for_a_callback(sellers: DaemonProcess) -> None:
    (call, moves, scores, _), said = await persona(
        sellers, "Can you call me back tomorrow at 4 pm?", "Yes.")
    assert call.outcome == "callback", (call.outcome, call.disposition, said)
    assert moves == [(None, "greeter")] and scores == []
    assert any("your time" in line for line in said), said  # proposed in the lead's time


async def test_a_lead_who_objects_twice_then_agrees(sellers: DaemonProcess) -> None:
    (call, moves, scores, _), said = await persona(
        sellers, "The market is bad right now.", "I already have an agent.",
        "Okay, sure, go ahead.")
    # two objections answered from the library, then on to the questions; the lead hung up
    # before answering any, so nothing was learned or scored
    assert moves == [(None, "greeter"), ("greeter", "objections"), ("objections", "qualifier")
                     ], (moves, said)
    assert call.outcome == "not_qualified" and scores == [], (call.outcome, call.disposition)


async def test_a_lead_who_is_not_interested(sellers: DaemonProcess) -> None:
    (call, moves, scores, _), said = await persona(
        sellers, "No thanks, I'm not interested.", "No, really, I'm not interested.")
    assert call.outcome == "not_interested", (call.outcome, call.disposition, said)
    assert moves == [(None, "greeter"), ("greeter", "objections")] and scores == []


async def test_a_lead_who_asks_if_it_is_a_robot(sellers: DaemonProcess) -> None:
    (call, moves, scores, _), said = await persona(sellers, "Are you a robot?")
    # the playbook's approved disclosure, then its question again
    assert len(said) >= 2 and "automated assistant" in said[1], said
    assert moves == [(None, "greeter")] and scores == []
    assert call.outcome == "not_qualified", (call.outcome, call.disposition)


async def test_a_lead_who_says_stop_calling_me(sellers: DaemonProcess) -> None:
    (call, moves, scores, _), said = await persona(sellers, "Stop calling me.")
    assert call.outcome == "opted_out", (call.outcome, call.disposition, said)
    assert await on_dnc(sellers, SIMULATED_PHONE) == [("request", "agent_tool")]
    # the compliance line, then the agent hung up: nothing said after it
    assert said[-1].endswith("you won't be called again. Goodbye."), said
    assert moves == [(None, "greeter")] and scores == []

"""A playbook call that books, end to end: reautod as a subprocess on the real small models, a
campaign running the real-estate example playbook, and one simulated call whose lead (spoken by
the real voice, heard by the real STT) answers the qualifier and takes the first slot the
scheduler offers from the campaign's own business hours. What a user then sees: the appointment
row, the outcome booked, `reautoctl call show` with the stages and the score's reasons,
`reautoctl stats` counting it booked and the A/B report listing it under its variant."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest

from reautod.config import DatabaseSettings
from reautod.dialogue.call_record import AgentRecord
from reautod.store.call_observer import call_uuid
from reautod.store.database import Database
from reautod.store.repositories import AppointmentRepository
from reautod.store.repositories.appointments import AppointmentRow
from tests.conversation.conftest import small_daemon  # noqa: F401 (the daemon on small models)
from tests.dialogue.test_daemon_agent import ctl_json, stored
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


async def test_a_simulated_lead_qualifies_and_books(small_daemon: DaemonProcess  # noqa: F811
                                                    ) -> None:
    daemon = small_daemon
    created = daemon.ctl("campaign", "create", "sellers", "--set", "playbook=real-estate-sellers")
    assert created.returncode == 0, created.stderr
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

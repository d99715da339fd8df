"""Issue 14's "done when" through a real daemon on the real small models: a campaign running the
real-estate example playbook, the rep's calendar on Radicale, an SMTP server, a CRM receiver, a
receiver that always fails, and the Sheets stand-in, all configured in `[integrations]`. One
simulated call whose lead (spoken by the real voice, heard by the real STT) qualifies and takes
the first slot offered produces: the event on the rep's CalDAV calendar, the rep's email with
the ICS, signed webhooks at the CRM (appointment.booked, call.completed, lead.scored,
lead.qualified), dead letters for the failing receiver in `reautoctl outbox dead`, a row in the
results sheet with the appointment, and the call in `reautoctl export` as JSON, CSV and XML."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from icalendar import Calendar

from reautod.integrations import signing
from reautod.store.call_observer import call_uuid
from tests.conversation.conftest import daemon_config
from tests.dialogue.test_phone_personas import LEAD  # the lead who books
from tests.fixtures.daemon import DaemonProcess
from tests.integrations.daemon_results import NS, dead_letters, eventually, exported_call, servers
from tests.integrations.radicale_server import Radicale, get_events

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SECRET = "whsec-booked-call"


def test_a_booked_call_reaches_every_tool_through_the_daemon(
    small_models_dir: Path, caldav_server: Radicale, tmp_path: Path,
) -> None:
    runtime = tempfile.mkdtemp(prefix="rt-", dir="/tmp")  # the socket path must stay short
    with servers() as s:
        credentials = s.credentials(tmp_path / "credentials", SECRET, caldav_server)
        # the lead's slots: the rep's whole week, in the playbook's zone, from now on
        config = daemon_config(tmp_path, runtime, small_models_dir) + s.integrations(
            caldav_server, broken_events=["appointment.booked"], caldav_extra=(
                'timezone = "America/Chicago"\nworkdays = [0, 1, 2, 3, 4, 5, 6]\n'
                'day_start = "00:00:00"\nday_end = "23:30:00"\nslot_minutes = 20\n'
                'min_notice_minutes = 0\n'
                'meeting_link_template = "https://meet.example.com/{booking}"\n'))
        daemon = DaemonProcess(tmp_path, config, env={
            "HF_HUB_OFFLINE": "1", "CREDENTIALS_DIRECTORY": str(credentials)})
        for name in [n for n in daemon.env if n.startswith("REAUTOD_")]:
            del daemon.env[name]  # a developer's shell must not reconfigure it

        def ctl(*args: str) -> str:
            done = daemon.ctl(*args, timeout=600)
            assert done.returncode == 0, (args, done.stdout, done.stderr, daemon.log()[-3000:])
            return done.stdout

        daemon.start()
        try:
            daemon.wait_ready(timeout=240)
            health = json.loads(ctl("--json", "health"))["checks"]["integrations"]
            assert health["ok"] is True and health["detail"].startswith("email, sheets, webhook;")
            ctl("campaign", "create", "sellers", "--set", "playbook=real-estate-sellers")
            # at the phone's own pace: a loaded machine can need the 30 s of call time the
            # simulated lead waits for each reply (--fast halves it)
            result = json.loads(ctl("--json", "call", "simulate", "--campaign",
                                    "sellers", *[a for line in LEAD for a in ("--say", line)]))
            call_id = str(call_uuid(result["call_id"]))
            said = [t["text"] for t in result["turns"]]

            # signed webhooks at the CRM: the booking as it was made, then the call's end
            def about_the_call() -> list[Any]:
                return [r for r in s.crm.accepted() if r.json()["data"].get("call_id") == call_id]

            got = eventually("the call's four webhooks",
                             lambda: len(about_the_call()) >= 4 and about_the_call(),
                             context=lambda: ([r.json()["type"] for r in s.crm.accepted()],
                                              [(t["speaker"], t["text"]) for t in result["turns"]],
                                              daemon.log()[-4000:]))
            assert sorted(r.json()["type"] for r in got) == [
                "appointment.booked", "call.completed", "lead.qualified", "lead.scored"], said
            assert all(signing.verify(SECRET, r.body, r.headers.get(
                signing.SIGNATURE_HEADER.lower())) is signing.Verdict.VALID for r in got)
            types = {r.json()["type"]: r.json() for r in got}
            booked = types["appointment.booked"]["data"]
            assert types["call.completed"]["data"]["outcome"] == "booked"
            assert types["lead.scored"]["data"]["score"] >= 60

            # the rep's calendar: the booking as an event, confirmed once the email went out
            def confirmed() -> Any:
                events = list(get_events(caldav_server).values())
                if len(events) == 1:
                    event = next(iter(Calendar.from_ical(events[0]).walk("VEVENT")))
                    return event if str(event["status"]) == "CONFIRMED" else None
                return None
            event = eventually("the confirmed CalDAV event", confirmed)
            assert str(event["uid"]) == booked["calendar_ref"]
            # the rep's email, with the ICS
            [mail] = eventually("the rep's email", lambda: list(s.inbox.messages))
            assert mail["To"] == "rep@acme.example"
            [invite] = list(mail.iter_attachments())
            assert invite.get_content_type() == "text/calendar"
            assert booked["calendar_ref"] in invite.get_content()

            # the receiver that always fails: two attempts, then a dead letter
            [letter] = eventually("the dead letter", lambda: dead_letters(ctl))
            assert (letter.endpoint, letter.event_type, letter.attempts) == (
                "broken", "appointment.booked", 2)

            # the results sheet: the call's row, with its appointment
            rows = eventually("the results-sheet row", lambda: s.results_rows()[1:])
            [row] = [r for r in rows if r[2] == call_id]
            assert row[6] == "booked" and row[8].endswith(("CST", "CDT")), row

            # the call, and its appointment, in the three export formats
            as_json, as_csv, as_xml = exported_call(ctl, call_id, tmp_path / "calls.xml")
            assert as_json["outcome"] == as_csv["outcome"] == as_xml.findtext(
                "x:outcome", namespaces=NS) == "booked"
            [appointment] = [a for a in json.loads(ctl("export", "appointments", "--format", "json"))
                             if a["call_id"] == call_id]
            assert appointment["appointment_id"] == booked["appointment_id"]
            assert appointment["status"] == "confirmed"
        finally:
            daemon.stop()
            shutil.rmtree(runtime, ignore_errors=True)

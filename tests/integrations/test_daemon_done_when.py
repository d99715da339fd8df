"""Results out through a real daemon (subprocess, random-weight test models) with every
integration configured at once, against the local servers the tests run: the rep's calendar on
Radicale, an SMTP server, a CRM webhook receiver, a receiver that always fails and the Sheets
stand-in. The daemon wires each one (its health names every sender and the calendar is open),
and one simulated call reaches all that a call's end reaches: a signed `call.completed` at the
CRM, a dead letter for the failing receiver in `reautoctl outbox dead`, a row in the results
sheet, and the call in `reautoctl export calls` as JSON, CSV and XML (valid against the XSD).

The cheap variant, on the random-weight models whose words are noise, so no booking: a call that
books through the daemon (CalDAV event, email with the ICS, appointment webhook) needs the real
small models and is test_daemon_booked_call.py; the whole "done when" at library level is
test_done_when.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reautod.integrations import signing
from reautod.integrations.events import EVENTS, CallCompletedEvent
from reautod.store.call_observer import call_uuid
from tests.integrations.daemon_results import NS, dead_letters, eventually, exported_call, servers
from tests.integrations.radicale_server import Radicale

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SECRET = "whsec-done-when"


def test_a_call_reaches_every_configured_tool_through_the_daemon(
    daemon_factory: Any, test_model_overrides: dict[str, Any], caldav_server: Radicale,
    tmp_path: Path,
) -> None:
    with servers() as s:
        credentials = s.credentials(tmp_path / "credentials", SECRET, caldav_server)
        d = daemon_factory(env={"CREDENTIALS_DIRECTORY": str(credentials)})
        models = test_model_overrides["models"]
        d.config_path.write_text(
            f'state_dir = "{d.workdir / "state"}"\nshutdown_grace_s = 5\n'
            "[http]\nport = 0\n[metrics]\nport = 0\n"
            f'[models]\ndir = "{models["dir"]}"\nprofile = "test"\ndevice = "cpu"\n'
            + s.integrations(caldav_server))
        d.start()
        d.wait_ready(timeout=240)

        def ctl(*args: str) -> str:
            done = d.ctl(*args, timeout=300)
            assert done.returncode == 0, (args, done.stdout, done.stderr, d.log()[-3000:])
            return done.stdout

        # every sender built, the calendar open (health fails while it is not)
        health = json.loads(ctl("--json", "health"))["checks"]["integrations"]
        assert health["ok"] is True, health
        assert health["detail"].startswith("email, sheets, webhook;"), health

        call = json.loads(ctl("--json", "call", "simulate", "--fast"))
        call_id = str(call_uuid(call["call_id"]))

        # the CRM: call.completed about this call, signed with the configured credential
        [got] = eventually("call.completed at the CRM", s.crm.accepted)
        header = got.headers.get(signing.SIGNATURE_HEADER.lower())
        assert signing.verify(SECRET, got.body, header) is signing.Verdict.VALID
        event = EVENTS.validate_json(got.body)
        assert isinstance(event, CallCompletedEvent) and event.data.call_id == call_id

        # the receiver that always fails: two attempts (max_attempts), then a dead letter
        [letter] = eventually("the dead letter", lambda: dead_letters(ctl))
        assert (letter.endpoint, letter.event_type, letter.attempts) == (
            "broken", "call.completed", 2)
        assert letter.last_error is not None and "500" in letter.last_error
        assert len(s.broken.accepted()) == 2
        assert "broken" in ctl("outbox", "dead")  # the table a person reads

        # the results sheet: a header, then the call's row
        header_row, row = eventually("the results-sheet row", lambda: s.results_rows()[:2]
                                     if len(s.results_rows()) >= 2 else None)
        assert header_row[:3] == ["finished_at", "campaign", "call_id"]
        assert row[2] == call_id and row[5] == "completed"

        # the same call in the three export formats (read from the database the daemon writes)
        as_json, as_csv, as_xml = exported_call(ctl, call_id, tmp_path / "calls.xml")
        assert as_json["status"] == as_csv["status"] == as_xml.findtext("x:status", namespaces=NS) \
            == "completed"

        # no booking, so no email
        assert s.inbox.messages == []

        d.stop()
        assert d.proc.returncode == 0, d.log()[-3000:]

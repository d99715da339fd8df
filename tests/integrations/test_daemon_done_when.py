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

import csv
import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from reautod.integrations import signing
from reautod.integrations.control import DeadLettersResult
from reautod.integrations.events import EVENTS, CallCompletedEvent
from reautod.integrations.exports import XSD_PATH
from reautod.store.call_observer import call_uuid
from tests.integrations.radicale_server import Radicale
from tests.integrations.sheets_standin import SheetsStandIn
from tests.integrations.smtp_server import Inbox, smtp_server
from tests.integrations.standins import TokenServer, WebhookReceiver
from tests.integrations.test_sheets import EMAIL, service_account_key

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SECRET = "whsec-done-when"
NS = {"x": "urn:reautod:export:1"}


def config(state: Path, models: dict[str, Any], crm: str, broken: str, caldav: Radicale,
           inbox: Inbox, sheets: str) -> str:
    return f"""state_dir = "{state}"
shutdown_grace_s = 5
[http]
port = 0
[metrics]
port = 0
[models]
dir = "{models["dir"]}"
profile = "test"
device = "cpu"
[integrations]
webhook_url = "{crm}/hooks/reautod"
webhook_secret_credential = "crm_webhook_secret"
[integrations.delivery]
poll_interval_s = 0.2
max_attempts = 2
backoff_base_s = 0.2
backoff_max_s = 1.0
[[integrations.webhooks]]
name = "broken"
url = "{broken}/hooks"
secret_credential = "crm_webhook_secret"
[integrations.caldav]
url = "{caldav.url}"
username = "{caldav.user}"
password_credential = "caldav_password"
calendar = "{caldav.calendar}"
rep_email = "rep@acme.example"
[integrations.smtp]
host = "127.0.0.1"
port = {inbox.port}
starttls = false
from_address = "reautod@acme.example"
[integrations.sheets]
api_base_url = "{sheets}"
results_spreadsheet_id = "results-1"
flush_interval_s = 0.5
"""


def eventually(what: str, probe: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        if value := probe():
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout} s")
        time.sleep(0.2)


def test_a_call_reaches_every_configured_tool_through_the_daemon(
    daemon_factory: Any, test_model_overrides: dict[str, Any], caldav_server: Radicale,
    tmp_path: Path,
) -> None:
    with (smtp_server() as inbox, TokenServer() as tokens, SheetsStandIn(tokens) as google,
          WebhookReceiver() as crm, WebhookReceiver(default=500) as broken):
        key_json, public = service_account_key(tokens.token_url)
        tokens.public_keys[EMAIL] = public
        google.sheets["results-1"] = {"Results": []}
        credentials = tmp_path / "credentials"
        credentials.mkdir()
        for name, value in {"crm_webhook_secret": SECRET, "caldav_password": caldav_server.password,
                            "google_service_account": key_json}.items():
            (credentials / name).write_text(value + "\n")
        d = daemon_factory(env={"CREDENTIALS_DIRECTORY": str(credentials)})
        d.config_path.write_text(config(d.workdir / "state", test_model_overrides["models"],
                                        crm.base_url, broken.base_url, caldav_server, inbox,
                                        google.base_url))
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
        [got] = eventually("call.completed at the CRM", crm.accepted)
        header = got.headers.get(signing.SIGNATURE_HEADER.lower())
        assert signing.verify(SECRET, got.body, header) is signing.Verdict.VALID
        event = EVENTS.validate_json(got.body)
        assert isinstance(event, CallCompletedEvent) and event.data.call_id == call_id

        # the receiver that always fails: two attempts (max_attempts), then a dead letter
        def dead() -> list[Any]:
            listed = DeadLettersResult.model_validate_json(ctl("--json", "outbox", "dead"))
            return listed.dead_letters
        [letter] = eventually("the dead letter", dead)
        assert (letter.endpoint, letter.event_type, letter.attempts) == (
            "broken", "call.completed", 2)
        assert letter.last_error is not None and "500" in letter.last_error
        assert len(broken.accepted()) == 2
        assert "broken" in ctl("outbox", "dead")  # the table a person reads

        # the results sheet: a header, then the call's row
        header_row, row = eventually("the results-sheet row",
                                     lambda: google.sheets["results-1"]["Results"][:2]
                                     if len(google.sheets["results-1"]["Results"]) >= 2 else None)
        assert header_row[:3] == ["finished_at", "campaign", "call_id"]
        assert row[2] == call_id and row[5] == "completed"

        # the same call in the three export formats (read from the database the daemon writes)
        [as_json] = [c for c in json.loads(ctl("export", "calls", "--format", "json"))
                     if c["call_id"] == call_id]
        [as_csv] = [c for c in csv.DictReader(io.StringIO(ctl("export", "calls", "--format", "csv")))
                    if c["call_id"] == call_id]
        xml_file = tmp_path / "calls.xml"
        ctl("export", "calls", "--format", "xml", "--output", str(xml_file))
        xml = etree.parse(str(xml_file))
        etree.XMLSchema(etree.parse(str(XSD_PATH))).assertValid(xml)
        [as_xml] = [c for c in xml.getroot().findall("x:call", NS)
                    if c.findtext("x:call_id", namespaces=NS) == call_id]
        assert as_json["status"] == as_csv["status"] == as_xml.findtext("x:status", namespaces=NS) \
            == "completed"

        # no booking, so nothing on the calendar and no email
        assert inbox.messages == []

        d.stop()
        assert d.proc.returncode == 0, d.log()[-3000:]

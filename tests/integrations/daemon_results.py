"""What the daemon tests of results out share: the local servers every integration talks to,
the `[integrations]` table that points a daemon at them with their credentials, and the reads
a person would make with `reautoctl` (dead letters, exports)."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lxml import etree

from reautod.integrations.control import DeadLetterItem, DeadLettersResult
from reautod.integrations.exports import XSD_PATH
from tests.integrations.radicale_server import Radicale
from tests.integrations.sheets_standin import SheetsStandIn
from tests.integrations.smtp_server import Inbox, smtp_server
from tests.integrations.standins import TokenServer, WebhookReceiver
from tests.integrations.test_sheets import EMAIL, service_account_key

NS = {"x": "urn:reautod:export:1"}
Ctl = Callable[..., str]  # reautoctl ARGS..., its stdout (the caller asserts it succeeded)


@dataclass
class Servers:
    """A CRM receiver, one that always answers 500, an SMTP server, the Sheets stand-in (with a
    `results-1` spreadsheet) and its token server, and the service account key it trusts."""

    crm: WebhookReceiver
    broken: WebhookReceiver
    inbox: Inbox
    google: SheetsStandIn
    key_json: str

    def results_rows(self) -> list[list[Any]]:
        return self.google.sheets["results-1"]["Results"]

    def integrations(self, caldav: Radicale, *, broken_events: Sequence[str] = (),
                     caldav_extra: str = "") -> str:
        """The `[integrations]` TOML: the CRM as the global endpoint, the broken receiver as
        `broken` (only `broken_events`, else all), two attempts before a dead letter."""
        events = f"events = {json.dumps(list(broken_events))}\n" if broken_events else ""
        return f"""[integrations]
webhook_url = "{self.crm.base_url}/hooks"
webhook_secret_credential = "crm_webhook_secret"
[integrations.delivery]
poll_interval_s = 0.2
max_attempts = 2
backoff_base_s = 0.2
backoff_max_s = 1.0
[[integrations.webhooks]]
name = "broken"
url = "{self.broken.base_url}/hooks"
secret_credential = "crm_webhook_secret"
{events}[integrations.caldav]
url = "{caldav.url}"
username = "{caldav.user}"
password_credential = "caldav_password"
calendar = "{caldav.calendar}"
rep_email = "rep@acme.example"
{caldav_extra}[integrations.smtp]
host = "127.0.0.1"
port = {self.inbox.port}
starttls = false
from_address = "reautod@acme.example"
[integrations.sheets]
api_base_url = "{self.google.base_url}"
results_spreadsheet_id = "results-1"
flush_interval_s = 0.5
"""

    def credentials(self, directory: Path, secret: str, caldav: Radicale) -> Path:
        """The credentials `integrations()` names, as files in `directory` (made here)."""
        directory.mkdir()
        for name, value in {"crm_webhook_secret": secret, "caldav_password": caldav.password,
                            "google_service_account": self.key_json}.items():
            (directory / name).write_text(value + "\n")
        return directory


@contextlib.contextmanager
def servers() -> Iterator[Servers]:
    with (smtp_server() as inbox, TokenServer() as tokens, SheetsStandIn(tokens) as google,
          WebhookReceiver() as crm, WebhookReceiver(default=500) as broken):
        key_json, public = service_account_key(tokens.token_url)
        tokens.public_keys[EMAIL] = public
        google.sheets["results-1"] = {"Results": []}
        yield Servers(crm, broken, inbox, google, key_json)


def eventually(what: str, probe: Callable[[], Any], timeout: float = 90.0,
               context: Callable[[], object] = lambda: "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        if value := probe():
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout} s: {context()}")
        time.sleep(0.2)


def dead_letters(ctl: Ctl) -> list[DeadLetterItem]:
    return DeadLettersResult.model_validate_json(ctl("--json", "outbox", "dead")).dead_letters


def exported_call(ctl: Ctl, call_id: str, xml_file: Path
                  ) -> tuple[dict[str, Any], dict[str, str], Any]:
    """The call in `reautoctl export calls` as JSON, CSV and XML (the XML checked against the
    shipped XSD): its object, its CSV row, its `<call>` element."""
    [as_json] = [c for c in json.loads(ctl("export", "calls", "--format", "json"))
                 if c["call_id"] == call_id]
    [as_csv] = [c for c in csv.DictReader(io.StringIO(ctl("export", "calls", "--format", "csv")))
                if c["call_id"] == call_id]
    ctl("export", "calls", "--format", "xml", "--output", str(xml_file))
    xml = etree.parse(str(xml_file))
    etree.XMLSchema(etree.parse(str(XSD_PATH))).assertValid(xml)
    [as_xml] = [c for c in xml.getroot().findall("x:call", NS)
                if c.findtext("x:call_id", namespaces=NS) == call_id]
    return as_json, as_csv, as_xml

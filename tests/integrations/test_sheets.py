"""Google Sheets against a local stand-in of the Sheets v4 REST API and Google's token endpoint:
service-account JWT auth, contacts in with the CSV import's report, result rows out in batches
through the outbox, a rate limiter, and 429 backoff."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from reautod.campaigns.intake import add_leads
from reautod.control.cli import main
from reautod.control.server import ControlServer
from reautod.integrations.control import sheets_methods
from reautod.integrations.credentials import Credentials
from reautod.integrations.delivery import DeliveryWorker
from reautod.integrations.settings import DeliverySettings, SheetsSettings
from reautod.integrations.sheets import (
    RESULT_COLUMNS,
    CallResult,
    ResultsSheet,
    ServiceAccountKey,
    SheetsClient,
    read_contacts,
)
from reautod.observability.events import EventBus
from reautod.observability.metrics import Metrics
from reautod.store.database import Database
from reautod.store.repositories import CampaignRepository, LeadRepository, OutboxRepository
from tests.integrations.conftest import Clock
from tests.integrations.helpers import contact
from tests.integrations.sheets_standin import SheetsStandIn
from tests.integrations.standins import TokenServer

EMAIL = "reautod@project.iam.gserviceaccount.com"


def service_account_key(token_url: str) -> tuple[str, str]:
    """A fresh service account key (JSON, as Google issues it) and its public key (PEM)."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    key = {"type": "service_account", "project_id": "p", "private_key_id": "k1",
           "private_key": pem, "client_email": EMAIL, "client_id": "1", "token_uri": token_url}
    return json.dumps(key), public


@pytest.fixture
def google() -> Iterator[tuple[SheetsStandIn, TokenServer, str]]:
    with TokenServer() as tokens, SheetsStandIn(tokens) as sheets:
        key_json, public = service_account_key(tokens.token_url)
        tokens.public_keys[EMAIL] = public
        yield sheets, tokens, key_json


def client_for(google: tuple[SheetsStandIn, TokenServer, str], credentials: Callable[..., Credentials],
               metrics: Metrics | None = None, **kw: object) -> tuple[SheetsClient, SheetsSettings]:
    sheets, _, key_json = google
    creds = credentials(google_service_account=key_json)
    settings = SheetsSettings.model_validate({"api_base_url": sheets.base_url,
                                              "results_spreadsheet_id": "results-1",
                                              "results_range": "Results!A1", **kw})
    key = ServiceAccountKey.parse(creds.value(settings.service_account_credential))
    return SheetsClient(settings, key, metrics=metrics), settings


async def test_contacts_come_in_with_the_import_report(
    db: Database, google: tuple[SheetsStandIn, TokenServer, str],
    credentials: Callable[..., Credentials],
) -> None:
    sheets, tokens, _ = google
    await CampaignRepository(db).create("spring")
    sheets.sheets["contacts-1"] = {"Leads": [
        ["Name", "Phone", "State", "Timezone", "Notes"],
        ["Pat Doe", "(303) 555-0142", "CO", "America/Denver", "likes\nsolar"],
        ["No Phone", "", "NY", "", ""],
        ["Sam Roe", "+1 212 555 0199", "NY"],  # trailing empty cells left out, as Sheets does
        ["Pat Again", "303-555-0142", "CO", "America/Denver", ""],
    ]}
    client, _ = client_for(google, credentials)
    try:
        data = await read_contacts(client, "contacts-1", "Leads!A1:Z")
    finally:
        await client.aclose()
    result = await add_leads(db, "spring", data, source="sheet", clock=lambda: datetime.now(UTC))
    assert result.summary["imported"] == 2 and result.summary["new_leads"] == 2
    assert {(i.line, i.problem) for i in result.issues} == {(3, "missing_phone"), (5, "duplicate")}
    campaign = await CampaignRepository(db).find("spring")
    assert await LeadRepository(db).phones(campaign.id) == {"+13035550142", "+12125550199"}
    # The service account's assertion: issuer, scope, audience as Google wants them.
    [claims] = tokens.assertions
    assert claims["iss"] == EMAIL and claims["scope"].endswith("/auth/spreadsheets")


async def test_results_go_out_in_batches_through_the_outbox(
    db: Database, google: tuple[SheetsStandIn, TokenServer, str],
    credentials: Callable[..., Credentials],
) -> None:
    sheets, tokens, _ = google
    sheets.sheets["results-1"] = {"Results": []}
    metrics = Metrics()
    client, settings = client_for(google, credentials, metrics, requests_per_minute=600)
    results = ResultsSheet(client, settings)
    repo = OutboxRepository(db)
    worker = DeliveryWorker(repo, {"sheets": results}, DeliverySettings(batch_size=20),
                            metrics=metrics, clock=Clock())
    people = [await contact(db) for _ in range(3)]
    await repo.enqueue_many([results.message(CallResult(
        call_id=str(uuid.uuid4()), finished_at=datetime(2026, 11, 2, 15, tzinfo=UTC),
        campaign="spring", contact_id=people[i % 3], lead_name="=HYPERLINK(\"x\")",
        phone="+15550001111", status="completed", outcome="booked", score=80 + i,
        appointment_at=datetime(2026, 11, 3, 14, tzinfo=UTC), lead_timezone="America/Chicago",
        meeting_link="https://meet.example.com/x")) for i in range(25)])
    # 20 rows due at once (one per lead at a time: a lead's rows keep their order), then more.
    while await worker.run_once():
        pass
    rows = sheets.sheets["results-1"]["Results"]
    assert rows[0] == list(RESULT_COLUMNS) and len(rows) == 26
    assert rows[1][3] == "=HYPERLINK(\"x\")"  # RAW: stays text
    assert rows[1][8] == "2026-11-03 08:00 CST"
    assert [r[7] for r in rows[1:]] == [str(80 + i) for i in range(25)]
    appends = sheets.appends()
    assert len(appends) < 25 and all(a.query["valueInputOption"] == ["RAW"] for a in appends)
    assert len(tokens.issued) == 1  # one token for every request
    # Requests are spaced by the limiter (600 a minute: 0.1 s apart; the first one also waited
    # for the token, so it is measured from the second).
    times = [r.at for r in sheets.received()][1:]
    assert all(b - a >= 0.08 for a, b in itertools.pairwise(times))
    assert times[-1] - times[0] >= 0.095 * (len(times) - 1)
    assert metrics.sheets_requests_total.labels(result="ok")._value.get() == len(sheets.received())
    await worker.stop()


async def test_quota_errors_back_off_and_a_missing_sheet_is_a_dead_letter(
    db: Database, google: tuple[SheetsStandIn, TokenServer, str],
    credentials: Callable[..., Credentials],
) -> None:
    sheets, _, _ = google
    sheets.sheets["results-1"] = {"Results": [list(RESULT_COLUMNS)]}
    sheets.failures = [(429, "1"), (503, None)]
    metrics = Metrics()
    client, settings = client_for(google, credentials, metrics, requests_per_minute=600)
    results = ResultsSheet(client, settings)
    repo = OutboxRepository(db)
    worker = DeliveryWorker(repo, {"sheets": results}, DeliverySettings(), clock=Clock())
    result = CallResult(call_id="c1", finished_at=datetime.now(UTC), campaign=None, contact_id=None,
                        lead_name=None, phone=None, status="no_answer", outcome=None)
    await repo.enqueue_many([results.message(result)])
    await worker.run_once()
    received = sheets.received()
    # header check (429), then after >= 1 s the retry (503), then after the backoff: through.
    assert received[1].at - received[0].at >= 0.95
    assert len(sheets.sheets["results-1"]["Results"]) == 2
    assert metrics.sheets_requests_total.labels(result="throttled")._value.get() == 1
    [row] = await repo.recent()
    assert row.status == "delivered"

    gone = ResultsSheet(client, settings.model_copy(update={"results_spreadsheet_id": "deleted"}))
    worker = DeliveryWorker(repo, {"sheets": gone}, DeliverySettings(), clock=Clock())
    await repo.enqueue_many([gone.message(result)])
    await worker.run_once()
    [dead] = await repo.dead()
    assert "404" in (dead.last_error or "") and "NOT_FOUND" in (dead.last_error or "")
    await worker.stop()


async def test_reautoctl_sheets_import(
    db: Database, google: tuple[SheetsStandIn, TokenServer, str],
    credentials: Callable[..., Credentials], capsys: pytest.CaptureFixture[str],
) -> None:
    sheets, _, _ = google
    await CampaignRepository(db).create("spring")
    sheets.sheets["contacts-2"] = {"Leads": [["name", "phone", "state"], ["Pat Doe", "+13035550142", "CO"],
                                             ["Bad", "12", "CO"]]}
    client, _ = client_for(google, credentials)
    path = Path("/tmp") / f"rt-sheets-{uuid.uuid4().hex[:8]}.sock"
    server = ControlServer(path, sheets_methods(db, client), EventBus())
    await server.start()
    try:
        code = await asyncio.to_thread(main, ["--socket", str(path), "sheets", "import", "spring",
                                              "contacts-2", "--range", "Leads!A1:Z"])
        out = capsys.readouterr().out
        assert code == 0 and "new_leads" in out
        # reported like `reautoctl campaign import`: the sheet's row 3 is the bad one
        assert re.search(r"^3\s+bad_phone\s+no\s", out, flags=re.M), out
        code = await asyncio.to_thread(main, ["--socket", str(path), "sheets", "import", "spring",
                                              "missing-sheet"])
        assert code == 1 and "cannot read the contacts sheet" in capsys.readouterr().err
    finally:
        await server.close()
        await client.aclose()

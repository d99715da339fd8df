"""IntegrationsPart, as the daemon builds it from settings: a sender per configured channel, the
booking service listening to the worker, a call's end reaching the receiver and the results
sheet; and a missing credential keeping the worker stopped, not the daemon."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from reautod.campaigns.dnc import DncList
from reautod.campaigns.store_adapters import StoreDncStorage
from reautod.config import Secrets, Settings
from reautod.dialogue.scheduling import BookingRequest
from reautod.errors import ReautodError
from reautod.integrations import part as part_module
from reautod.integrations.credentials import Credentials
from reautod.integrations.part import IntegrationsPart
from reautod.observability.metrics import Metrics
from reautod.store.database import Database
from reautod.store.enums import AppointmentStatus, CallOutcome
from reautod.store.records import CallEnded
from reautod.store.repositories import AppointmentRepository, CallRepository, OutboxRepository
from reautod.store.writebehind import WriteBehind
from tests.integrations.radicale_server import Radicale
from tests.integrations.sheets_standin import SheetsStandIn
from tests.integrations.smtp_server import smtp_server
from tests.integrations.standins import TokenServer, WebhookReceiver
from tests.integrations.test_sheets import EMAIL, service_account_key
from tests.store.factories import call_started, campaign_contact_lead
from tests.telephony.twilio_standin import TwilioStandIn

ACCOUNT, TOKEN = "AC" + "3" * 32, "twilio-token"


def build(settings: dict[str, Any], db: Database, writer: WriteBehind,
          credentials: Credentials) -> IntegrationsPart:
    return IntegrationsPart(Settings.model_validate(settings),
                            Secrets({"twilio_auth_token": SecretStr(TOKEN)}), db, writer,
                            Metrics(), DncList(StoreDncStorage(db)), credentials=credentials)


async def eventually(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := await check() if asyncio.iscoroutinefunction(check) else check():
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout} s")


async def test_every_configured_channel_is_wired(
    db: Database, writer: WriteBehind, caldav_server: Radicale,
    credentials: Callable[..., Credentials],
) -> None:
    with (TwilioStandIn(ACCOUNT, TOKEN) as twilio, smtp_server() as inbox,
          TokenServer() as tokens, SheetsStandIn(tokens) as google, WebhookReceiver() as crm):
        key_json, public = service_account_key(tokens.token_url)
        tokens.public_keys[EMAIL] = public
        google.sheets["results-1"] = {"Results": []}
        creds = credentials(crm_secret="whsec-part", caldav_password=caldav_server.password,
                            google_service_account=key_json)
        part = build({
            "twilio": {"account_sid": ACCOUNT, "api_base_url": twilio.base_url},
            "integrations": {
                "webhook_url": crm.base_url, "webhook_secret_credential": "crm_secret",
                "delivery": {"poll_interval_s": 0.1},
                "caldav": {"url": caldav_server.url, "username": caldav_server.user,
                           "password_credential": "caldav_password",
                           "calendar": caldav_server.calendar, "min_notice_minutes": 0,
                           "workdays": [0, 1, 2, 3, 4, 5, 6], "day_start": "00:00:00",
                           "day_end": "23:30:00", "rep_email": "rep@acme.example"},
                "smtp": {"host": "127.0.0.1", "port": inbox.port, "starttls": False,
                         "from_address": "reautod@acme.example"},
                "sms": {"from_number": "+15005550006"},
                "sheets": {"api_base_url": google.base_url, "results_spreadsheet_id": "results-1"},
            },
        }, db, writer, creds)
        assert part.problems == []
        assert sorted(part.worker.deliverers) == ["email", "sheets", "sms", "webhook"]
        assert part.booking is not None and part.booking in part.worker.listeners
        assert part.routers() == []  # incoming endpoints are off unless enabled
        await part.start()
        try:
            assert (await part.health())[0] is True

            # a call ends: its webhook at the receiver, its row in the results sheet
            campaign, contact, lead = await campaign_contact_lead(db)
            started = call_started(campaign, contact, lead)
            await CallRepository(db).write([started])
            writer.submit(CallEnded(started.call_id, datetime.now(UTC),
                                    outcome=CallOutcome.QUALIFIED, duration_ms=30_000))
            part.results.on_call_ended(started.call_id.hex, "hangup", 30.0)
            hooks = await eventually(lambda: len(crm.accepted()) >= 2 and crm.accepted(),
                                     "the call's webhooks")
            # a qualified outcome is announced as such, after the call's end, in that order
            assert [h.json()["type"] for h in hooks] == ["call.completed", "lead.qualified"]
            assert {h.json()["data"]["call_id"] for h in hooks} == {str(started.call_id)}
            rows = await eventually(lambda: google.sheets["results-1"]["Results"][1:],
                                    "the results sheet's row")
            assert rows[0][2] == str(started.call_id) and rows[0][6] == "qualified"

            # a booking: pending until the SMS and the email are out, then confirmed
            now = datetime.now(UTC)
            [slot] = await part.booking.free_slots(now + timedelta(days=1),
                                                   now + timedelta(days=2), limit=1)
            booking = await part.booking.book(slot, BookingRequest(
                campaign_id=str(campaign.id), contact_id=str(contact.id), lead_id=str(lead.id),
                call_id=None, name="Pat Doe", phone_e164=contact.phone_e164, email=None,
                timezone="America/New_York"))

            async def confirmed() -> bool:
                row = await AppointmentRepository(db).get(uuid.UUID(booking.ref))
                return row.status == AppointmentStatus.CONFIRMED

            await eventually(confirmed, "the booking's confirmation")
            assert len(twilio.messages) == 1 and len(inbox.messages) == 1
        finally:
            await part.close()


async def test_a_missing_credential_keeps_the_worker_stopped_and_says_why(
    db: Database, writer: WriteBehind, credentials: Callable[..., Credentials],
) -> None:
    part = build({"integrations": {"webhook_url": "https://crm.example/hook",
                                   "webhook_secret_credential": "absent_secret",
                                   "smtp": {"host": "127.0.0.1",
                                            "from_address": "reautod@acme.example"}}},
                 db, writer, credentials())
    ok, detail = await part.health()
    assert not ok and "webhooks" in detail and "absent_secret" in detail
    assert sorted(part.worker.deliverers) == ["email"]
    await part.start()
    try:
        # events are still queued, to be delivered once the credential is in place
        campaign, contact, lead = await campaign_contact_lead(db)
        started = call_started(campaign, contact, lead)
        await CallRepository(db).write([started])
        writer.submit(CallEnded(started.call_id, datetime.now(UTC), duration_ms=1000))
        part.results.on_call_ended(str(started.call_id), "hangup", 1.0)
        await part.results.close()
        [message] = await OutboxRepository(db).recent()
        await asyncio.sleep(0.5)  # a running worker would have tried (and dead-lettered) it
        [still] = await OutboxRepository(db).recent()
        assert message.event_type == "call.completed" and still.status == "pending"
        assert still.attempts == 0
    finally:
        await part.close()


async def test_sheets_import_says_what_to_configure(
    db: Database, writer: WriteBehind, credentials: Callable[..., Credentials],
) -> None:
    part = build({}, db, writer, credentials())
    [method] = [m for m in part.control_methods() if m.name == "sheets.import"]
    with pytest.raises(ReautodError) as refused:
        await method.handler(method.params.model_validate(
            {"campaign": "spring", "spreadsheet_id": "abc"}))
    assert refused.value.code == "sheets_not_configured"
    assert "[integrations.sheets]" in refused.value.message
    assert {m.name for m in part.control_methods()} >= {
        "outbox.status", "outbox.list", "outbox.retry", "outbox.replay", "outbox.dead"}
    await part.close()


async def test_a_calendar_missing_at_start_is_opened_once_it_exists(
    db: Database, writer: WriteBehind, caldav_server: Radicale,
    credentials: Callable[..., Credentials], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(part_module, "CALENDAR_RETRY_S", (0.1, 0.2))
    name = f"later-{uuid.uuid4().hex[:8]}"
    part = build({"integrations": {"caldav": {
        "url": caldav_server.url, "username": caldav_server.user, "calendar": name,
        "password_credential": "caldav_password"}}},
        db, writer, credentials(caldav_password=caldav_server.password))
    await part.start()
    url = f"{caldav_server.url}{caldav_server.user}/{name}/"
    auth = (caldav_server.user, caldav_server.password)
    try:
        ok, detail = await part.health()
        assert not ok and f"no calendar {name!r}" in detail
        scheduler = part.scheduler()
        assert scheduler is not None
        now = datetime.now(UTC)
        with pytest.raises(ReautodError, match="not open"):
            await scheduler.free_slots(now, now + timedelta(days=7))
        body = ('<?xml version="1.0"?><C:mkcalendar xmlns:D="DAV:" '
                'xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop>'
                f"<D:displayname>{name}</D:displayname></D:prop></D:set></C:mkcalendar>")
        made = await asyncio.to_thread(httpx.request, "MKCALENDAR", url, auth=auth, content=body)
        assert made.status_code == 201, made.text

        async def healthy() -> bool:
            return (await part.health())[0]

        await eventually(healthy, "the calendar opened by the retry")
        assert await scheduler.free_slots(now, now + timedelta(days=7)) != []
    finally:
        await part.close()
        await asyncio.to_thread(httpx.request, "DELETE", url, auth=auth)


async def test_a_service_account_key_that_is_no_key_is_a_problem_not_a_crash(
    db: Database, writer: WriteBehind, credentials: Callable[..., Credentials],
) -> None:
    broken = ('{"type": "service_account", "client_email": "a@b.iam.gserviceaccount.com", '
              '"private_key": "-----BEGIN PRIVATE KEY-----\\nnot a key\\n-----END PRIVATE KEY-----\\n"}')
    part = build({"integrations": {"sheets": {"results_spreadsheet_id": "results-1"}}},
                 db, writer, credentials(google_service_account=broken))
    ok, detail = await part.health()
    assert not ok and "service account key is not valid" in detail
    assert part.sheets_client is None and "sheets" not in part.worker.deliverers
    await part.close()

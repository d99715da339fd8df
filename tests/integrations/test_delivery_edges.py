"""Edges of delivery: the worker's own loop (woken by a publish, stopped cleanly), how transport
errors, redirects, Retry-After dates and SMTP replies are classified, and credentials that are
missing or empty."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest

from reautod.errors import ConfigError
from reautod.integrations.confirmations import EmailConfirmation, SmtpEmail
from reautod.integrations.credentials import Credentials
from reautod.integrations.delivery import DeliveryWorker
from reautod.integrations.settings import DeliverySettings, SmtpSettings, WebhookEndpoint
from reautod.integrations.webhooks import WebhookDeliverer, WebhookPublisher, classify, retry_after
from reautod.store.database import Database
from reautod.store.repositories import OutboxMessage, OutboxRepository
from tests.fixtures.services import free_port
from tests.integrations.conftest import Clock
from tests.integrations.helpers import contact, scored
from tests.integrations.smtp_server import smtp_server
from tests.integrations.standins import WebhookReceiver


def message(payload: dict[str, object], channel: str = "email", endpoint: str = "email") -> OutboxMessage:
    now = datetime.now(UTC)
    return OutboxMessage(uuid.uuid4(), uuid.uuid4(), channel, endpoint, None, None, "x",
                         "mailto:rep@example.com", payload, "delivering", 1, now, None, now, None)


async def test_the_worker_loop_delivers_when_woken_and_stops(
    db: Database, credentials: Callable[..., Credentials],
) -> None:
    creds = credentials(crm_secret="s")
    with WebhookReceiver() as receiver:
        endpoints = [WebhookEndpoint(name="crm", url=receiver.base_url, secret_credential="crm_secret")]
        repo = OutboxRepository(db)
        worker = DeliveryWorker(repo, {"webhook": WebhookDeliverer(endpoints, creds)},
                                DeliverySettings(poll_interval_s=60))
        publisher = WebhookPublisher(repo, endpoints, wake=worker.notify)
        worker.start()
        try:
            await asyncio.sleep(0.2)  # the first round found nothing; the worker now waits 60 s
            await publisher.publish(scored(await contact(db), 1))
            for _ in range(100):  # woken at once, not at the next poll
                if receiver.accepted():
                    break
                await asyncio.sleep(0.05)
            assert len(receiver.accepted()) == 1
        finally:
            await worker.stop()
        assert worker._task is None


async def test_webhook_failures_are_classified(credentials: Callable[..., Credentials]) -> None:
    creds = credentials(crm_secret="s")
    closed = f"http://127.0.0.1:{free_port()}/hook"
    deliverer = WebhookDeliverer([WebhookEndpoint(name="crm", url=closed, secret_credential="crm_secret")], creds)
    payload = scored(str(uuid.uuid4()), 5).model_dump(mode="json")
    outcome = await deliverer.deliver(message(payload, "webhook", "crm"))
    assert not outcome.ok and not outcome.permanent and "ConnectError" in (outcome.error or "")
    gone = await deliverer.deliver(message(payload, "webhook", "removed"))
    assert gone.permanent and "not configured" in (gone.error or "")
    bad = await deliverer.deliver(message({"type": "lead.scored"}, "webhook", "crm"))
    assert bad.permanent and "schema" in (bad.error or "")
    await deliverer.aclose()

    moved = classify(httpx.Response(301, headers={"Location": "https://elsewhere"}))
    assert moved.permanent and "redirects" in (moved.error or "")
    assert not classify(httpx.Response(408)).permanent
    later = datetime.now(UTC) + timedelta(seconds=120)
    wait = retry_after(httpx.Response(503, headers={"Retry-After": format_datetime(later)}))
    assert wait is not None and 100 < wait <= 120
    assert retry_after(httpx.Response(503, headers={"Retry-After": "soon"})) is None


async def test_smtp_replies_decide_retry_or_dead_letter() -> None:
    email = EmailConfirmation(appointment_id="a", booking_ref="b", to="rep@example.com",
                              starts_at=datetime.now(UTC), confirms=True, subject="s", text="t",
                              ics="BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n")
    with smtp_server() as inbox:
        sender = SmtpEmail(SmtpSettings(host="127.0.0.1", port=inbox.port, starttls=False,
                                        from_address="reautod@example.com"), None)
        inbox.failures = ["451 4.3.0 try again later", "554 5.7.1 rejected"]
        first = await sender.deliver(message(email.model_dump(mode="json")))
        second = await sender.deliver(message(email.model_dump(mode="json")))
        third = await sender.deliver(message(email.model_dump(mode="json")))
        assert not first.ok and not first.permanent and "451" in (first.error or "")
        assert second.permanent and "554" in (second.error or "")
        assert third.ok and len(inbox.messages) == 1
        assert (await sender.deliver(message({"kind": "sms"}))).permanent
    down = SmtpEmail(SmtpSettings(host="127.0.0.1", port=free_port(), starttls=False,
                                  from_address="reautod@example.com"), None)
    refused = await down.deliver(message(email.model_dump(mode="json")))
    assert not refused.ok and not refused.permanent


def test_credentials_that_cannot_be_read_are_config_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n")
    creds = Credentials({"CREDENTIALS_DIRECTORY": str(tmp_path)})
    for name, problem in (("missing", "No such file"), ("empty", "empty"), ("../x", "not valid")):
        with pytest.raises(ConfigError) as err:
            creds.get(name)
        assert problem in str(err.value) + str(err.value.problems)
    (tmp_path / "abs").write_text(" s3cret \n")
    assert Credentials({}).value(str(tmp_path / "abs")) == "s3cret"
    with pytest.raises(ConfigError, match="CREDENTIALS_DIRECTORY"):
        Credentials({}).get("webhook_secret")


async def test_a_restart_loses_nothing(db: Database, credentials: Callable[..., Credentials]) -> None:
    """Queued rows survive the process; a delivery cut off mid-flight (claimed, never recorded)
    is sent again, with the same event id, once its claim is stale."""
    creds = credentials(crm_secret="s")
    clock = Clock()
    with WebhookReceiver() as receiver:
        endpoints = [WebhookEndpoint(name="crm", url=receiver.base_url, secret_credential="crm_secret")]
        publisher = WebhookPublisher(OutboxRepository(db), endpoints)
        event = scored(await contact(db), 7)
        await publisher.publish(event)
        await publisher.publish(scored(await contact(db), 8))
        [cut_off] = await OutboxRepository(db).claim_due(clock(), 1)  # the old process, then gone
        assert cut_off.event_id == event.id
        # A new process: a new repository, deliverer and worker over the same database.
        settings = DeliverySettings(stuck_after_s=300)
        worker = DeliveryWorker(OutboxRepository(db), {"webhook": WebhookDeliverer(endpoints, creds)},
                                settings, clock=clock)
        await worker.run_once()
        assert len(receiver.accepted()) == 1  # the other one; the cut-off claim is still fresh
        clock.advance(seconds=301)
        await worker.run_once()
        ids = [json.loads(r.body)["id"] for r in receiver.accepted()]
        assert len(ids) == 2 and str(event.id) in ids
        await worker.stop()

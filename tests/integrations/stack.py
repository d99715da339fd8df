"""Every integration wired together against real local servers, as the daemon will wire them:
the outbox worker with the webhook, SMS and email senders, and the booking service over the
CalDAV scheduler, its confirmations listening to the worker."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time

from reautod.integrations.booking import BookingService
from reautod.integrations.caldav_scheduler import CalDAVScheduler
from reautod.integrations.confirmations import SmtpEmail, TwilioSms
from reautod.integrations.credentials import Credentials
from reautod.integrations.delivery import Deliverer, DeliveryWorker
from reautod.integrations.settings import (
    CalDAVSettings,
    ConfirmationSettings,
    DeliverySettings,
    SmtpSettings,
    WebhookEndpoint,
)
from reautod.integrations.webhooks import WebhookDeliverer, WebhookPublisher
from reautod.observability.metrics import Metrics
from reautod.store.database import Database
from reautod.store.repositories import OutboxRepository
from tests.integrations.conftest import Clock
from tests.integrations.radicale_server import Radicale
from tests.integrations.smtp_server import Inbox
from tests.telephony.twilio_standin import TwilioStandIn

SECRET = "whsec-stack"
NOW = datetime(2026, 10, 28, 14, 30, tzinfo=UTC)  # Wed 10:30 in New York
REP_EMAIL = "rep@acme.example"


@dataclass
class Stack:
    publisher: WebhookPublisher
    worker: DeliveryWorker
    calendar: CalDAVScheduler
    booking: BookingService
    clock: Clock
    metrics: Metrics

    async def drain(self, rounds: int = 3) -> None:
        for _ in range(rounds):
            await self.worker.run_once()


@contextlib.asynccontextmanager
async def stack(db: Database, caldav: Radicale, twilio: TwilioStandIn, inbox: Inbox,
                receiver_url: str, credentials: Callable[..., Credentials],
                delivery: DeliverySettings | None = None,
                more_receivers: Mapping[str, str] | None = None,
                more_deliverers: Mapping[str, Deliverer] | None = None) -> AsyncIterator[Stack]:
    """`more_receivers`: further webhook endpoints (name -> URL, same secret)."""
    creds = credentials(crm_secret=SECRET, caldav_password=caldav.password)
    clock, metrics = Clock(), Metrics()
    endpoints = [WebhookEndpoint(name=name, url=url, secret_credential="crm_secret")
                 for name, url in {"crm": receiver_url, **(more_receivers or {})}.items()]
    repo = OutboxRepository(db)
    caldav_settings = CalDAVSettings(
        url=caldav.url, username=caldav.user, password_credential="caldav_password",
        calendar=caldav.calendar, timezone="America/New_York", day_start=time(9),
        day_end=time(11), slot_minutes=60, min_notice_minutes=60, rep_email=REP_EMAIL,
        meeting_link_template="https://meet.example.com/{booking}")
    calendar = CalDAVScheduler(caldav_settings, creds.value("caldav_password"),
                               business_name="Acme Solar", clock=lambda: NOW, metrics=metrics)
    await calendar.open()
    publisher = WebhookPublisher(repo, endpoints)
    booking = BookingService(calendar, db, publisher, ConfirmationSettings(business_name="Acme Solar"),
                             sms_enabled=True, email_to=caldav_settings.rep_email)
    deliverers = {
        "webhook": WebhookDeliverer(endpoints, creds),
        "sms": TwilioSms(twilio.account_sid, twilio.auth_token, "+15005550006",
                         api_base_url=twilio.base_url),
        "email": SmtpEmail(SmtpSettings(host="127.0.0.1", port=inbox.port, starttls=False,
                                        from_address="reautod@acme.example"), None),
        **(more_deliverers or {}),
    }
    worker = DeliveryWorker(repo, deliverers, delivery or DeliverySettings(backoff_base_s=10),
                            metrics=metrics, listeners=[booking], clock=clock, rand=lambda: 1.0)
    publisher.wake = worker.notify
    try:
        yield Stack(publisher, worker, calendar, booking, clock, metrics)
    finally:
        await worker.stop()
        await calendar.close()

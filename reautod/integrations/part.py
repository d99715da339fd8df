"""Results out, as one part of the daemon: the outbox's delivery worker with a sender per
configured channel, the webhook publisher fed by call ends (`results`, a `CallObserver` for the
daemon's fan-out), the incoming lead/DNC endpoints, the booking service over the rep's calendar,
and the `outbox.*` / `sheets.*` control methods.

A sender that cannot be built (a credential missing or unreadable, Twilio not configured for
SMS) does not stop the daemon: the part says so in its health check and leaves the worker
stopped, so that messages wait in the outbox (rows survive the restart that fixes it) instead of
turning into dead letters for want of a sender. Events are queued all the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter

from reautod.campaigns.dialer import ErasedNumbers
from reautod.campaigns.dnc import DncList
from reautod.campaigns.intake import ImportResult
from reautod.config import Secrets, Settings
from reautod.dialogue.scheduling import Scheduler
from reautod.errors import ConfigError, ReautodError, UnavailableError
from reautod.integrations.booking import BookingService
from reautod.integrations.budget_alerts import BudgetAlertWebhooks
from reautod.integrations.caldav_scheduler import CalDAVScheduler
from reautod.integrations.call_results import CallResults
from reautod.integrations.confirmations import SmtpEmail, TwilioSms
from reautod.integrations.control import SheetImportParams, outbox_methods, sheets_methods
from reautod.integrations.credentials import Credentials
from reautod.integrations.delivery import Deliverer, DeliveryWorker
from reautod.integrations.incoming import incoming_router
from reautod.integrations.settings import SheetsSettings
from reautod.integrations.sheets import ResultsSheet, ServiceAccountKey, SheetsClient
from reautod.integrations.webhooks import WebhookDeliverer, WebhookPublisher
from reautod.methods import Method
from reautod.observability.metrics import Metrics
from reautod.resilience.service import Resilience
from reautod.store.database import Database
from reautod.store.repositories import CampaignRepository, OutboxRepository
from reautod.store.types import utcnow
from reautod.store.writebehind import WriteBehind

log = logging.getLogger(__name__)

CALENDAR_RETRY_S = (5.0, 300.0)  # first and longest wait between tries to open the calendar


def booking_service(settings: Settings, credentials: Credentials, db: Database,
                    publisher: WebhookPublisher, *, sms_enabled: bool, email_enabled: bool,
                    metrics: Metrics | None = None,
                    clock: Callable[[], datetime] = utcnow,
                    resilience: Resilience | None = None) -> BookingService | None:
    """The `Scheduler` over the rep's CalDAV calendar, or None without `[integrations.caldav]`.
    Its calendar is not open yet (`await service.calendar.open()`); register the service as a
    listener of the delivery worker so that delivered confirmations confirm the booking."""
    cfg = settings.integrations
    if cfg.caldav is None:
        return None
    calendar = CalDAVScheduler(cfg.caldav, credentials.value(cfg.caldav.password_credential),
                               business_name=cfg.confirmations.business_name, clock=clock,
                               metrics=metrics, resilience=resilience)
    return BookingService(calendar, db, publisher, cfg.confirmations, sms_enabled=sms_enabled,
                          email_to=cfg.caldav.rep_email if email_enabled else None)


def sheets_client(settings: SheetsSettings, credentials: Credentials,
                  metrics: Metrics | None = None,
                  resilience: Resilience | None = None) -> SheetsClient:
    """A Sheets client with the service account key from its credential (ConfigError if the
    key is missing or not a usable key)."""
    name = settings.service_account_credential
    key = ServiceAccountKey.parse(credentials.value(name))
    try:
        return SheetsClient(settings, key, metrics=metrics, resilience=resilience)
    except ValueError as err:  # joserfc: the private key is not an RSA key in PEM
        raise ConfigError("the Google service account key is not valid",
                          [(name, f"private_key: {err}")]) from err


class IntegrationsPart:
    """Built by the daemon after the store and telephony; `start()` before READY, `close()`
    after the calls have drained and before the store closes."""

    def __init__(self, settings: Settings, secrets: Secrets, db: Database, writer: WriteBehind,
                 metrics: Metrics, dnc: DncList, *, credentials: Credentials | None = None,
                 clock: Callable[[], datetime] = utcnow,
                 erased: ErasedNumbers | None = None,
                 resilience: Resilience | None = None) -> None:
        cfg = settings.integrations
        self.resilience = resilience or Resilience(settings.resilience)
        self.settings = settings
        self.db = db
        self.metrics = metrics
        self.clock = clock
        self.erased = erased  # leads from outside skip people who asked for erasure
        self.credentials = credentials or Credentials()
        self.problems: list[str] = []  # why the worker is not delivering
        self.repo = OutboxRepository(db)
        self.endpoints = cfg.endpoints()

        self.sheets_client: SheetsClient | None = None
        self.results_sheet: ResultsSheet | None = None
        if cfg.sheets is not None:
            sheets = cfg.sheets
            self.sheets_client = self._built("Google Sheets", lambda: sheets_client(
                sheets, self.credentials, metrics, self.resilience))
            if self.sheets_client is not None and sheets.results_spreadsheet_id:
                self.results_sheet = ResultsSheet(self.sheets_client, sheets)

        deliverers = self._deliverers(settings, secrets)
        self.worker = DeliveryWorker(self.repo, deliverers, cfg.delivery, metrics=metrics,
                                     clock=clock, resilience=self.resilience)
        self.publisher = WebhookPublisher(self.repo, self.endpoints, wake=self.worker.notify)
        # the pipeline's observer: every ended call's results into the outbox
        self.results = CallResults(db, writer, self.publisher, sheet=self.results_sheet)
        # the cost part's alert sink: budget alerts out as `budget.alert` webhooks
        self.budget_alerts = BudgetAlertWebhooks(self.publisher, CampaignRepository(db))
        self.booking = self._built("the calendar", lambda: booking_service(
            settings, self.credentials, db, self.publisher, sms_enabled="sms" in deliverers,
            email_enabled="email" in deliverers, metrics=metrics, clock=clock,
            resilience=self.resilience))
        if self.booking is not None:
            self.worker.listeners.append(self.booking)

        self.calendar_problem: str | None = None  # why bookings fail now (calendar not open)
        self._calendar_task: asyncio.Task[None] | None = None
        self.router: APIRouter | None = None
        if cfg.incoming.enabled:
            self.router = self._built("the incoming endpoints", lambda: incoming_router(
                db, cfg.incoming, self.credentials, dnc, clock=clock, erased=erased))

    def _built(self, what: str, build: Callable[[], Any]) -> Any:
        """`build()`, or None with the problem noted when a credential or setting is missing."""
        try:
            return build()
        except ConfigError as err:
            details = "; ".join(f"{k}: {v}" for k, v in err.problems)
            problem = f"{what}: {err.message}" + (f" ({details})" if details else "")
            self.problems.append(problem)
            log.error("integrations: %s", problem)
            return None

    def _deliverers(self, settings: Settings, secrets: Secrets) -> dict[str, Deliverer]:
        cfg = settings.integrations
        found: dict[str, Deliverer | None] = {}
        if self.endpoints:
            found["webhook"] = self._built("webhooks", lambda: WebhookDeliverer(
                self.endpoints, self.credentials))
        if cfg.sms is not None:
            sms = cfg.sms
            found["sms"] = self._built("SMS confirmations", lambda: self._twilio_sms(
                settings, secrets, sms.from_number))
        if cfg.smtp is not None:
            smtp = cfg.smtp
            found["email"] = self._built("email confirmations", lambda: SmtpEmail(
                smtp, self.credentials.value(smtp.password_credential)
                if smtp.password_credential else None))
        if self.results_sheet is not None:
            found["sheets"] = self.results_sheet
        return {channel: sender for channel, sender in found.items() if sender is not None}

    @staticmethod
    def _twilio_sms(settings: Settings, secrets: Secrets, from_number: str) -> TwilioSms:
        account, token = settings.twilio.account_sid, secrets.get("twilio_auth_token")
        if not account or not token:
            raise ConfigError("SMS goes through Twilio, which is not configured",
                              [("twilio.account_sid", "set it, and the twilio_auth_token secret")])
        return TwilioSms(account, token, from_number, api_base_url=settings.twilio.api_base_url)

    # -- what the daemon mounts ------------------------------------------------------------------

    def routers(self) -> list[APIRouter]:
        """The incoming lead/DNC endpoints, when enabled (under /integrations/v1)."""
        return [self.router] if self.router is not None else []

    def control_methods(self) -> list[Method]:
        """outbox.status|list|retry|replay|dead and sheets.import."""
        methods = outbox_methods(self.repo, [e.name for e in self.endpoints],
                                 wake=self.worker.notify)
        if self.sheets_client is not None:
            return [*methods, *sheets_methods(self.db, self.sheets_client, clock=self.clock,
                                                 erased=self.erased)]

        async def not_configured(_params: SheetImportParams) -> ImportResult:
            raise UnavailableError("Google Sheets is not configured: add [integrations.sheets] "
                                   "and its service account credential", code="sheets_not_configured")

        return [*methods, Method("sheets.import", not_configured, SheetImportParams,
                                 "Import a Google Sheet of contacts into a campaign")]

    def scheduler(self) -> Scheduler | None:
        """The agent's `Scheduler`: the booking service over the rep's calendar (None without
        `[integrations.caldav]`); bookings fail with UnavailableError while it is not open."""
        return self.booking

    async def health(self) -> tuple[bool, str]:
        if self.problems:
            return False, "not delivering: " + "; ".join(self.problems)
        if self.calendar_problem is not None:
            return False, self.calendar_problem
        counts = await self.repo.counts()
        pending = counts.by_status.get("pending", 0) + counts.by_status.get("delivering", 0)
        channels = ", ".join(sorted(self.worker.deliverers)) or "no senders configured"
        return True, f"{channels}; {pending} pending, {counts.dead_letters} dead letter(s)"

    # -- life --------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the calendar and start delivering (unless a sender is missing, see above)."""
        if self.booking is not None:
            calendar = self.booking.calendar
            try:
                await calendar.open()
            except ReautodError as err:
                # bookings fail (and say why) until the calendar is back; keep trying
                self.calendar_problem = f"calendar not open: {err.message}"
                log.warning("integrations: %s; trying again", self.calendar_problem)
                self._calendar_task = asyncio.create_task(self._open_calendar(calendar),
                                                          name="calendar-open")
        if self.problems:
            log.error("integrations: the outbox is not delivered until this is fixed: %s",
                      "; ".join(self.problems))
            return
        self.worker.start()
        if self.worker.deliverers:
            log.info("integrations: delivering %s", ", ".join(sorted(self.worker.deliverers)))

    async def _open_calendar(self, calendar: CalDAVScheduler) -> None:
        wait, longest = CALENDAR_RETRY_S
        while True:
            await asyncio.sleep(wait)
            try:
                await calendar.open()
            except ReautodError as err:
                self.calendar_problem = f"calendar not open: {err.message}"
                wait = min(wait * 2, longest)
                continue
            self.calendar_problem = None
            log.info("integrations: calendar open")
            return

    async def close(self) -> None:
        """Queue the results of calls that ended during the drain, stop the worker (an attempt
        in flight is sent again after the restart) and close every client."""
        if self._calendar_task is not None:
            self._calendar_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._calendar_task
        await self.results.close()
        await self.budget_alerts.close()
        await self.worker.stop()  # closes the senders, the results sheet's client with them
        if self.sheets_client is not None and self.results_sheet is None:
            await self.sheets_client.aclose()
        if self.booking is not None:
            await self.booking.calendar.close()

"""The `[integrations]` settings table, as pydantic models for the one settings schema to mount
(`Settings.integrations: IntegrationsSettings = IntegrationsSettings()`).

Secrets are never values here: each `*_credential` names a systemd credential (a file in
`$CREDENTIALS_DIRECTORY`, or an absolute path), read by `credentials.Credentials`.
"""

from __future__ import annotations

import re
from datetime import time
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from reautod.integrations.event_types import EventType

GLOBAL_ENDPOINT = "global"


class Section(BaseModel):
    """A config table: unknown keys are errors (config.Section's rules; not imported from
    there, so that reautod.config can import this module to mount the table)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

_NAME = r"^[a-z0-9][a-z0-9_.-]{0,63}$"


def _http_url(value: str) -> str:
    if not re.match(r"^https?://[^\s/?#]+", value):
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value


class NoAuth(Section):
    type: Literal["none"] = "none"


class ApiKeyAuth(Section):
    """A static key in a header on every request."""

    type: Literal["api_key"] = "api_key"
    header: str = Field("X-API-Key", pattern=r"^[A-Za-z0-9-]{1,64}$")
    key_credential: str = Field(description="credential holding the key")


class OAuth2Auth(Section):
    """OAuth 2.0 client credentials: a token fetched, cached and refreshed before it expires."""

    type: Literal["oauth2"] = "oauth2"
    token_url: str
    client_id: str = Field(min_length=1)
    client_secret_credential: str = Field(description="credential holding the client secret")
    scope: str | None = None
    refresh_leeway_s: int = Field(60, ge=0, le=3600,
                                  description="refresh this long before the token expires")

    _url = field_validator("token_url")(_http_url)


ReceiverAuth = Annotated[NoAuth | ApiKeyAuth | OAuth2Auth, Field(discriminator="type")]


class WebhookEndpoint(Section):
    """A receiver of webhook events; `campaigns` empty = every campaign (and site-wide events)."""

    name: str = Field(pattern=_NAME, description="the endpoint's name (outbox lists show it)")
    url: str = Field(description="http(s) URL the events are POSTed to")
    secret_credential: str = Field(description="credential holding the HMAC signing secret")
    campaigns: list[str] = Field(default_factory=list, description="campaign names; empty = all")
    events: list[EventType] = Field(default_factory=list, description="event types; empty = all")
    auth: ReceiverAuth = Field(NoAuth(), description="none, api_key or oauth2")
    timeout_s: float = Field(10.0, gt=0, le=120, description="seconds a delivery may take")

    _url = field_validator("url")(_http_url)

    def wants(self, event_type: str, campaign: str | None) -> bool:
        if self.events and event_type not in self.events:
            return False
        return not self.campaigns or campaign in self.campaigns


class DeliverySettings(Section):
    max_attempts: int = Field(8, ge=1, le=50, description="attempts before a dead letter")
    backoff_base_s: float = Field(5.0, gt=0, description="first retry delay (doubles each time)")
    backoff_max_s: float = Field(3600.0, gt=0, description="longest retry delay")
    batch_size: int = Field(20, ge=1, le=1000, description="messages claimed per round")
    concurrency: int = Field(4, ge=1, le=64, description="deliveries in flight at once")
    poll_interval_s: float = Field(2.0, gt=0, description="how often the queue is looked at")
    stuck_after_s: float = Field(300.0, gt=0,
                                 description="a claim older than this is released (worker died)")
    keep_delivered_days: int = Field(30, ge=1, description="delivered messages are purged after")


class CalDAVSettings(Section):
    """The rep's calendar and when appointments may be booked on it."""

    url: str = Field(description="CalDAV server (principal discovery starts here)")
    username: str = Field(description="the rep's CalDAV user")
    password_credential: str = Field(description="credential holding the CalDAV password")
    calendar: str = Field(description="calendar name (display name or the last URL segment)")
    timezone: str = Field("America/New_York", description="the rep's working time zone")
    workdays: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4],
                                description="0 = Monday")
    day_start: time = Field(time(9, 0), description="first bookable time of a workday")
    day_end: time = Field(time(17, 0), description="no appointment ends after this")
    slot_minutes: int = Field(30, ge=5, le=480, description="length of an appointment")
    buffer_minutes: int = Field(0, ge=0, le=240, description="free time kept around other events")
    min_notice_minutes: int = Field(60, ge=0, description="earliest bookable slot from now")
    meeting_link_template: str | None = Field(
        None, description="e.g. https://meet.example.com/{booking}; fields: booking, start, date")
    rep_email: str | None = Field(None, description="where booking emails go")
    timeout_s: float = Field(15.0, gt=0, description="seconds a CalDAV request may take")

    _url = field_validator("url")(_http_url)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise ValueError(f"{value!r} is not an IANA time zone") from err
        return value

    @model_validator(mode="after")
    def _hours(self) -> CalDAVSettings:
        if self.day_end <= self.day_start:
            raise ValueError("day_end must be after day_start")
        if any(not 0 <= d <= 6 for d in self.workdays):
            raise ValueError("workdays are 0 (Monday) .. 6 (Sunday)")
        return self


class SmtpSettings(Section):
    host: str = Field(description="SMTP server")
    port: int = Field(587, ge=1, le=65535, description="SMTP port")
    starttls: bool = Field(True, description="upgrade the connection with STARTTLS")
    username: str | None = Field(None, description="SMTP login, if the server wants one")
    password_credential: str | None = Field(None, description="credential holding its password")
    from_address: str = Field(pattern=r"^[^@\s]+@[^@\s]+$", description="the emails' From")
    timeout_s: float = Field(15.0, gt=0, description="seconds an SMTP exchange may take")


class SmsSettings(Section):
    """Twilio Messages; the account and auth token are the `[twilio]` ones."""

    from_number: str = Field(pattern=r"^\+[1-9]\d{1,14}$", description="E.164 number texts come from")


class ConfirmationSettings(Section):
    sms: bool = Field(True, description="text the lead a confirmation")
    email: bool = Field(True, description="email the rep the booking with an ICS invitation")
    business_name: str = Field("Acme Solar", description="the business named in confirmations")


class SheetsSettings(Section):
    """A Google Sheets results sheet, through a service account."""

    service_account_credential: str = Field(
        "google_service_account", description="credential holding the service account JSON key")
    results_spreadsheet_id: str | None = Field(None, description="spreadsheet call results go to")
    results_range: str = Field("Results!A1", description="where result rows are appended")
    api_base_url: str = Field("https://sheets.googleapis.com", description="Sheets API host (tests)")
    batch_rows: int = Field(200, ge=1, le=10_000, description="rows per append request at most")
    flush_interval_s: float = Field(5.0, gt=0, description="longest a row waits to be written")
    requests_per_minute: int = Field(50, ge=1, le=600,
                                     description="stay under Sheets' 60 per minute per user")

    _url = field_validator("api_base_url")(_http_url)


class IncomingSettings(Section):
    """The endpoints that add leads and DNC entries (mounted under /integrations/v1)."""

    enabled: bool = Field(False, description="mount the endpoints on the HTTP port")
    secret_credential: str | None = Field(None, description="HMAC secret for signed requests")
    api_key_credential: str | None = Field(None, description="key for X-API-Key requests")

    @model_validator(mode="after")
    def _some_auth(self) -> IncomingSettings:
        if self.enabled and not (self.secret_credential or self.api_key_credential):
            raise ValueError("incoming endpoints need secret_credential or api_key_credential")
        return self


class IntegrationsSettings(Section):
    webhook_url: str | None = Field(None, description="the global webhook receiver")
    webhook_secret_credential: str = Field("webhook_secret",
                                           description="credential holding its signing secret")
    webhook_auth: ReceiverAuth = Field(
        NoAuth(), description="how to authenticate to it: none, api_key or oauth2 (docs/integrations.md)")
    webhooks: list[WebhookEndpoint] = Field(default_factory=list,
                                            description="more receivers, per campaign or event")
    delivery: DeliverySettings = DeliverySettings()
    caldav: CalDAVSettings | None = None
    smtp: SmtpSettings | None = None
    sms: SmsSettings | None = None
    confirmations: ConfirmationSettings = ConfirmationSettings()
    sheets: SheetsSettings | None = None
    incoming: IncomingSettings = IncomingSettings()

    _url = field_validator("webhook_url")(lambda v: None if v is None else _http_url(v))

    @model_validator(mode="after")
    def _unique_names(self) -> IntegrationsSettings:
        names = [e.name for e in self.endpoints()]
        if len(set(names)) != len(names):
            raise ValueError(f"webhook endpoint names must be unique (got {names})")
        return self

    def endpoints(self) -> list[WebhookEndpoint]:
        """Every webhook receiver: the global one (named `global`) first."""
        found = list(self.webhooks)
        if self.webhook_url:
            found.insert(0, WebhookEndpoint(
                name=GLOBAL_ENDPOINT, url=self.webhook_url,
                secret_credential=self.webhook_secret_credential, auth=self.webhook_auth))
        return found

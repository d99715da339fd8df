"""Google Sheets: contacts in from a sheet, call results out to a results sheet (Sheets API v4).

Authentication is a service account: its JSON key is a systemd credential; authlib's JWT-bearer
client (RFC 7523, what Google's OAuth endpoint takes) signs an assertion with the key, trades it
at the key's `token_uri` for an access token, and does so again before the token expires.

Quotas: Sheets allows 60 requests a minute per user. Every request waits its turn in a rate
limiter (`requests_per_minute`); a 429 with Retry-After pauses the limiter for that time (the
quota is the service account's: everyone waits), and transient failures (429, 5xx, unreachable)
are retried by the `sheets` policy (reautod.resilience: exponential backoff, a retry budget)
through the `sheets` circuit, which refuses requests at once while open. Result rows travel the
outbox (channel `sheets`): durable and retried like webhooks, and written in batches: all the
rows due in one worker round go out in one `values.append`. Values are written RAW, so a cell
that looks like a formula stays text.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import httpx
from authlib.integrations.httpx_client import AsyncAssertionClient, OAuthError
from joserfc.jwk import RSAKey
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from reautod.errors import ConfigError, ReautodError, UnavailableError
from reautod.integrations.delivery import Outcome
from reautod.integrations.settings import SheetsSettings
from reautod.integrations.webhooks import retry_after
from reautod.observability.metrics import Metrics
from reautod.resilience.breaker import BreakerOpenError
from reautod.resilience.service import Resilience
from reautod.store.enums import OutboxChannel
from reautod.store.repositories import NewMessage, OutboxMessage

log = logging.getLogger(__name__)

SCOPE = "https://www.googleapis.com/auth/spreadsheets"
RESULT_COLUMNS = ("finished_at", "campaign", "call_id", "lead", "phone", "status", "outcome",
                  "score", "appointment", "meeting_link")


class SheetsError(ReautodError):
    code = "sheets_failed"

    def __init__(self, message: str, *, status: int | None = None,
                 retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s

    @property
    def transient(self) -> bool:
        return self.status is None or self.status >= 500 or self.status in (408, 429)


def _transient(err: BaseException) -> bool:
    return isinstance(err, SheetsError) and err.transient


class ServiceAccountKey(BaseModel):
    """The fields of a Google service account JSON key that we use."""

    model_config = ConfigDict(extra="ignore")
    type: str = Field(pattern="^service_account$")
    client_email: str
    private_key: str
    private_key_id: str | None = None
    token_uri: str = "https://oauth2.googleapis.com/token"

    @classmethod
    def parse(cls, text: str) -> ServiceAccountKey:
        try:
            return cls.model_validate_json(text)
        except PydanticValidationError as err:
            raise ConfigError("the Google service account key is not valid",
                              [("sheets.service_account_credential", str(err))]) from err


class RateLimiter:
    """At most `per_minute` requests a minute, evenly spaced; `pause` holds everyone back."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = 60.0 / per_minute
        self.clock = clock
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self._lock:
            delay = self._next - self.clock()
            if delay > 0:
                await asyncio.sleep(delay)
            self._next = max(self._next, self.clock()) + self.interval

    def pause(self, seconds: float) -> None:
        self._next = max(self._next, self.clock() + seconds)


class SheetsClient:
    """The few Sheets v4 calls we make, rate-limited, over a service account's token."""

    def __init__(self, settings: SheetsSettings, key: ServiceAccountKey, *,
                 metrics: Metrics | None = None, resilience: Resilience | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base = settings.api_base_url.rstrip("/") + "/v4/spreadsheets"
        self.limiter = RateLimiter(settings.requests_per_minute)
        self.metrics = metrics
        self.resilience = resilience or Resilience()
        header = {"alg": "RS256", **({"kid": key.private_key_id} if key.private_key_id else {})}
        self.http = AsyncAssertionClient(
            token_endpoint=key.token_uri, issuer=key.client_email, subject=None,
            audience=key.token_uri, claims={"scope": SCOPE},
            key=RSAKey.import_key(key.private_key), header=header,
            timeout=30.0, transport=transport)

    def _count(self, result: str) -> None:
        if self.metrics is not None:
            self.metrics.sheets_request(result)  # type: ignore[arg-type]

    async def _request(self, method: str, url: str, **kw: Any) -> dict[str, Any]:
        return await self.resilience.call("sheets", lambda: self._once(method, url, **kw),
                                          transient=_transient)

    async def _once(self, method: str, url: str, **kw: Any) -> dict[str, Any]:
        await self.limiter.wait()
        try:
            response = await self.http.request(method, url, **kw)
        except (httpx.TransportError, OAuthError) as err:
            self._count("failed")
            raise SheetsError(f"Sheets API unreachable: {err}") from err
        if response.status_code < 300:
            self._count("ok")
            body: dict[str, Any] = response.json()
            return body
        wait = retry_after(response)
        self._count("throttled" if response.status_code == 429 else "failed")
        if wait is not None:  # everyone waits: the quota is the service account's
            self.limiter.pause(wait)
        raise SheetsError(_error_text(response), status=response.status_code, retry_after_s=wait)

    def _values_url(self, spreadsheet_id: str, cell_range: str) -> str:
        return f"{self.base}/{quote(spreadsheet_id, safe='')}/values/{quote(cell_range, safe='')}"

    async def get_values(self, spreadsheet_id: str, cell_range: str) -> list[list[str]]:
        body = await self._request("GET", self._values_url(spreadsheet_id, cell_range),
                                   params={"majorDimension": "ROWS",
                                           "valueRenderOption": "FORMATTED_VALUE"})
        return [[str(c) for c in row] for row in body.get("values", [])]

    async def append(self, spreadsheet_id: str, cell_range: str,
                     rows: Sequence[Sequence[Any]]) -> int:
        """Append rows after the last row of the range's table; returns rows written."""
        url = self._values_url(spreadsheet_id, cell_range) + ":append"
        body = await self._request(
            "POST", url, params={"valueInputOption": "RAW", "insertDataOption": "INSERT_ROWS"},
            json={"range": cell_range, "majorDimension": "ROWS", "values": list(rows)})
        return int(body.get("updates", {}).get("updatedRows", 0))

    async def aclose(self) -> None:
        await self.http.aclose()


def _error_text(response: httpx.Response) -> str:
    try:
        error = response.json().get("error", {})
        return f"HTTP {response.status_code} {error.get('status', '')}: {error.get('message', '')}"
    except (json.JSONDecodeError, AttributeError):
        return f"HTTP {response.status_code}"


def rows_as_csv(rows: list[list[str]]) -> bytes:
    """A sheet's rows (the first is the header) as CSV, one line per row, so that the import
    report's line numbers are the sheet's row numbers. Sheets leaves out trailing empty cells:
    short rows are padded; line breaks inside a cell become spaces."""
    if not rows:
        return b""
    width = len(rows[0])
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in rows:
        cells = [" ".join(c.splitlines()) for c in row]
        writer.writerow(cells + [""] * (width - len(cells)))
    return buffer.getvalue().encode()


class CallResult(BaseModel):
    """One call's result, as a row of the results sheet."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    call_id: str
    finished_at: datetime
    campaign: str | None
    contact_id: str | None
    lead_name: str | None
    phone: str | None
    status: str
    outcome: str | None
    score: int | None = None
    appointment_at: datetime | None = None
    lead_timezone: str | None = None
    meeting_link: str | None = None

    def row(self) -> list[Any]:
        appointment = ""
        if self.appointment_at is not None:
            zone = ZoneInfo(self.lead_timezone) if self.lead_timezone else UTC
            appointment = self.appointment_at.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")
        return [self.finished_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
                self.campaign or "", self.call_id, self.lead_name or "", self.phone or "",
                self.status, self.outcome or "", "" if self.score is None else self.score,
                appointment, self.meeting_link or ""]


class ResultsSheet:
    """Call results to the results sheet: `message` queues a row in the outbox; as the sheets
    deliverer, `deliver_many` appends a round's rows in one request (a header row first, into an
    empty sheet)."""

    def __init__(self, client: SheetsClient, settings: SheetsSettings) -> None:
        if not settings.results_spreadsheet_id:
            raise ConfigError("no results sheet", [("sheets.results_spreadsheet_id", "set it")])
        self.client = client
        self.spreadsheet_id = settings.results_spreadsheet_id
        self.range = settings.results_range
        self.batch_rows = settings.batch_rows
        self._header_checked = False

    def message(self, result: CallResult) -> NewMessage:
        contact = uuid.UUID(result.contact_id) if result.contact_id else None
        return NewMessage("call.result", f"sheets:{self.spreadsheet_id}",
                          result.model_dump(mode="json"), channel=OutboxChannel.SHEETS,
                          endpoint="sheets", contact_id=contact,
                          ordering_key=str(contact) if contact else None)

    async def _ensure_header(self) -> None:
        if self._header_checked:
            return
        sheet = self.range.split("!", 1)[0]
        first = await self.client.get_values(self.spreadsheet_id, f"{sheet}!A1:A1")
        if not first:
            await self.client.append(self.spreadsheet_id, self.range, [list(RESULT_COLUMNS)])
        self._header_checked = True

    async def deliver(self, message: OutboxMessage) -> Outcome:
        [outcome] = await self.deliver_many([message])
        return outcome

    async def deliver_many(self, messages: list[OutboxMessage]) -> list[Outcome]:
        rows: list[list[Any]] = []
        outcomes: dict[int, Outcome] = {}
        for i, message in enumerate(messages):
            try:
                rows.append(CallResult.model_validate(message.payload).row())
            except PydanticValidationError as err:
                outcomes[i] = Outcome.failed_for_good(f"not a call result: {err}")
        try:
            await self._ensure_header()
            for start in range(0, len(rows), self.batch_rows):
                await self.client.append(self.spreadsheet_id, self.range,
                                         rows[start:start + self.batch_rows])
        except SheetsError as err:
            failed = (Outcome.transient(err.message, err.retry_after_s) if err.transient
                      else Outcome.failed_for_good(err.message))
            return [outcomes.get(i, failed) for i in range(len(messages))]
        except BreakerOpenError as err:  # the sheets circuit is open: nothing was sent
            return [outcomes.get(i, Outcome.not_attempted(err)) for i in range(len(messages))]
        return [outcomes.get(i, Outcome.delivered()) for i in range(len(messages))]

    async def aclose(self) -> None:
        await self.client.aclose()


async def read_contacts(client: SheetsClient, spreadsheet_id: str, cell_range: str) -> bytes:
    """A contacts sheet as CSV bytes for the lead import (UnavailableError if unreachable)."""
    try:
        rows = await client.get_values(spreadsheet_id, cell_range)
    except SheetsError as err:
        raise UnavailableError(f"cannot read the contacts sheet: {err.message}") from err
    return rows_as_csv(rows)

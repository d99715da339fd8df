"""Control-socket methods of the outbox (outbox.status | list | retry | replay | dead) and of
Google Sheets (sheets.import).

Every result is a pydantic model; `reautoctl outbox` validates the daemon's answer with the same
model. Lists never carry message bodies (they hold personal data): ids, types, endpoints, states.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from reautod.campaigns.dialer import ErasedNumbers
from reautod.campaigns.intake import ImportResult, add_leads
from reautod.integrations.sheets import SheetsClient, read_contacts
from reautod.methods import Method, NoParams
from reautod.store.database import Database
from reautod.store.enums import OutboxStatus
from reautod.store.repositories import DeadLetter, OutboxMessage, OutboxRepository
from reautod.store.types import utcnow

P = TypeVar("P", bound=BaseModel)


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ListParams(_Params):
    status: Literal["pending", "delivering", "delivered", "dead"] | None = None
    endpoint: str | None = Field(None, max_length=64)
    limit: int = Field(50, ge=1, le=1000)


class RetryParams(_Params):
    ids: list[uuid.UUID] = Field(default_factory=list, max_length=1000,
                                 description="outbox or dead-letter ids")
    all: bool = Field(False, description="every dead letter")

    @model_validator(mode="after")
    def _one_of(self) -> RetryParams:
        if self.all == bool(self.ids):
            raise ValueError("give ids, or all = true (not both)")
        return self


class ReplayParams(_Params):
    since: datetime = Field(description="deliveries created at or after (timezone-aware)")
    endpoint: str | None = Field(None, max_length=64)
    event_type: str | None = Field(None, max_length=64)

    @field_validator("since")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("since must carry a time zone (e.g. 2026-12-01T00:00:00Z)")
        return value


class DeadParams(_Params):
    limit: int = Field(50, ge=1, le=1000)


class OutboxStatusResult(BaseModel):
    by_status: dict[str, int]
    by_endpoint: dict[str, dict[str, int]]
    dead_letters: int
    oldest_pending_at: datetime | None
    endpoints: list[str] = Field(description="configured webhook endpoints")


class OutboxItem(BaseModel):
    id: uuid.UUID
    event_id: uuid.UUID | None
    event_type: str
    channel: str
    endpoint: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None

    @classmethod
    def of(cls, m: OutboxMessage) -> OutboxItem:
        return cls(id=m.id, event_id=m.event_id, event_type=m.event_type, channel=m.channel,
                   endpoint=m.endpoint, status=m.status, attempts=m.attempts,
                   next_attempt_at=m.next_attempt_at, last_error=m.last_error,
                   created_at=m.created_at, delivered_at=m.delivered_at)


class OutboxListResult(BaseModel):
    messages: list[OutboxItem]


class DeadLetterItem(BaseModel):
    id: uuid.UUID
    outbox_id: uuid.UUID | None
    event_type: str
    endpoint: str | None
    channel: str | None
    attempts: int
    last_error: str | None
    dead_at: datetime

    @classmethod
    def of(cls, d: DeadLetter) -> DeadLetterItem:
        return cls(id=d.id, outbox_id=d.outbox_id, event_type=d.event_type, endpoint=d.endpoint,
                   channel=d.channel, attempts=d.attempts, last_error=d.last_error,
                   dead_at=d.dead_at)


class DeadLettersResult(BaseModel):
    dead_letters: list[DeadLetterItem]


class RequeuedResult(BaseModel):
    """Messages put (back) in the queue by retry or replay."""

    queued: list[uuid.UUID]


def _method(name: str, params: type[P], summary: str,
            handler: Callable[[P], Awaitable[BaseModel]], *, changes_state: bool = False) -> Method:
    return Method(name, handler, params, summary, changes_state=changes_state)


def outbox_methods(repo: OutboxRepository, endpoints: list[str],
                   wake: Callable[[], None] | None = None) -> list[Method]:
    """The outbox's control methods; `wake` nudges the delivery worker after a requeue."""

    def nudge(ids: list[uuid.UUID]) -> RequeuedResult:
        if ids and wake is not None:
            wake()
        return RequeuedResult(queued=ids)

    async def status(_: NoParams) -> OutboxStatusResult:
        counts = await repo.counts()
        return OutboxStatusResult(by_status=counts.by_status, by_endpoint=counts.by_endpoint,
                                  dead_letters=counts.dead_letters,
                                  oldest_pending_at=counts.oldest_pending_at, endpoints=endpoints)

    async def listing(p: ListParams) -> OutboxListResult:
        rows = await repo.recent(status=OutboxStatus(p.status) if p.status else None,
                                 endpoint=p.endpoint, limit=p.limit)
        return OutboxListResult(messages=[OutboxItem.of(m) for m in rows])

    async def retry(p: RetryParams) -> RequeuedResult:
        return nudge(await repo.retry(None if p.all else p.ids, utcnow()))

    async def replay(p: ReplayParams) -> RequeuedResult:
        return nudge(await repo.replay(p.since, endpoint=p.endpoint, event_type=p.event_type))

    async def dead(p: DeadParams) -> DeadLettersResult:
        return DeadLettersResult(dead_letters=[DeadLetterItem.of(d) for d in await repo.dead(p.limit)])

    return [
        _method("outbox.status", NoParams, "Outbox messages by state and endpoint", status),
        _method("outbox.list", ListParams, "Recent outbox messages (no bodies)", listing),
        _method("outbox.retry", RetryParams, "Dead letters back into the queue", retry,
                changes_state=True),
        _method("outbox.replay", ReplayParams, "Deliver again what was delivered since", replay,
                changes_state=True),
        _method("outbox.dead", DeadParams, "The dead letters, newest first", dead),
    ]


class SheetImportParams(_Params):
    campaign: str = Field(min_length=1, max_length=200, description="campaign name or id")
    spreadsheet_id: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_-]+$")
    range: str = Field("A1:Z", min_length=1, max_length=200,
                       description="A1 range of the contacts, header row first (Sheet1!A1:Z)")


def sheets_methods(db: Database, client: SheetsClient,
                   clock: Callable[[], datetime] = utcnow,
                   erased: ErasedNumbers | None = None) -> list[Method]:
    """`sheets.import`: a contacts sheet into a campaign, reported like a CSV import."""

    async def import_sheet(p: SheetImportParams) -> ImportResult:
        data = await read_contacts(client, p.spreadsheet_id, p.range)
        return await add_leads(db, p.campaign, data, source="sheet", clock=clock, erased=erased)

    return [_method("sheets.import", SheetImportParams,
                    "Import a Google Sheet of contacts into a campaign", import_sheet,
                    changes_state=True)]

"""The dialer's Protocols over the store: DNC storage, the lead directory, the blocked-dial log."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime

from reautod.campaigns.dialer import BlockedDial, LeadTarget
from reautod.campaigns.dnc import DncChannel, DncEntry, DncScope
from reautod.campaigns.lead_queue import LeadClaim
from reautod.errors import NotFoundError
from reautod.store.database import Database
from reautod.store.enums import DncSource
from reautod.store.repositories import (
    CallRepository,
    ContactRepository,
    DialBlockRepository,
    DncEntryRow,
    DncRepository,
)
from reautod.store.types import utcnow

log = logging.getLogger(__name__)

# The store keeps the coarse vocabulary in `source` and how the request came in in `channel`.
_STORED_SOURCE = {
    DncChannel.SPOKEN: DncSource.REQUEST,
    DncChannel.KEYPRESS: DncSource.REQUEST,
    DncChannel.AGENT_TOOL: DncSource.REQUEST,
    DncChannel.OPERATOR: DncSource.MANUAL,
    DncChannel.IMPORT: DncSource.IMPORT,
}
_FROM_STORED = {
    DncSource.REQUEST.value: DncChannel.SPOKEN,
    DncSource.MANUAL.value: DncChannel.OPERATOR,
    DncSource.IMPORT.value: DncChannel.IMPORT,
    DncSource.REGISTRY.value: DncChannel.IMPORT,
}


def _entry(row: DncEntryRow) -> DncEntry:
    try:
        source = DncChannel(row.channel) if row.channel else _FROM_STORED[row.source]
    except (ValueError, KeyError):
        source = DncChannel.OPERATOR
    scope = DncScope.GLOBAL if row.campaign_id is None else DncScope.CAMPAIGN
    return DncEntry(row.phone_e164, scope, str(row.campaign_id) if row.campaign_id else None,
                    source, row.reason or "", row.added_at)


class StoreDncStorage:
    """`DncStorage` over the store's dnc_entries (global and per-campaign entries)."""

    def __init__(self, db: Database) -> None:
        self._repo = DncRepository(db)

    async def find(self, phone: str, campaign_id: str | None) -> DncEntry | None:
        campaign = _campaign_uuid(campaign_id)
        row = await self._repo.find(phone, campaign)
        return None if row is None else _entry(row)

    async def add(self, entry: DncEntry) -> bool:
        campaign = _campaign_uuid(entry.campaign_id) if entry.scope is DncScope.CAMPAIGN else None
        return await self._repo.add(
            entry.phone, _STORED_SOURCE[entry.source], reason=entry.reason or None,
            campaign_id=campaign, channel=entry.source.value, added_at=entry.created_at,
        )


def _campaign_uuid(campaign_id: str | None) -> uuid.UUID | None:
    """Campaign ids that are not UUIDs (a manual dial's "manual") have no campaign entries."""
    if not campaign_id:
        return None
    try:
        return uuid.UUID(campaign_id)
    except ValueError:
        return None


class StoreLeadDirectory:
    """`LeadDirectory`: who a claimed lead is (phone, time zone, state) and when it was called."""

    def __init__(self, db: Database) -> None:
        self._contacts = ContactRepository(db)
        self._calls = CallRepository(db)

    async def target(self, claim: LeadClaim) -> LeadTarget | None:
        try:
            contact = await self._contacts.get(claim.contact_id)
        except NotFoundError:
            return None
        state = contact.custom.get("state") if isinstance(contact.custom, dict) else None
        return LeadTarget(contact.phone_e164, contact.timezone,
                          state if isinstance(state, str) and state else None,
                          contact.name or "")

    async def attempt_times(self, lead_id: uuid.UUID, since: datetime) -> list[datetime]:
        return await self._calls.attempt_times(lead_id, since)


class StoreDialLog:
    """`DialLog`: every blocked dial goes to dial_blocks with its rule; `on_blocked` counts it."""

    def __init__(self, db: Database, on_blocked: Callable[[BlockedDial], None] | None = None,
                 *, clock: Callable[[], datetime] = utcnow) -> None:
        self._repo = DialBlockRepository(db)
        self._on_blocked = on_blocked
        self._clock = clock

    async def blocked(self, entry: BlockedDial) -> None:
        at = self._clock()
        await self._repo.add(
            lead_id=entry.lead_id, campaign_id=entry.campaign_id, reason=entry.reason.value,
            rule_code=entry.rule_code[:64], detail=entry.detail, source=entry.source,
            retry_at=entry.retry_at, at=at,
        )
        if self._on_blocked is not None:
            self._on_blocked(entry)

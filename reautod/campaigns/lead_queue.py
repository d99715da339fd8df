"""The dialer's lead queue on the shared database: claims with SKIP LOCKED, leases that expire.

Several daemons may share one Postgres. A claim selects due leads `FOR UPDATE SKIP LOCKED` and
marks them `dialing` in the same transaction, so two dialers never take the same lead. The claim
is a lease held in `lease_owner` (which dialer) and `lease_expires_at` (until when); its token is
the `updated_at` the claim wrote. The holder renews it (heartbeat) while the lead is dialing or in
a call; every renewal and release is fenced on owner and token, so a holder whose lease was taken
over learns it instead of overwriting the new holder. When a daemon dies its heartbeats stop, and
once `lease_expires_at` has passed any dialer's `reap_expired` puts the lead back in the queue as
a retry (not dialed at once: the window and retry rules still apply). On SQLite (single box)
writers are serialised by the store's BEGIN IMMEDIATE, which gives the same guarantee without
SKIP LOCKED.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import ColumnElement, and_, case, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from reautod.errors import ValidationError
from reautod.store.database import Database
from reautod.store.enums import DUE_LEAD_STATUSES, LeadStatus
from reautod.store.repositories._claim import claim_rows
from reautod.store.repositories.leads import leads as _leads

_DUE = tuple(status.value for status in DUE_LEAD_STATUSES)
# A callback the lead asked for goes before new leads and retries that are due as well.
_CALLBACKS_FIRST = case((_leads.c.status == LeadStatus.CALLBACK.value, 0), else_=1)
_HELD = (LeadStatus.DIALING.value, LeadStatus.IN_CALL.value)
MAX_CLAIM = 1_000
MAX_OWNER_CHARS = 64


def default_owner() -> str:
    """This dialer's name in `lease_owner`: host and pid, unique per running daemon."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class LeadClaim:
    """A leased lead; `token` fences every later write by the holder."""

    lead_id: uuid.UUID
    campaign_id: uuid.UUID
    contact_id: uuid.UUID
    attempts: int
    token: datetime


class LeadQueue(Protocol):
    """What the dialer needs from the database (SqlLeadQueue; fakes in tests)."""

    async def claim(self, campaign_id: uuid.UUID, now: datetime, limit: int) -> list[LeadClaim]: ...

    async def renew(self, claim: LeadClaim, now: datetime, *,
                    in_call: bool = False, dialed: bool = False) -> LeadClaim | None: ...

    async def release(self, claim: LeadClaim, status: LeadStatus, now: datetime,
                      next_attempt_at: datetime | None = None) -> bool: ...

    async def reap_expired(self, now: datetime, requeue_at: datetime) -> int: ...

    async def reclaim_previous_run(self, now: datetime, requeue_at: datetime) -> int: ...


class SqlLeadQueue:
    """LeadQueue over the store's Database (Postgres or SQLite)."""

    def __init__(self, db: Database, *, lease_ttl: timedelta = timedelta(minutes=2),
                 owner: str | None = None) -> None:
        if lease_ttl <= timedelta(0):
            raise ValidationError("lease TTL must be positive")
        self.owner = owner or default_owner()
        if not 0 < len(self.owner) <= MAX_OWNER_CHARS:
            raise ValidationError(f"lease owner must be 1-{MAX_OWNER_CHARS} characters")
        self.db = db
        self.lease_ttl = lease_ttl

    async def claim(self, campaign_id: uuid.UUID, now: datetime, limit: int) -> list[LeadClaim]:
        """Lease up to `limit` due leads of a campaign: callbacks the leads asked for first,
        then by priority (highest first), then the longest due."""
        _aware(now)
        if not 1 <= limit <= MAX_CLAIM:
            raise ValidationError(f"claim limit must be 1..{MAX_CLAIM}")

        async def work(conn: AsyncConnection) -> list[LeadClaim]:
            due = (
                select(_leads.c.id)
                .where(_leads.c.campaign_id == campaign_id, _leads.c.status.in_(_DUE),
                       _leads.c.next_attempt_at <= now)
                .order_by(_CALLBACKS_FIRST, _leads.c.priority.desc(), _leads.c.next_attempt_at)
                .limit(limit)
            )
            taken = {"status": LeadStatus.DIALING.value, "updated_at": now,
                     "lease_owner": self.owner, "lease_expires_at": now + self.lease_ttl}
            rows = await claim_rows(conn, _leads, due, taken)
            return [LeadClaim(r.id, r.campaign_id, r.contact_id, r.attempts, r.updated_at)
                    for r in rows]

        return await self.db.transaction(work)

    async def renew(self, claim: LeadClaim, now: datetime, *,
                    in_call: bool = False, dialed: bool = False) -> LeadClaim | None:
        """Extend the lease (heartbeat); None if it was lost. `dialed` counts an attempt."""
        _aware(now)
        values: dict[str, object] = {"updated_at": now, "lease_expires_at": now + self.lease_ttl}
        if in_call:
            values["status"] = LeadStatus.IN_CALL.value
        if dialed:
            values["attempts"] = _leads.c.attempts + 1
            values["last_attempt_at"] = now

        async def work(conn: AsyncConnection) -> bool:
            result = await conn.execute(update(_leads).where(self._fenced(claim)).values(**values))
            return bool(result.rowcount)

        if not await self.db.transaction(work):
            return None
        return LeadClaim(claim.lead_id, claim.campaign_id, claim.contact_id,
                         claim.attempts + (1 if dialed else 0), now)

    async def release(self, claim: LeadClaim, status: LeadStatus, now: datetime,
                      next_attempt_at: datetime | None = None) -> bool:
        """End the lease with the lead's new status; False if the lease had been lost."""
        _aware(now)
        if status.value in _HELD:
            raise ValidationError("release needs a status outside dialing/in_call")
        if status.value in _DUE and next_attempt_at is None:
            raise ValidationError(f"a lead released as {status} needs next_attempt_at")
        values: dict[str, object] = {"status": status.value, "updated_at": now,
                                     "lease_owner": None, "lease_expires_at": None}
        if next_attempt_at is not None:
            values["next_attempt_at"] = _aware(next_attempt_at)

        async def work(conn: AsyncConnection) -> bool:
            result = await conn.execute(update(_leads).where(self._fenced(claim)).values(**values))
            return bool(result.rowcount)

        return await self.db.transaction(work)

    async def reap_expired(self, now: datetime, requeue_at: datetime) -> int:
        """Requeue leads whose holder stopped renewing (a dead daemon); returns how many."""
        return await self._requeue(and_(_leads.c.status.in_(_HELD),
                                        _leads.c.lease_expires_at < now), now, requeue_at)

    async def reclaim_previous_run(self, now: datetime, requeue_at: datetime) -> int:
        """At start-up: requeue the leads an earlier daemon on this host was still dialing when
        it died (their calls never connected), rather than waiting out their leases. Leads in a
        call are left to their leases: the call may be resumed (reautod.recovery)."""
        host = self.owner.split(":", 1)[0]
        return await self._requeue(and_(_leads.c.status == LeadStatus.DIALING.value,
                                        _leads.c.lease_owner.startswith(f"{host}:",
                                                                        autoescape=True),
                                        _leads.c.lease_owner != self.owner), now, requeue_at)

    async def _requeue(self, held: ColumnElement[bool], now: datetime,
                       requeue_at: datetime) -> int:
        """Put the leases `held` selects back in the queue as retries due at `requeue_at`."""
        _aware(now)
        _aware(requeue_at)

        async def work(conn: AsyncConnection) -> int:
            taken = {"status": LeadStatus.RETRY.value, "next_attempt_at": requeue_at,
                     "updated_at": now, "lease_owner": None, "lease_expires_at": None}
            return len(await claim_rows(conn, _leads, select(_leads.c.id).where(held), taken))

        return await self.db.transaction(work)

    def _fenced(self, claim: LeadClaim) -> ColumnElement[bool]:
        return and_(_leads.c.id == claim.lead_id, _leads.c.status.in_(_HELD),
                    _leads.c.lease_owner == self.owner, _leads.c.updated_at == claim.token)


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValidationError("lead queue timestamps must be timezone-aware")
    return moment

"""What the in-call agent is given: the call and lead it serves, and the small interfaces through
which its decisions reach the rest of reautod (the store, the DNC list, events and metrics).

The agent never imports those parts; the daemon hands it implementations (reautod.dialogue.effects
has the store-backed ones; tests use fakes that record what they got).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from reautod.dialogue.templates import LeadData
from reautod.pipeline.opening import OpeningFields
from reautod.store.records import Record


@dataclass(frozen=True)
class LeadContext:
    """The lead on the call, as the agent may use it; `timezone` is the lead's (IANA)."""

    phone: str  # E.164
    timezone: str
    lead_id: uuid.UUID | None = None
    contact_id: uuid.UUID | None = None
    campaign_id: uuid.UUID | None = None
    name: str | None = None
    email: str | None = None
    city: str | None = None
    source: str | None = None
    state: str | None = None  # US state code, for the calling-window rules of a callback
    custom: Mapping[str, object] = field(default_factory=dict)

    def key(self) -> str:
        """What A/B assignment hashes: the lead, else the contact, else the number."""
        return str(self.lead_id or self.contact_id or self.phone)

    def data(self) -> LeadData:
        return LeadData(self.name, self.city, self.source, self.custom)


@dataclass(frozen=True)
class AgentCall:
    """The call as the agent sees it, built by DialoguePart from the seam's `CallContext`."""

    call_id: uuid.UUID
    lead: LeadContext
    direction: Literal["outbound", "inbound"] = "outbound"
    transfer_number: str | None = None  # E.164 of the human transfer_to_human connects
    # The campaign's opening fields (CampaignSettings.opening_fields): its opt-out offer and
    # number for DNC requests, said after the identification; None: the factory's default.
    opening: OpeningFields | None = None


@dataclass(frozen=True)
class LeadChanges:
    """What update_lead writes: a second number the caller gave, and the facts learned."""

    alt_phone: str | None = None
    facts: Mapping[str, str | float] = field(default_factory=dict)


class RecordSink(Protocol):
    """Where transitions, scores, decisions and the playbook assignment go (the write-behind
    queue: `WriteBehind.submit`). Never blocks; False when the record was refused."""

    def submit(self, record: Record) -> bool: ...


class CallEffects(Protocol):
    """Consequences outside the call, carried out when the agent decides them."""

    async def opt_out(self, lead: LeadContext, *, reason: str) -> None:
        """Put the lead's number on the company do-not-call list."""
        ...

    async def schedule_callback(self, lead: LeadContext, at: datetime, *, reason: str) -> None:
        """Have the dialer call the lead again at `at` (UTC)."""
        ...

    async def update_lead(self, lead: LeadContext, changes: LeadChanges) -> None: ...


class CallbackWindow(Protocol):
    """The calling rules a callback must respect (federal, state, campaign hours)."""

    def earliest(self, lead: LeadContext, at: datetime) -> datetime | None:
        """The first instant at or after `at` (UTC) the lead may be called; None if none soon."""
        ...


class AgentObserver(Protocol):
    """Events and metrics of the agent (`agent.transition`, score events, outcome counters)."""

    def transition(self, call_id: uuid.UUID, from_stage: str | None, to_stage: str,
                   reason: str) -> None: ...

    def scored(self, call_id: uuid.UUID, score: int, qualified: bool) -> None: ...

    def ended(self, call_id: uuid.UUID, outcome: str, booked: bool) -> None: ...

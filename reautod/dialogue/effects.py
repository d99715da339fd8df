"""The store-backed consequences of the agent's decisions, and the calling-window check of a
callback: what the daemon gives `AgentFactory` (reautod.dialogue.ports describes each)."""

from __future__ import annotations

import logging
from datetime import datetime

from reautod.campaigns.windows import CallingWindows, CampaignWindow
from reautod.dialogue.ports import LeadChanges, LeadContext
from reautod.observability.logging import mask_phone
from reautod.store.database import Database
from reautod.store.enums import DncSource, LeadStatus
from reautod.store.repositories import (
    ContactInput,
    ContactRepository,
    DncRepository,
    LeadRepository,
)

log = logging.getLogger(__name__)

AGENT_CHANNEL = "agent_tool"  # dnc_entries.channel of an opt-out the agent decided


class StoreCallEffects:
    """`CallEffects` on the store: the company DNC list, the lead's next attempt, the contact."""

    def __init__(self, db: Database) -> None:
        self._dnc = DncRepository(db)
        self._leads = LeadRepository(db)
        self._contacts = ContactRepository(db)

    async def opt_out(self, lead: LeadContext, *, reason: str) -> None:
        added = await self._dnc.add(lead.phone, DncSource.REQUEST, reason=reason,
                                    channel=AGENT_CHANNEL)
        if added:
            log.info("agent opt-out: %s is on the do-not-call list", mask_phone(lead.phone))

    async def schedule_callback(self, lead: LeadContext, at: datetime, *, reason: str) -> None:
        if lead.lead_id is None:
            log.warning("callback for a caller who is not a lead (%s): not scheduled",
                        mask_phone(lead.phone))
            return
        await self._leads.set_status(lead.lead_id, LeadStatus.CALLBACK, next_attempt_at=at)

    async def update_lead(self, lead: LeadContext, changes: LeadChanges) -> None:
        if lead.contact_id is None:
            return
        contact = await self._contacts.get(lead.contact_id)
        custom = dict(contact.custom)
        if changes.alt_phone:
            custom["alt_phone"] = changes.alt_phone
        if changes.facts:
            custom["facts"] = {**custom.get("facts", {}), **changes.facts}
        await self._contacts.upsert(ContactInput(contact.phone_e164, custom=custom))


class CallingWindowPolicy:
    """`CallbackWindow` from the campaign's calling rules (reautod.campaigns.windows)."""

    def __init__(self, windows: CallingWindows, campaign_window: CampaignWindow | None = None) -> None:
        self._windows = windows
        self._campaign = campaign_window

    def earliest(self, lead: LeadContext, at: datetime) -> datetime | None:
        decision = self._windows.evaluate(lead.timezone, lead.state, at, self._campaign)
        return at if decision.allowed else decision.next_allowed_at

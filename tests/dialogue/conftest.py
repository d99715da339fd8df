"""Dialogue fixtures: the store fixtures (SQLite and Postgres), and a rig of fakes around a real
SQLite store for whole conversations."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal

import pytest

from reautod.campaigns.windows import CallingWindows
from reautod.dialogue.agent import AgentFactory, CallAgent
from reautod.dialogue.cache import ResponseCache
from reautod.dialogue.effects import CallingWindowPolicy
from reautod.dialogue.playbook_file import LoadedPlaybook
from reautod.dialogue.ports import AgentCall, LeadContext
from reautod.dialogue.slots import CampaignSlots
from reautod.pipeline.opening import OpeningFields
from reautod.store.database import Database
from reautod.store.records import CallStarted
from reautod.store.repositories import (
    AppointmentRepository,
    CallRepository,
    CampaignRepository,
    ContactInput,
    ContactRepository,
    LeadRepository,
)
from tests.dialogue.fakes import NOW, Effects, Observer, Records, clock, example, lead
from tests.pipeline.fakes import FakeLLM
from tests.store.conftest import TEST_DB_SETTINGS, db, db_url, empty_db  # noqa: F401

# A model that ignores its instructions, as the tiny real one does.
RAMBLING = "That is great. Let me tell you about our free consultation. It takes an hour."


@dataclasses.dataclass
class Rig:
    db: Database
    records: Records
    effects: Effects
    observer: Observer
    factory: AgentFactory
    lead: LeadContext
    llm: FakeLLM
    transfer_number: str | None = None
    opening: OpeningFields | None = None  # the campaign's opening fields, None: the factory's

    async def agent(self, playbook: str | LoadedPlaybook, factory: AgentFactory | None = None,
                    *, direction: Literal["outbound", "inbound"] = "outbound",
                    **lead_changes: object) -> CallAgent:
        """A call's agent running `playbook` (an example's name, or a playbook)."""
        loaded = example(playbook) if isinstance(playbook, str) else playbook
        the_lead = dataclasses.replace(self.lead, **lead_changes)  # type: ignore[arg-type]
        booking = loaded.playbook.booking
        assert booking is not None and the_lead.campaign_id is not None
        slots = CampaignSlots(booking, AppointmentRepository(self.db), the_lead.campaign_id,
                              clock=clock)
        call_id = uuid.uuid4()  # the call row exists before the agent starts (the dialer's)
        await CallRepository(self.db).write([CallStarted(
            call_id, NOW, campaign_id=the_lead.campaign_id, contact_id=the_lead.contact_id,
            lead_id=the_lead.lead_id)])
        return (factory or self.factory).start(AgentCall(call_id, the_lead, direction,
                                                           transfer_number=self.transfer_number,
                                                           opening=self.opening),
                                               loaded, scheduler=slots)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    store = Database(f"sqlite+aiosqlite:///{tmp_path / 'r.db'}", TEST_DB_SETTINGS)
    await store.open()
    await store.upgrade("head")
    campaign = await CampaignRepository(store).create("sellers")
    contact = await ContactRepository(store).upsert(ContactInput("+13125550123", name="Dana Smith"))
    row = await LeadRepository(store).add(campaign.id, contact.id)
    records, effects, observer = Records(), Effects(), Observer()
    factory = AgentFactory(records=records, effects=effects, observer=observer, clock=clock,
                           window=CallingWindowPolicy(CallingWindows()),
                           cache=ResponseCache())
    the_lead = lead(lead_id=row.id, contact_id=contact.id, campaign_id=campaign.id)
    try:
        yield Rig(store, records, effects, observer, factory, the_lead, FakeLLM(reply=RAMBLING))
    finally:
        await store.close()



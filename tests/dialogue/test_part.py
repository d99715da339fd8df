"""The dialogue part on a real store: which calls get which agent (campaign playbook, call row,
stand-in lead of a simulated call), what the call's settled outcome writes (call row, lead),
the examples seeded once, and the agent's events and metrics."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reautod.campaigns.settings import CampaignSettings
from reautod.campaigns.windows import CallingWindows
from reautod.config import AgentSettings, Settings
from reautod.conversation import CallContext
from reautod.dialogue.agent import AgentFactory
from reautod.dialogue.cache import CachedLine, ResponseCache
from reautod.dialogue.library import PlaybookLibrary
from reautod.dialogue.lines import approved_lines
from reautod.dialogue.part import (
    SIMULATED_CITY,
    SIMULATED_CUSTOM,
    SIMULATED_PHONE,
    WARM_CALL_ID,
    AgentEvents,
    CampaignCallbackWindow,
    DialoguePart,
    ResponseCacheCollector,
    StoreAgentSource,
    json_model_of,
    seed_examples,
)
from reautod.dialogue.playbook import BookingSettings
from reautod.dialogue.ports import LeadContext
from reautod.dialogue.slots import CampaignSlots
from reautod.engines.base import ChatMessage
from reautod.engines.catalog import PROFILES
from reautod.engines.llm import LlamaLLM
from reautod.errors import EngineError
from reautod.observability.events import EventBus
from reautod.observability.metrics import Metrics
from reautod.store.call_observer import call_uuid
from reautod.store.database import Database
from reautod.store.enums import CallOutcome, LeadStatus
from reautod.store.records import CallEnded, CallOutcomeDecided, CallStarted
from reautod.store.repositories import (
    AppointmentRepository,
    CallRepository,
    CampaignRepository,
    ContactInput,
    ContactRepository,
    LeadRepository,
)
from reautod.store.writebehind import WriteBehind
from tests.dialogue.fakes import EXAMPLES, NOW, Effects, Records, example
from tests.pipeline.fakes import FakeLLM, FakeTTS
from tests.store.conftest import TEST_DB_SETTINGS


@dataclass
class Site:
    db: Database
    source: StoreAgentSource
    records: Records
    windows: CampaignCallbackWindow
    campaign_id: uuid.UUID
    lead_id: uuid.UUID
    playbooks: Path


def campaign_columns(**settings: object) -> dict[str, dict[str, object]]:
    return CampaignSettings.model_validate(settings).to_columns()


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 's.db'}", TEST_DB_SETTINGS)
    await db.open()
    await db.upgrade("head")
    campaigns = CampaignRepository(db)
    sellers = await campaigns.create("sellers", **campaign_columns(  # type: ignore[arg-type]
        playbook="real-estate-sellers", transfer_number="+13125550999", window_end="12:00"))
    await campaigns.create("plain", **campaign_columns())  # type: ignore[arg-type]
    await campaigns.create("broken", **campaign_columns(playbook="broken"))  # type: ignore[arg-type]
    contact = await ContactRepository(db).upsert(ContactInput(
        "+13125550123", name="Dana Smith", timezone="America/Denver",
        custom={"street": "Maple Street", "city": "Evanston", "state": "IL"}))
    lead = await LeadRepository(db).add(sellers.id, contact.id)
    playbooks = tmp_path / "playbooks"
    seed_examples(playbooks)
    (playbooks / "broken.yaml").write_text("playbook: broken\nstages: [\n")
    records = Records()
    windows = CampaignCallbackWindow(CallingWindows())
    factory = AgentFactory(records=records, effects=Effects(), window=windows)
    source = StoreAgentSource(db, PlaybookLibrary(playbooks), factory, windows,
                              agent=AgentSettings(), default_caller_id="+13125550100")
    try:
        yield Site(db, source, records, windows, sellers.id, lead.id, playbooks)
    finally:
        await db.close()


def call(call_id: str, campaign: str | None) -> CallContext:
    return CallContext(call_id=call_id, lead_name="Sam", campaign=campaign, goal=None,
                       direction="outbound")


async def test_a_dialed_call_gets_its_campaigns_playbook_and_lead(site: Site) -> None:
    call_id = uuid.uuid4()
    lead = await LeadRepository(site.db).get(site.lead_id)
    await CallRepository(site.db).write([CallStarted(
        call_id, NOW, campaign_id=site.campaign_id, contact_id=lead.contact_id,
        lead_id=lead.id)])
    assert site.source.has_playbook("sellers") is None  # not read yet
    # the stream carries the campaign's name; the call row is what counts
    agent = await site.source.agent_for(call(call_id.hex, "sellers"))
    assert agent is not None and agent.loaded.name == "real-estate-sellers"
    assert agent.call.call_id == call_id and agent.call.transfer_number == "+13125550999"
    the_lead = agent.call.lead
    assert (the_lead.phone, the_lead.name, the_lead.timezone) == (
        "+13125550123", "Dana Smith", "America/Denver")
    assert (the_lead.lead_id, the_lead.city, the_lead.state) == (lead.id, "Evanston", "IL")
    assert agent._booker is not None  # the campaign's slots: the playbook books
    assert site.source.has_playbook("sellers") is True
    assert site.source.pipeline_id(call_id) == call_id.hex
    opening = await agent.opening()
    assert opening.text.startswith("Hi Dana") and "Maple Street" in opening.text
    # the campaign's opt-out offer, and the caller ID as its number for DNC requests (the
    # campaign and the config have no callback number), as its rendered opening would say
    assert [line.text for line in opening.lines][1:3] == [
        "To stop these calls, say stop or press 9.",
        "To ask us not to call you again, you can also call 3 1 2, 5 5 5, 0 1 0 0."]


async def test_with_a_reps_calendar_the_playbook_books_there(site: Site) -> None:
    """`[integrations.caldav]` configured: the agent books in the rep's calendar, not in the
    campaign's own slots (which stay the scheduler without one, as above)."""
    calendar = CampaignSlots(BookingSettings(timezone="America/Chicago", hours={"mon": "09:00-17:00"}),
                             AppointmentRepository(site.db), uuid.uuid4())
    factory = AgentFactory(records=site.records, effects=Effects(), window=site.windows)
    source = StoreAgentSource(site.db, PlaybookLibrary(site.playbooks), factory, site.windows,
                              agent=AgentSettings(), default_caller_id=None, calendar=calendar)
    agent = await source.agent_for(call("sim-00000000cafe", "sellers"))
    assert agent is not None and agent._booker is not None
    assert agent._booker.scheduler is calendar
    plain = await site.source.agent_for(call("sim-00000000beef", "sellers"))
    assert plain is not None and plain._booker is not None
    assert isinstance(plain._booker.scheduler, CampaignSlots)
    assert plain._booker.scheduler is not calendar


async def test_a_simulated_call_talks_to_a_stand_in(site: Site) -> None:
    agent = await site.source.agent_for(call("sim-0123456789ab", "sellers"))
    assert agent is not None and agent.call.call_id == call_uuid("sim-0123456789ab")
    the_lead = agent.call.lead
    assert (the_lead.phone, the_lead.lead_id, the_lead.campaign_id) == (
        SIMULATED_PHONE, None, site.campaign_id)
    assert the_lead.timezone == "America/Chicago" and the_lead.name == "Sam"  # booking's zone
    # lines about the lead's home name a street (either variant's greeting; before the stand-in
    # had one: "your home on .")
    opening = (await agent.opening()).text
    assert SIMULATED_CUSTOM['street'] in opening and " ." not in opening, opening
    prompt = agent.lines.system_prompt("qualifier", None).content
    assert f"on {SIMULATED_CUSTOM['street']} in {SIMULATED_CITY}." in prompt, prompt


async def test_calls_without_a_usable_playbook_get_none(site: Site,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    assert await site.source.agent_for(call("sim-1", "plain")) is None
    assert await site.source.agent_for(call("sim-2", "nobody")) is None
    assert await site.source.agent_for(call("sim-3", None)) is None
    assert (site.source.has_playbook("plain"), site.source.has_playbook("nobody")) == (False, False)
    with caplog.at_level(logging.ERROR, logger="reautod.dialogue.part"):
        assert await site.source.agent_for(call("sim-4", "broken")) is None
    assert "names playbook broken, which cannot be used" in caplog.text
    await site.source.refresh()
    assert site.source.has_playbook("broken") is True  # it names one; the file is the problem
    assert site.records.records == []  # nothing was started


def test_examples_are_seeded_once(tmp_path: Path) -> None:
    target = tmp_path / "pb"
    seeded = seed_examples(target)
    assert sorted(p.name for p in seeded) == sorted(p.name for p in EXAMPLES.glob("*.yaml"))
    (target / "real-estate-sellers.yaml").unlink()  # the operator removed one: it stays gone
    assert seed_examples(target) == [] and not (target / "real-estate-sellers.yaml").exists()


async def test_the_settled_outcome_reaches_the_call_and_the_lead(site: Site) -> None:
    calls, leads = CallRepository(site.db), LeadRepository(site.db)
    call_id = uuid.uuid4()
    await calls.write([CallStarted(call_id, NOW)])  # a simulated call's row: no campaign
    await calls.set_result(call_id, outcome=CallOutcome.UNKNOWN)  # telephony got there first
    await calls.write([CallOutcomeDecided(
        call_id, CallOutcome.BOOKED, "booked (agent during closer)", NOW,
        lead_status=LeadStatus.BOOKED, lead_id=site.lead_id, campaign_id=site.campaign_id)])
    # the pipeline's end comes after: its reason does not replace the agent's disposition
    await calls.write([CallEnded(call_id, NOW + timedelta(seconds=30), disposition="stop")])
    row = await calls.get(call_id)
    assert (row.outcome, row.disposition, row.campaign_id) == (
        "booked", "booked (agent during closer)", site.campaign_id)
    lead = await leads.get(site.lead_id)
    assert (lead.status, lead.lease_owner) == ("booked", None)
    # an opt-out telephony recorded stays an opt-out
    other = uuid.uuid4()
    await calls.write([CallStarted(other, NOW)])
    await calls.set_result(other, outcome=CallOutcome.OPTED_OUT, replace_outcome=True)
    await calls.write([CallOutcomeDecided(other, CallOutcome.QUALIFIED, "qualified", NOW)])
    assert (await calls.get(other)).outcome == "opted_out"


async def test_agent_events_and_metrics() -> None:
    bus, metrics = EventBus(), Metrics()
    sub = bus.subscribe(["agent"])
    call_id = uuid.uuid4()
    events = AgentEvents(bus, metrics, lambda key: "sim-abc" if key == call_id else str(key))
    events.transition(call_id, None, "greeter", "call started")
    events.scored(call_id, 65, True)
    events.ended(call_id, "booked", True)
    events.ended(uuid.uuid4(), "not_interested", False)
    got = [(e.event, e.data.model_dump(mode="json", by_alias=True))
           for e in [await sub.get() for _ in range(4)]]
    assert got[0] == ("agent.transition", {"call_id": "sim-abc", "from": None, "to": "greeter",
                                           "reason": "call started"})
    assert got[1] == ("agent.score", {"call_id": "sim-abc", "score": 65, "qualified": True})
    assert got[2] == ("agent.outcome", {"call_id": "sim-abc", "outcome": "booked", "booked": True})
    assert got[3][1]["outcome"] == "not_interested"
    assert metrics.qualified_leads_total._value.get() == 1
    assert metrics.appointments_booked_total._value.get() == 1


async def test_a_callback_keeps_to_the_campaigns_hours(site: Site) -> None:
    lead = LeadContext("+12125550100", "America/New_York", campaign_id=site.campaign_id,
                       state="NY")
    noon = datetime(2026, 12, 8, 17, 0, tzinfo=UTC)  # Tuesday, 12:00 in New York
    assert site.windows.earliest(lead, noon) == noon  # federal hours only: fine
    assert await site.source.agent_for(call("sim-5", "sellers")) is not None
    # the campaign calls 09:00-12:00 on weekdays: the next morning
    assert site.windows.earliest(lead, noon) == datetime(2026, 12, 9, 14, 0, tzinfo=UTC)


async def test_the_agent_reads_json_from_the_shared_llm(test_models_dir: Path) -> None:
    assert json_model_of(FakeLLM()) is None  # not llama.cpp: phrases alone
    llm = await asyncio.to_thread(
        LlamaLLM.load, PROFILES["test"]["llm"].path_in(test_models_dir), n_ctx=512,
        n_gpu_layers=0, n_threads=1, queue_size=4, timeout_s=30, max_tokens=8)
    try:
        model = json_model_of(llm)
        assert model is not None
        schema = {"type": "object", "properties": {"is_owner": {"enum": ["yes", "no", "unknown"]}},
                  "required": ["is_owner"], "additionalProperties": False}
        raw = await model.complete_json([ChatMessage("user", "Do you own it? Yes.")], schema,
                                        call_id="c1", max_tokens=16)
        # random weights, but the grammar holds them to the schema's shape (cut at the token
        # cap; the agent's parser drops what does not parse); the JSON side's queue ran it
        assert re.match(r'\{\s*"is_owner"\s*:\s*"', raw), raw
        assert llm.json_scheduler.stats().completed >= 1
    finally:
        await llm.close()


async def test_response_cache_lookups_are_metrics() -> None:
    metrics, cache = Metrics(), ResponseCache()
    metrics.register(ResponseCacheCollector(cache))
    await cache.put("pb", "v1@x", "library:who", CachedLine("Alex here.", b"\x00\x00", 8000))
    assert await cache.get("pb", "v1@x", "library:who") is not None
    assert await cache.get("pb", "v1@x", "library:nope") is None
    assert await cache.get("pb", "v1@x", "library:nope") is None
    value = metrics.registry.get_sample_value
    assert value("reautod_response_cache_lookups_total", {"result": "hit"}) == 1
    assert value("reautod_response_cache_lookups_total", {"result": "miss"}) == 2
    assert value("reautod_response_cache_audio_hits_total") == 1
    assert value("reautod_response_cache_hit_ratio") == 1 / 3


async def test_health_names_a_campaign_whose_playbook_is_missing_or_broken(site: Site,
                                                                           tmp_path: Path) -> None:
    settings = Settings(dialogue={"playbooks_dir": str(site.playbooks)})
    writer = WriteBehind(site.db, tmp_path / "spool", queue_size=8)
    part = DialoguePart(settings, tmp_path, site.db, writer, EventBus(), Metrics())
    await part.start()
    ok, detail = await part.health()
    assert not ok and detail.startswith("campaign broken names playbook broken, which is broken")
    await CampaignRepository(site.db).create("gone", **campaign_columns(  # type: ignore[arg-type]
        playbook="no-such-playbook"))
    ok, detail = await part.health()
    assert "campaign gone names playbook no-such-playbook, which is missing" in detail
    await CampaignRepository(site.db).create("desk", **campaign_columns(  # type: ignore[arg-type]
        inbound_playbook="real-estate-inbound"))
    await CampaignRepository(site.db).create("typo", **campaign_columns(  # type: ignore[arg-type]
        playbook="real-estate-sellers", inbound_playbook="no-such-inbound"))
    ok, detail = await part.health()
    assert "campaign typo names playbook no-such-inbound, which is missing" in detail
    assert "campaign desk" not in detail  # its inbound playbook is there
    (site.playbooks / "broken.yaml").write_text(
        (site.playbooks / "real-estate-sellers.yaml").read_text().replace(
            "playbook: real-estate-sellers", "playbook: broken"))
    (site.playbooks / "no-such-playbook.yaml").write_text(
        (site.playbooks / "solar-homeowners.yaml").read_text().replace(
            "playbook: solar-homeowners", "playbook: no-such-playbook"))
    shipped = len(list(EXAMPLES.glob("*.yaml")))  # the seeded examples, and those written here
    (site.playbooks / "no-such-inbound.yaml").write_text(
        (site.playbooks / "real-estate-inbound.yaml").read_text().replace(
            "playbook: real-estate-inbound", "playbook: no-such-inbound"))
    assert await part.health() == (True, f"{shipped + 3} playbook(s) in {site.playbooks}")
    await part.close()


async def test_a_caller_who_rang_in_gets_the_campaigns_inbound_playbook(site: Site) -> None:
    await CampaignRepository(site.db).create("desk", **campaign_columns(  # type: ignore[arg-type]
        playbook="real-estate-sellers", inbound_playbook="solar-homeowners"))
    inbound = dataclasses.replace(call("sim-in-1", "desk"), direction="inbound")
    answering = await site.source.agent_for(inbound)
    assert answering is not None and answering.loaded.name == "solar-homeowners"
    assert answering.call.direction == "inbound"
    dialed = await site.source.agent_for(call("sim-out-1", "desk"))
    assert dialed is not None and dialed.loaded.name == "real-estate-sellers"
    # without an inbound playbook, a caller who rang in gets the campaign's playbook
    back = await site.source.agent_for(dataclasses.replace(call("sim-in-2", "sellers"),
                                                           direction="inbound"))
    assert back is not None and back.loaded.name == "real-estate-sellers"


async def test_the_approved_lines_of_the_playbooks_in_use_are_synthesized_ahead(
        site: Site, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(dialogue={"playbooks_dir": str(site.playbooks)})
    writer = WriteBehind(site.db, tmp_path / "spool", queue_size=8)
    tts = FakeTTS(fail_with=EngineError("tts failed"), fail_next=1)
    part = DialoguePart(settings, tmp_path, site.db, writer, EventBus(), Metrics(), tts=tts)
    assert part.warmer is not None
    await part.start()  # the first try fails on the voice: nothing is cached, it is logged
    await part.warmer.idle()
    assert "approved lines not synthesized ahead (tts failed)" in caplog.text
    sellers = example("real-estate-sellers")
    lines = approved_lines(sellers.playbook)
    assert await part.cache.get(sellers.name, sellers.version, "library:how-got-number") is None
    tried = len(tts.texts)
    part.warmer.want(sellers)  # not again so soon
    await part.warmer.idle()
    assert len(tts.texts) == tried
    await part.close()
    # A new daemon: the campaigns' playbooks (the sellers' only; the inbound example no
    # campaign names is left) in the voice, behind any caller
    part = DialoguePart(settings, tmp_path, site.db, writer, EventBus(), Metrics(), tts=tts)
    assert part.warmer is not None
    await part.start()
    await part.warmer.idle()
    for key, text in lines.items():
        cached = await part.cache.get(sellers.name, sellers.version, key)
        assert cached is not None and cached.text == text and cached.audio == tts.pcm(text), key
        assert cached.sample_rate == tts.sample_rate
    warmed = tts.texts[tried:]
    assert sorted(warmed) == sorted((WARM_CALL_ID, text) for text in lines.values())
    assert all(tts.ahead)
    # (a call's approved answer then carries that audio: test_personas) A call starting on the
    # same version, or a health check, synthesizes nothing again.
    assert await part.source.agent_for(call("sim-warm", "sellers")) is not None
    assert (await part.health())[0] is False  # the broken campaign; the warm ones stay warm
    await part.warmer.idle()
    assert len(tts.texts) == tried + len(warmed)
    await part.close()

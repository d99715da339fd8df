"""The dialogue as a part of the daemon: playbooks on disk, each call's agent, what it decides.

`DialoguePart` is what the daemon builds (after the store, before the call manager): it seeds
the playbooks directory with the worked examples on first start, builds the `AgentFactory` over
the daemon's shared parts (records through the write-behind queue, the store's effects, the
calling rules and the campaign's hours for callbacks, the response cache, the event bus and
metrics, the shared LLM's constrained JSON on the LLM engine's own queue), gives the call
manager its `Conversations` and the control socket the `playbook.*` methods.

Which agent a call gets: its campaign's `playbook` setting (`reautoctl campaign create NAME --set
playbook=NAME`), or for a caller who rang in, its `inbound_playbook` if it names one. A campaign
without one, a call without a campaign (a plain simulated call), an unknown campaign or a
playbook file that is missing or broken (logged as an error) keep today's one-prompt agent. A
call the dialer placed is found by its call row (lead, contact); a simulated call has no lead:
the agent talks to a stand-in with the playbook's booking time zone and a sample address. The
agent's opening offers the campaign's opt-out and gives its number for DNC requests, chosen as
for the dialer's rendered opening (`CampaignSettings.opening_fields`).

Approved lines are synthesized ahead of their calls (`ApprovedLinesWarmer`): the library answers
and compliance lines of every playbook a campaign names go into the response cache with their
audio, in the local voice (only while no premium voice is configured: the daemon passes no
`tts` then, so no call hears a line in another voice than its own), when the daemon starts, when a health check finds a campaign's
playbook new or edited, and when a call starts on a version not warmed yet; the TTS engine takes
those requests only while no caller waits (`ahead_of_need`). A call's approved answer then plays
without waiting for TTS, the first call's too.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from reautod.campaigns.settings import CampaignSettings, settings_of
from reautod.campaigns.windows import CallingWindows, CampaignWindow
from reautod.config import AgentSettings, Settings
from reautod.conversation import CallContext, Conversations
from reautod.dialogue.agent import AgentFactory, CallAgent
from reautod.dialogue.cache import ResponseCache, Synthesize
from reautod.dialogue.control import dialogue_methods
from reautod.dialogue.effects import CallingWindowPolicy, StoreCallEffects
from reautod.dialogue.library import PlaybookFile, PlaybookLibrary
from reautod.dialogue.lines import approved_lines
from reautod.dialogue.llm_extract import JsonModel, JsonUsage, LlamaJsonModel
from reautod.dialogue.playbook_file import LoadedPlaybook, PlaybookError
from reautod.dialogue.ports import AgentCall, LeadContext
from reautod.dialogue.replies import CallResult
from reautod.dialogue.results import AgentScoreEvent
from reautod.dialogue.scheduling import Scheduler
from reautod.dialogue.seam import PlaybookConversations
from reautod.dialogue.slots import CampaignSlots
from reautod.dialogue.vocabulary import Outcome
from reautod.engines.base import ChatMessage, TextToSpeech
from reautod.engines.llm import LlamaLLM
from reautod.engines.pool import LlmPool
from reautod.engines.scheduler import ahead_of_need
from reautod.engines.switch import ModelSwitch
from reautod.errors import EngineError, NotFoundError, UnavailableError
from reautod.methods import Method
from reautod.observability.events import EventBus
from reautod.observability.metrics import Metrics
from reautod.pipeline.opening import OpeningFields
from reautod.resilience.service import Resilience
from reautod.store.call_observer import call_uuid
from reautod.store.database import Database
from reautod.store.enums import CallOutcome, LeadStatus
from reautod.store.records import CallOutcomeDecided
from reautod.store.repositories import (
    AppointmentRepository,
    CallRepository,
    CampaignRepository,
    CampaignRow,
    ContactInput,
    ContactRepository,
    LeadRepository,
)
from reautod.store.writebehind import WriteBehind
from reautod.topics import AgentOutcome, AgentTransition

log = logging.getLogger(__name__)

EXAMPLES = Path(__file__).resolve().parent / "examples"
SIMULATED_PHONE = "+15555550100"  # the stand-in lead of a simulated call (a fictional number)
# The stand-in's address, so lines about the lead's home read as they do on a real call
# (the worked examples' `street` column and {lead.city}), never "your home on ."
SIMULATED_CITY = "Springfield"
SIMULATED_CUSTOM = {"street": "41 Maple Street"}
DEFAULT_TIMEZONE = "America/New_York"  # a lead with no time zone, a playbook without booking
# The lead's status once the call settled an outcome; others (callback: the agent set the
# retry time already; voicemail, failed, wrong person) are left to the dialer's retry policy.
LEAD_STATUS = {
    Outcome.BOOKED: LeadStatus.BOOKED,
    Outcome.QUALIFIED: LeadStatus.QUALIFIED,
    Outcome.NOT_QUALIFIED: LeadStatus.NOT_QUALIFIED,
    Outcome.NOT_INTERESTED: LeadStatus.NOT_INTERESTED,
    Outcome.OPTED_OUT: LeadStatus.DNC,
}


def _now() -> datetime:
    return datetime.now(UTC)


def seed_examples(directory: Path) -> list[Path]:
    """Create `directory` with the worked example playbooks if it does not exist (blocking)."""
    if directory.exists():
        return []
    directory.mkdir(parents=True, mode=0o750)
    seeded = []
    for example in sorted(EXAMPLES.glob("*.yaml")):
        seeded.append(Path(shutil.copy(example, directory / example.name)))
    return seeded


class NamedJsonModel:
    """`JsonModel` on a named in-process model of the switch (`llm_models.extraction`): loaded
    on first use like its replies, and not unloaded while it answers."""

    def __init__(self, models: ModelSwitch, name: str, on_usage: JsonUsage | None) -> None:
        self.models = models
        self.name = name
        self.on_usage = on_usage

    async def complete_json(self, messages: list[ChatMessage], schema: dict[str, Any], *,
                            call_id: str, max_tokens: int) -> str:
        async with self.models.holding(self.name) as model:
            json_model = json_model_of(model, self.on_usage)
            if json_model is None:
                raise UnavailableError(f"language model {self.name!r} writes no constrained JSON")
            return await json_model.complete_json(messages, schema, call_id=call_id,
                                                  max_tokens=max_tokens)


def extraction_model(models: ModelSwitch, name: str | None,
                     on_usage: JsonUsage | None = None) -> JsonModel | None:
    """The constrained-JSON model that reads facts: model `name` of the switch (a pool
    endpoint's, or an in-process one), None: the reply model's JSON side."""
    if name is None:
        return json_model_of(models.default, on_usage)
    if models.pool is not None and models.served_by_pool(name):
        return models.pool.json_model(on_usage, model=name)
    return NamedJsonModel(models, name, on_usage)


def json_model_of(llm: object, on_usage: JsonUsage | None = None) -> JsonModel | None:
    """The shared LLM's constrained-JSON side (llama.cpp grammars), on the model's own context
    and scheduler, one request at a time; None for any other engine (missing models).
    `on_usage` hears each completion's tokens and compute (the cost part's meter)."""
    if isinstance(llm, LlamaLLM) and llm.model is not None:
        return LlamaJsonModel(llm.model, llm.json_scheduler, timeout_s=llm.timeout_s,
                              on_usage=on_usage)
    if isinstance(llm, LlmPool):  # the servers' grammars (response_format with the schema)
        return llm.json_model(on_usage)
    return None


WARM_CALL_ID = "approved-lines"  # what the TTS engine's queue sees the warming requests as
WARM_RETRY_S = 300.0  # a version whose warming failed (Redis, the voice) is tried again after


def tts_synthesizer(tts: TextToSpeech) -> Synthesize:
    """The TTS engine's voice as the response cache's `Synthesize` (PCM16 mono at its rate)."""

    async def synthesize(text: str) -> tuple[bytes, int]:
        chunks = [c async for c in tts.synthesize(text, call_id=WARM_CALL_ID)]
        if not chunks:
            raise EngineError(f"the voice made no audio for {text!r}")
        return b"".join(c.pcm for c in chunks), chunks[0].sample_rate

    return synthesize


class ApprovedLinesWarmer:
    """Synthesizes the approved lines of a playbook version into the response cache, once,
    in a task of its own and behind any caller (see the module docstring); the version warmed
    last is the playbook's only cached one (`ResponseCache.activate`)."""

    def __init__(self, cache: ResponseCache, synthesize: Synthesize,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._cache = cache
        self._synthesize = synthesize
        self._clock = clock
        self._done: set[tuple[str, str]] = set()
        self._failed: dict[tuple[str, str], float] = {}  # -> when it may be tried again
        self._pending: dict[tuple[str, str], LoadedPlaybook] = {}
        self._task: asyncio.Task[None] | None = None

    def want(self, loaded: LoadedPlaybook) -> None:
        """Warm `loaded` unless it is warm, being warmed, or failed a moment ago."""
        key = (loaded.name, loaded.version)
        if key in self._done or key in self._pending or self._clock() < self._failed.get(key, 0):
            return
        self._pending[key] = loaded
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="warm-approved-lines")

    async def idle(self) -> None:
        """Wait until every version asked for is warmed (or failed)."""
        while self._task is not None and not self._task.done():
            await asyncio.wait({self._task})

    async def _run(self) -> None:
        while self._pending:
            key, loaded = next(iter(self._pending.items()))
            try:
                with ahead_of_need():
                    written = await self._cache.warm(loaded.name, loaded.version,
                                                     approved_lines(loaded.playbook),
                                                     self._synthesize)
                await self._cache.activate(loaded.name, loaded.version)
            except Exception as err:  # Redis or the voice: its calls synthesize as they go
                log.warning("playbook %s %s: approved lines not synthesized ahead (%s); trying "
                            "again in %.0f s", loaded.name, loaded.version, err, WARM_RETRY_S)
                self._failed[key] = self._clock() + WARM_RETRY_S
            else:
                self._done.add(key)
                log.info("playbook %s %s: %d approved line(s) synthesized ahead", loaded.name,
                         loaded.version, written)
            finally:
                del self._pending[key]

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class ResponseCacheCollector:
    """The response cache's lookups as metrics: hits and misses of approved lines, hits that
    came with audio, and the hit rate."""

    def __init__(self, cache: ResponseCache) -> None:
        self._cache = cache

    def describe(self) -> Iterator[Metric]:
        yield from self._families(0, 0, 0)

    def collect(self) -> Iterator[Metric]:
        stats = self._cache.stats()
        yield from self._families(stats.hits, stats.misses, stats.audio_hits)

    def _families(self, hits: int, misses: int, audio_hits: int) -> Iterator[Metric]:
        lookups = CounterMetricFamily("reautod_response_cache_lookups",
                                      "Approved-line lookups in the response cache",
                                      labels=["result"])
        lookups.add_metric(["hit"], hits)
        lookups.add_metric(["miss"], misses)
        audio = CounterMetricFamily("reautod_response_cache_audio_hits",
                                    "Response cache hits that came with the line's audio")
        audio.add_metric([], audio_hits)
        rate = GaugeMetricFamily("reautod_response_cache_hit_ratio",
                                 "Hits over lookups of the response cache since start")
        rate.add_metric([], hits / (hits + misses) if hits + misses else 0.0)
        yield from (lookups, audio, rate)


class AgentEvents:
    """`AgentObserver` on the event bus and metrics: `agent.transition`, `agent.score`,
    `agent.outcome`; qualified leads and booked appointments counted once per call."""

    def __init__(self, bus: EventBus, metrics: Metrics,
                 call_ids: Callable[[uuid.UUID], str]) -> None:
        self._bus = bus
        self._metrics = metrics
        self._call_ids = call_ids

    def transition(self, call_id: uuid.UUID, from_stage: str | None, to_stage: str,
                   reason: str) -> None:
        self._bus.publish("agent.transition", AgentTransition(
            call_id=self._call_ids(call_id), from_stage=from_stage, to=to_stage, reason=reason))

    def scored(self, call_id: uuid.UUID, score: int, qualified: bool) -> None:
        event = AgentScoreEvent(call_id=self._call_ids(call_id), score=score, qualified=qualified)
        self._bus.publish(event.TOPIC, event)

    def ended(self, call_id: uuid.UUID, outcome: str, booked: bool) -> None:
        if outcome in (Outcome.QUALIFIED, Outcome.BOOKED):
            self._metrics.qualified_leads_total.inc()
        if booked:
            self._metrics.appointments_booked_total.inc()
        self._bus.publish("agent.outcome", AgentOutcome(call_id=self._call_ids(call_id),
                                                        outcome=outcome, booked=booked))


class CampaignCallbackWindow:
    """`CallbackWindow`: the calling rules plus the hours of the lead's own campaign (as last
    read when one of its calls connected)."""

    def __init__(self, windows: CallingWindows) -> None:
        self._windows = windows
        self.campaigns: dict[uuid.UUID, CampaignWindow] = {}

    def earliest(self, lead: LeadContext, at: datetime) -> datetime | None:
        window = self.campaigns.get(lead.campaign_id) if lead.campaign_id else None
        return CallingWindowPolicy(self._windows, window).earliest(lead, at)


class StoreAgentSource:
    """`AgentSource` over the store and the playbook library (see the module docstring)."""

    def __init__(self, db: Database, library: PlaybookLibrary, factory: AgentFactory,
                 windows: CampaignCallbackWindow | None = None, *, agent: AgentSettings,
                 default_caller_id: str | None, calendar: Scheduler | None = None,
                 warmer: ApprovedLinesWarmer | None = None) -> None:
        """`agent`, `default_caller_id`: what a campaign's opening falls back to (config
        `agent`, `twilio.from_number`), as the dialer renders it. `calendar`: the rep's
        calendar (CalDAV, `[integrations.caldav]`), where a playbook with booking books
        instead of its campaign's own slots. `warmer`: told of each playbook a call starts."""
        self._calendar = calendar
        self._warmer = warmer
        self._agent = agent
        self._default_caller_id = default_caller_id
        self._calls = CallRepository(db)
        self._campaigns = CampaignRepository(db)
        self._leads = LeadRepository(db)
        self._contacts = ContactRepository(db)
        self._appointments = AppointmentRepository(db)
        self._library = library
        self._factory = factory
        self._windows = windows
        self._known: dict[str, str | None] = {}  # campaign name -> its playbook, as last read
        self._inbound: dict[str, str] = {}  # campaign name -> its inbound_playbook, when set
        self._invalid: set[str] = set()  # campaigns whose stored settings did not validate
        self.pipeline_ids: dict[uuid.UUID, str] = {}  # the agent's call ids -> the pipeline's

    def has_playbook(self, campaign: str | None) -> bool | None:
        if campaign is None or campaign not in self._known:
            return None
        return self._known[campaign] is not None

    def playbooks_in_use(self) -> list[tuple[str, str]]:
        """(campaign name, a playbook it names: `playbook` or `inbound_playbook`), as last read."""
        named = [(c, p) for c, p in self._known.items() if p is not None]
        return sorted({*named, *self._inbound.items()})

    def pipeline_id(self, call_id: uuid.UUID) -> str:
        return self.pipeline_ids.get(call_id, str(call_id))

    async def refresh(self) -> None:
        """Read every campaign's playbook (what `has_playbook` answers before a call)."""
        for row in await self._campaigns.list():
            self._remember(row)

    def _remember(self, row: CampaignRow) -> CampaignSettings | None:
        try:
            settings = settings_of(row)
        except ValueError as err:
            if row.name not in self._invalid:  # once: health checks read every campaign often
                log.error("campaign %s has invalid settings: %s", row.name, err)
                self._invalid.add(row.name)
            self._known[row.name] = None
            self._inbound.pop(row.name, None)
            return None
        self._known[row.name] = settings.playbook
        if settings.inbound_playbook is not None:
            self._inbound[row.name] = settings.inbound_playbook
        else:
            self._inbound.pop(row.name, None)
        if self._windows is not None:
            self._windows.campaigns[row.id] = settings.window()
        return settings

    async def agent_for(self, call: CallContext) -> CallAgent | None:
        key = call_uuid(call.call_id)
        try:
            row = await self._calls.get(key)
        except NotFoundError:
            row = None  # a simulated call (its row is being written) or one not placed by us
        campaign = await self._campaign(row.campaign_id if row else None, call.campaign)
        if campaign is None:
            return None
        settings = self._remember(campaign)
        name = settings.playbook_for(call.direction) if settings is not None else None
        if settings is None or name is None:
            return None
        try:
            loaded = await asyncio.to_thread(self._library.get, name)
        except (NotFoundError, PlaybookError) as err:
            log.error("call %s: campaign %s names playbook %s, which cannot be used (%s); "
                      "the configured prompt answers", call.call_id, campaign.name,
                      name, err.message)
            return None
        if self._warmer is not None:
            self._warmer.want(loaded)
        lead = await self._lead(row.lead_id if row else None, campaign, loaded, call)
        booking = loaded.playbook.booking
        scheduler: Scheduler | None = None
        if booking is not None:
            scheduler = (self._calendar if self._calendar is not None
                         else CampaignSlots(booking, self._appointments, campaign.id))
        self.pipeline_ids[key] = call.call_id
        agent = self._factory.start(
            AgentCall(key, lead, call.direction, settings.transfer_number,
                      settings.opening_fields(self._agent, self._default_caller_id)),
            loaded, scheduler=scheduler)
        log.info("call %s: playbook %s %s, variant %s", call.call_id, loaded.name,
                 loaded.version, agent.variant.name)
        return agent

    def forget(self, call_id: uuid.UUID) -> None:
        self.pipeline_ids.pop(call_id, None)

    async def _campaign(self, campaign_id: uuid.UUID | None, name: str | None) -> CampaignRow | None:
        try:
            if campaign_id is not None:
                return await self._campaigns.get(campaign_id)
            if name:
                return await self._campaigns.find(name)
        except NotFoundError:
            if name:
                self._known[name] = None
                self._inbound.pop(name, None)
        return None

    async def _lead(self, lead_id: uuid.UUID | None, campaign: CampaignRow,
                    loaded: LoadedPlaybook, call: CallContext) -> LeadContext:
        booking = loaded.playbook.booking
        zone = booking.timezone if booking is not None else DEFAULT_TIMEZONE
        if lead_id is None:
            # The stand-in is a contact, so an appointment it books has someone to belong to.
            stand_in = await self._contacts.upsert(ContactInput(
                phone_e164=SIMULATED_PHONE, name=call.lead_name or None, timezone=zone,
                source="simulated call", custom={**SIMULATED_CUSTOM, "city": SIMULATED_CITY},
            )) if booking is not None else None
            return LeadContext(phone=SIMULATED_PHONE, timezone=zone, campaign_id=campaign.id,
                               name=call.lead_name or None, city=SIMULATED_CITY,
                               custom=dict(SIMULATED_CUSTOM),
                               contact_id=stand_in.id if stand_in else None)
        lead = await self._leads.get(lead_id)
        contact = await self._contacts.get(lead.contact_id)
        custom = contact.custom if isinstance(contact.custom, dict) else {}

        def text(key: str) -> str | None:
            value = custom.get(key)
            return str(value) if value not in (None, "") else None

        return LeadContext(phone=contact.phone_e164, timezone=contact.timezone or zone,
                           lead_id=lead.id, contact_id=contact.id, campaign_id=campaign.id,
                           name=contact.name, email=contact.email, city=text("city"),
                           source=contact.source, state=text("state"), custom=custom)


class DialoguePart:
    """The qualifying agent in the daemon: `start()`, `conversations()`, `control_methods()`,
    `close()`."""

    def __init__(self, settings: Settings, state_dir: Path, db: Database, writer: WriteBehind,
                 bus: EventBus, metrics: Metrics, models: ModelSwitch | None = None,
                 calendar: Scheduler | None = None, llm_usage: JsonUsage | None = None,
                 model_down: Callable[[], bool] = lambda: False,
                 resilience: Resilience | None = None, tts: TextToSpeech | None = None) -> None:
        """`models`: the reply model and the named ones; facts are read as constrained JSON by
        `llm_models.extraction` (None: by phrases alone). `model_down`: whether calls take the
        playbook's scripted path now (the llm circuit is open, reautod.resilience.llm).
        `resilience`: the response cache reaches Redis through its circuit. `tts`: the voice
        that synthesizes approved lines ahead (None: each call's TTS says them)."""
        self.directory = settings.dialogue.playbooks_dir or state_dir / "playbooks"
        self.library = PlaybookLibrary(self.directory, settings.llm_model_names())
        self.cache = ResponseCache(settings.redis_url, resilience=resilience)
        metrics.register(ResponseCacheCollector(self.cache))
        self.warmer = (ApprovedLinesWarmer(self.cache, tts_synthesizer(tts))
                       if tts is not None else None)
        self._db = db
        self._writer = writer
        windows = CampaignCallbackWindow(CallingWindows())
        self.factory = AgentFactory(
            records=writer, effects=StoreCallEffects(db), window=windows,
            observer=AgentEvents(bus, metrics, self._pipeline_id), cache=self.cache,
            json_model=(extraction_model(models, settings.llm_models.extraction, llm_usage)
                        if models is not None else None),
            opening=OpeningFields.from_agent(settings.agent),
            model_down=model_down)
        self.source = StoreAgentSource(db, self.library, self.factory, windows,
                                       agent=settings.agent,
                                       default_caller_id=settings.twilio.from_number,
                                       calendar=calendar, warmer=self.warmer)

    def _pipeline_id(self, call_id: uuid.UUID) -> str:
        return self.source.pipeline_id(call_id)

    async def start(self) -> None:
        seeded = await asyncio.to_thread(seed_examples, self.directory)
        if seeded:
            log.info("playbooks: %s seeded with %d example(s)", self.directory, len(seeded))
        await self.source.refresh()
        self._warm(await asyncio.to_thread(self.library.entries))

    def conversations(self, fallback: Conversations) -> PlaybookConversations:
        """Each call's conversation: its campaign's playbook agent, else `fallback`'s."""
        return PlaybookConversations(self.source, fallback, self._settled)

    async def health(self) -> tuple[bool, str]:
        """Failing while a campaign names a playbook that is missing or broken (its calls fall
        back to the configured prompt)."""
        await self.source.refresh()
        entries = await asyncio.to_thread(self.library.entries)
        self._warm(entries)
        valid = {e.loaded.name for e in entries if e.loaded is not None}
        broken = [f"campaign {campaign} names playbook {name}, which is "
                  + ("broken" if any(e.file.stem == name for e in entries) else "missing")
                  for campaign, name in self.source.playbooks_in_use()
                  if name not in valid]
        if broken:
            return False, "; ".join(broken) + f" (in {self.directory})"
        return True, f"{len(valid)} playbook(s) in {self.directory}"

    def _warm(self, entries: list[PlaybookFile]) -> None:
        """Have the approved lines of every valid playbook a campaign names synthesized."""
        if self.warmer is None:
            return
        in_use = {name for _campaign, name in self.source.playbooks_in_use()}
        for entry in entries:
            if entry.loaded is not None and entry.loaded.name in in_use:
                self.warmer.want(entry.loaded)

    def control_methods(self) -> list[Method]:
        return dialogue_methods(self.library, self._db)

    async def close(self) -> None:
        if self.warmer is not None:
            await self.warmer.close()
        await self.cache.close()

    async def _settled(self, call: CallContext, agent: CallAgent, result: CallResult) -> None:
        """The call's outcome to its row, the lead's final status to the lead."""
        lead = agent.call.lead
        status = LEAD_STATUS.get(result.outcome) if lead.lead_id is not None else None
        record = CallOutcomeDecided(agent.call.call_id, CallOutcome(result.outcome.value),
                                    result.disposition, _now(), lead_status=status,
                                    lead_id=lead.lead_id, campaign_id=lead.campaign_id)
        if not self._writer.submit(record):
            log.error("call %s: the store refused its outcome", call.call_id)
        log.info("call %s: %s (score %s, stage %s)", call.call_id, result.outcome.value,
                 result.score, result.stage)
        self.source.forget(agent.call.call_id)

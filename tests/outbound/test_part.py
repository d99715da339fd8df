"""The outbound part on a real database (SQLite and Postgres) against the local Twilio stand-in:
the store-backed DNC storage, lead directory and dial log, the placer, the webhook handler's
status timeline, AMD policy, opt-out and inbound calls, and the control methods."""

from __future__ import annotations

import argparse
import asyncio
import io
import random
import uuid
import wave
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel, SecretStr

from reautod.call_events import CallInfo, CallState, CallStateEvent, ObserverFanOut, TurnRecord
from reautod.campaigns.dialer import BlockedDial, BlockReason
from reautod.campaigns.dnc import DncChannel, DncEntry, DncScope
from reautod.campaigns.intake import ImportResult
from reautod.campaigns.lead_queue import LeadClaim
from reautod.campaigns.pacing import TokenBucket
from reautod.campaigns.results import (
    CallDetail,
    CallHistory,
    CampaignInfo,
    CampaignList,
    CampaignStatusResult,
    CampaignTransition,
    DncAddResult,
    DncCheckResult,
)
from reautod.campaigns.store_adapters import StoreDialLog, StoreDncStorage, StoreLeadDirectory
from reautod.config import DatabaseSettings, Secrets, Settings
from reautod.engines.base import TextToSpeech
from reautod.errors import (
    NotFoundError,
    OverloadedError,
    ReautodError,
    UnavailableError,
    ValidationError,
)
from reautod.live_settings import LiveSettings
from reautod.methods import Method
from reautod.observability.events import EventBus
from reautod.observability.metrics import Metrics
from reautod.outbound.calls import LiveLine
from reautod.outbound.params import CallRef, CampaignRef, CreateParams, DialParams, ImportParams
from reautod.outbound.part import OutboundPart
from reautod.outbound.placing import RecordWriter
from reautod.outbound.tracker import CallTracker
from reautod.outbound.twilio_side import TwilioSide
from reautod.resilience.inbound import InboundShedding
from reautod.resilience.shedding import LoadGovernor
from reautod.store.database import Database
from reautod.store.enums import CallOutcome, CampaignStatus, LeadStatus
from reautod.store.records import Record
from reautod.store.repositories import (
    CallRepository,
    CallRow,
    CampaignRepository,
    ContactInput,
    ContactRepository,
    DialBlockRepository,
    LeadRepository,
)
from reautod.store.writebehind import WriteBehind
from reautod.telephony.state_machine import Applied, CallTimeline, parse_status
from reautod.telephony.twilio_client import TwilioCalls
from reautod.telephony.webhooks import AmdCallback, StatusCallback, VoiceRequest
from tests.pipeline.conftest import RecordingObserver
from tests.pipeline.fakes import FakeTTS
from tests.telephony.twilio_standin import TwilioStandIn

ACCOUNT = "AC" + "1" * 32
TOKEN = "test-auth-token"
FROM = "+15005550006"
PUBLIC = "https://reautod.example.com"
# Tuesday 2026-11-24 16:00 UTC: 11:00 in New York, 01:00 (Wednesday) in Tokyo.
NOW = datetime(2026, 11, 24, 16, 0, tzinfo=UTC)
DB_SETTINGS = DatabaseSettings(pool_size=4, max_overflow=2, pool_timeout_s=5.0,
                               connect_timeout_s=5.0, retry_attempts=1)
CSV = (
    "name,phone,timezone,plan\n"
    "Ann Inwindow,+12125550100,America/New_York,gold\n"
    "Bob Asleep,+12125550101,Asia/Tokyo,\n"
    "Bad Phone,12345,,\n"
    "Ann Again,+12125550100,America/New_York,\n"
)


@dataclass
class Clock:
    now: datetime = NOW
    tick: float = 0.0

    def __call__(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        self.tick += 10.0  # the calls-per-second bucket is always full between ticks
        return self.tick


@dataclass
class FakeSession:
    ended: list[str] = field(default_factory=list)

    def end(self, reason: str, close_code: int = 1000) -> None:
        self.ended.append(reason)


@dataclass
class FakeCalls:
    """The call manager as telephony sees it: admission, live sessions, prepared greetings."""

    sessions: dict[str, FakeSession] = field(default_factory=dict)
    refuse: ReautodError | None = None
    greetings: dict[str, tuple[str, str | None, float]] = field(default_factory=dict)
    greeting_campaigns: dict[str, str | None] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)  # held greetings dropped

    def check_admission(self) -> None:
        if self.refuse is not None:
            raise self.refuse

    def session(self, call_id: str) -> FakeSession | None:
        return self.sessions.get(call_id)

    def prepare_greeting(self, call_id: str, *, lead_name: str, opening: str | None,
                         expires_in_s: float, campaign: str | None = None) -> None:
        self.greetings[call_id] = (lead_name, opening, expires_in_s)
        self.greeting_campaigns[call_id] = campaign

    def drop_greeting(self, call_id: str) -> None:
        if self.greetings.pop(call_id, None) is not None:
            self.dropped.append(call_id)


def make_part(db: Database, settings: Settings, secrets: Secrets, *,
              clock: Clock | None = None, line: LiveLine | None = None,
              twilio: TwilioCalls | None = None, tts: TextToSpeech | None = None,
              erased: Any = None, metrics: Metrics | None = None,
              writer: RecordWriter) -> OutboundPart:
    """The part as the daemon builds it: Twilio's side first, then the part over `line`."""
    metrics = metrics or Metrics()
    bus = EventBus()
    clock = clock or Clock()
    side = TwilioSide(settings, secrets, db, metrics, bus, clock=clock, twilio=twilio)
    return OutboundPart(LiveSettings(settings), db, side, writer, metrics, bus, line=line,
                        tts=tts, clock=clock, monotonic=clock.monotonic, erased=erased)


@dataclass
class Env:
    db: Database
    part: OutboundPart
    standin: TwilioStandIn
    clock: Clock
    manager: FakeCalls
    metrics: Metrics
    writer: WriteBehind  # every call row goes through it: flushed before the test reads rows
    tts: FakeTTS = field(default_factory=FakeTTS)

    @property
    def tracker(self) -> CallTracker:
        assert self.part.tracker is not None
        return self.part.tracker

    def method(self, name: str) -> Method:
        return next(m for m in self.part.control_methods() if m.name == name)

    async def call(self, method_name: str, /, **params: Any) -> Any:
        method = self.method(method_name)
        result = await method.handler(method.params.model_validate(params))
        await self.writer.flush(5.0)
        # as the control socket writes it (reautod.control.protocol)
        return result.model_dump(mode="json") if isinstance(result, BaseModel) else result


def twilio_settings(standin: TwilioStandIn) -> Settings:
    return Settings(twilio={"account_sid": ACCOUNT, "from_number": FROM,
                            "api_base_url": standin.base_url},
                    http={"public_base_url": PUBLIC}, calls={"max_concurrent": 4})


@pytest.fixture
def standin() -> Iterator[TwilioStandIn]:
    with TwilioStandIn(ACCOUNT, TOKEN) as server:
        yield server


@pytest.fixture(params=["sqlite", "postgres"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    url = (f"sqlite+aiosqlite:///{tmp_path / 'reautod.db'}" if request.param == "sqlite"
           else str(request.getfixturevalue("fresh_database_url")))
    database = Database(url, DB_SETTINGS)
    await database.open()
    await database.upgrade("head")
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
async def writer(db: Database, tmp_path: Path) -> AsyncIterator[WriteBehind]:
    queue = WriteBehind(db, tmp_path / "spool", queue_size=1000)
    await queue.start()
    try:
        yield queue
    finally:
        await queue.stop()


@pytest.fixture
async def env(db: Database, standin: TwilioStandIn, writer: WriteBehind) -> AsyncIterator[Env]:
    clock = Clock()
    metrics = Metrics()
    manager = FakeCalls()
    tts = FakeTTS()  # the call manager's TTS speaks voicemails, as in the daemon
    part = make_part(db, twilio_settings(standin), Secrets({"twilio_auth_token": SecretStr(TOKEN)}),
                     clock=clock, line=manager, tts=tts, metrics=metrics, writer=writer)
    try:
        yield Env(db, part, standin, clock, manager, metrics, writer, tts)
    finally:
        await part.close()


def creates(standin: TwilioStandIn) -> list[dict[str, list[str]]]:
    return [r.form for r in standin.requests_to("/Calls.json")]


def updates(standin: TwilioStandIn, sid: str) -> list[dict[str, list[str]]]:
    return [r.form for r in standin.requests_to(f"/Calls/{sid}.json")]


def status(sid: str, value: str, seq: int) -> StatusCallback:
    return StatusCallback.model_validate({"CallSid": sid, "CallStatus": value,
                                          "SequenceNumber": str(seq)})


async def campaign_with_leads(env: Env, **settings: Any) -> str:
    await env.call("campaign.create", name="fall", **settings)
    report = await env.call("campaign.import", campaign="fall", csv_text=CSV)
    assert report["summary"]["imported"] == 2
    await env.call("campaign.start", campaign="fall")
    return "fall"


async def dial_round(env: Env) -> int:
    """Ticks enough for every due lead to be claimed (one call per tick at 1 call/s)."""
    placed = sum([await env.part.timers.tick() for _ in range(3)])
    await env.writer.flush(5.0)
    return placed


async def dialed(env: Env) -> tuple[str, CallRow]:
    """One dialing round; the CallSid of the (first) call it placed and that call's row."""
    await dial_round(env)
    sid = next(iter(env.standin.calls))
    row = await CallRepository(env.db).by_sid(sid)
    assert row is not None
    return sid, row


# -- the Protocol implementations -----------------------------------------------------------------


async def test_dnc_storage_global_and_per_campaign(db: Database) -> None:
    storage = StoreDncStorage(db)
    one = await CampaignRepository(db).create("one")
    two = await CampaignRepository(db).create("two")
    phone = "+12125550100"
    entry = DncEntry(phone, DncScope.CAMPAIGN, str(one.id), DncChannel.OPERATOR, "asked", NOW)
    assert await storage.add(entry) is True
    assert await storage.add(entry) is False  # idempotent
    found = await storage.find(phone, str(one.id))
    assert found is not None and found.scope is DncScope.CAMPAIGN
    assert found.source is DncChannel.OPERATOR and found.campaign_id == str(one.id)
    assert await storage.find(phone, str(two.id)) is None  # another campaign may call
    assert await storage.find(phone, None) is None
    spoken = DncEntry(phone, DncScope.GLOBAL, None, DncChannel.KEYPRESS, "pressed 9", NOW)
    assert await storage.add(spoken) is True
    for campaign in (str(one.id), str(two.id), None, "manual"):
        hit = await storage.find(phone, campaign)
        assert hit is not None and hit.scope is DncScope.GLOBAL
        assert hit.source is DncChannel.KEYPRESS  # the channel survives the coarse source


async def test_lead_directory_reads_contact_and_attempts(db: Database) -> None:
    campaign = await CampaignRepository(db).create("dir")
    contact = await ContactRepository(db).upsert(ContactInput(
        "+12125550100", name="Ann", timezone="America/New_York", custom={"state": "NY"}))
    lead = await LeadRepository(db).add(campaign.id, contact.id)
    directory = StoreLeadDirectory(db)
    claim = LeadClaim(lead.id, campaign.id, contact.id, 0, NOW)
    target = await directory.target(claim)
    assert target is not None
    assert (target.phone, target.timezone, target.state, target.name) == \
        ("+12125550100", "America/New_York", "NY", "Ann")
    gone = LeadClaim(lead.id, campaign.id, uuid.uuid4(), 0, NOW)
    assert await directory.target(gone) is None
    assert await directory.attempt_times(lead.id, NOW - timedelta(days=1)) == []


async def test_dial_log_stores_the_rule_and_counts(db: Database) -> None:
    campaign = await CampaignRepository(db).create("log")
    contact = await ContactRepository(db).upsert(ContactInput("+12125550100"))
    lead = await LeadRepository(db).add(campaign.id, contact.id)
    counted: list[BlockedDial] = []
    log = StoreDialLog(db, counted.append, clock=lambda: NOW)
    entry = BlockedDial(lead.id, campaign.id, BlockReason.WINDOW, "federal_hours",
                        "federal calling hours 08:00-21:00", "47 CFR 64.1200(c)(1)",
                        NOW + timedelta(hours=7))
    await log.blocked(entry)
    rows = await DialBlockRepository(db).recent(campaign_id=campaign.id)
    assert [(r.lead_id, r.reason, r.rule_code, r.source, r.at) for r in rows] == \
        [(lead.id, "window", "federal_hours", "47 CFR 64.1200(c)(1)", NOW)]
    assert counted == [entry]


# -- placing calls and following them --------------------------------------------------------------


async def test_tick_dials_in_window_and_logs_the_blocked_lead(env: Env) -> None:
    await campaign_with_leads(env)
    assert await dial_round(env) == 1
    (form,) = creates(env.standin)
    assert form["To"] == ["+12125550100"] and form["From"] == [FROM]
    twiml = form["Twiml"][0]
    # the stream's action URL is where Twilio asks what next when the stream ends (a crash)
    assert ('<Connect action="https://reautod.example.com/twilio/stream-ended"><Stream '
            'url="wss://reautod.example.com/twilio/media">') in twiml
    assert '<Parameter name="campaign" value="fall" />' in twiml
    assert '<Parameter name="lead_name" value="Ann Inwindow" />' in twiml
    assert "Record" not in form and "<Say" not in twiml  # no recording, so no announcement
    assert form["StatusCallback"] == [f"{PUBLIC}/twilio/status"]
    assert form["StatusCallbackEvent"] == ["initiated", "ringing", "answered", "completed"]
    assert form["MachineDetection"] == ["Enable"] and form["AsyncAmd"] == ["true"]
    assert form["AsyncAmdStatusCallback"] == [f"{PUBLIC}/twilio/amd"]
    assert form["Timeout"] == ["30"] and form["TimeLimit"] == ["900"]
    campaign = await CampaignRepository(env.db).find("fall")
    (row,) = await CallRepository(env.db).recent(campaign_id=campaign.id)
    assert row.status == "queued" and row.call_sid is not None and row.lead_id is not None
    assert f'<Parameter name="call_id" value="{row.id}" />' in twiml
    (block,) = await DialBlockRepository(env.db).recent(campaign_id=campaign.id)
    assert block.rule_code == "federal_hours" and block.reason == "window"
    assert block.retry_at is not None and block.retry_at > NOW
    assert env.metrics.dial_blocked_total.labels(reason="window")._value.get() == 1
    leads = await LeadRepository(env.db).status_counts(campaign.id)
    assert leads == {"dialing": 1, "retry": 1}


def opening_of(twiml: str) -> str:
    root = ET.fromstring(twiml)
    params = {p.get("name"): p.get("value") for p in root.iterfind("./Connect/Stream/Parameter")}
    return params["opening"] or ""


async def test_dialed_call_carries_the_campaign_opening(env: Env) -> None:
    await campaign_with_leads(env, business_name="Bright Roofs", opt_out_key="7",
                              callback_number="+12125550199")
    await env.call("campaign.create", name="plain")
    await env.call("campaign.create", name="quiet", opt_out_offer=False)
    assert await dial_round(env) == 1
    await env.call("dial", number="+12125550100", campaign="plain")
    await env.call("dial", number="+12125550100", campaign="quiet")
    campaign, plain, quiet = (opening_of(form["Twiml"][0]) for form in creates(env.standin))
    # Business first, the opt-out with the campaign's key right after, then the number.
    assert campaign.startswith("Hi {lead_name}, this is Alex, an automated assistant calling "
                               "from Bright Roofs. To stop these calls, say stop or press 7. ")
    assert "call 2 1 2, 5 5 5, 0 1 9 9." in campaign and "Acme" not in campaign
    # The defaults: config's business, key 9, and the caller ID as the callback number.
    assert "calling from Acme Solar. To stop these calls, say stop or press 9." in plain
    assert "call 5 0 0, 5 5 5, 0 0 0 6." in plain
    assert "say stop" not in quiet and "press" not in quiet
    assert "calling from Acme Solar." in quiet and "call 5 0 0, 5 5 5, 0 0 0 6." in quiet


async def test_a_dialed_calls_greeting_is_prepared_from_its_stream_parameters(env: Env) -> None:
    await campaign_with_leads(env, business_name="Bright Roofs", ring_timeout_s=20)
    assert await dial_round(env) == 1
    await env.call("dial", number="+12125550100")
    placed = [form["Twiml"][0] for form in creates(env.standin)]
    assert len(placed) == 2
    for twiml in placed:
        root = ET.fromstring(twiml)
        params = {p.get("name") or "": p.get("value") or ""
                  for p in root.iterfind("./Connect/Stream/Parameter")}
        # exactly what the stream's start will carry, so the session finds the same text
        lead_name, opening, expires_in_s = env.manager.greetings[params["call_id"]]
        assert (lead_name, opening) == (params["lead_name"], params["opening"])
        # and its campaign, so the conversation knows whether a playbook will open instead
        assert env.manager.greeting_campaigns[params["call_id"]] == params["campaign"]
        assert expires_in_s > 30  # past the ring timeout
    roofs = next(k for k, v in env.manager.greetings.items() if "Bright Roofs" in (v[1] or ""))
    assert env.manager.greetings[roofs][2] > 20
    # the campaign's call is not answered: its greeting goes, the manual dial's stays
    call = env.tracker.get(roofs)
    assert call is not None and call.sid is not None
    await env.tracker.on_status(status(call.sid, "no-answer", 1))
    await env.tracker.settle()
    assert env.manager.dropped == [roofs] and len(env.manager.greetings) == 1


async def test_an_opening_too_long_for_twilio_is_refused_at_create(env: Env) -> None:
    with pytest.raises(ValidationError, match=r"opening is 6\d\d characters") as refused:
        await env.call("campaign.create", name="wordy", business_name="B" * 200,
                       opening="{business_name}, {business_name}, {business_name}.")
    assert refused.value.code == "opening_too_long"
    assert await env.call("campaigns.list") == {"campaigns": []}
    await env.call("campaign.create", name="fits", business_name="B" * 200,
                   opening="{business_name}, {business_name}. {opt_out}")


async def test_status_timeline_persisted_and_lead_released(env: Env) -> None:
    await campaign_with_leads(env)
    await dial_round(env)
    sid = next(iter(env.standin.calls))
    tracker = env.tracker
    # out of order and twice: ringing (seq 1) before initiated (seq 0), ringing again
    for value, seq in (("ringing", 1), ("initiated", 0), ("ringing", 1), ("in-progress", 2)):
        await tracker.on_status(status(sid, value, seq))
        await tracker.settle()
    await tracker.on_status(status(sid, "no-answer", 3))  # impossible after in-progress
    await tracker.on_status(status(sid, "bogus", 4))
    await tracker.settle()
    row = await CallRepository(env.db).by_sid(sid)
    assert row is not None and row.status == "in_progress" and row.answered_at is not None
    timeline = await CallRepository(env.db).timeline(row.id)
    twilio = sorted((e.sequence, e.status) for e in timeline if e.source == "twilio")
    assert twilio == [(0, "initiated"), (1, "ringing"), (2, "in_progress")]
    await tracker.on_status(status(sid, "completed", 5))
    await tracker.settle()
    row = await CallRepository(env.db).get(row.id)
    assert row.status == "completed" and row.outcome == CallOutcome.UNKNOWN.value
    assert row.lead_id is not None
    lead = await LeadRepository(env.db).get(row.lead_id)
    # a conversation happened: never retried automatically
    assert lead.status == LeadStatus.EXHAUSTED.value and lead.lease_owner is None
    assert tracker.get(row.id) is None  # forgotten once finished


async def test_busy_call_is_retried_later(env: Env) -> None:
    await campaign_with_leads(env)
    await dial_round(env)
    sid = next(iter(env.standin.calls))
    await env.tracker.on_status(status(sid, "busy", 1))
    await env.tracker.settle()
    row = await CallRepository(env.db).by_sid(sid)
    assert row is not None and row.status == "busy" and row.outcome == "no_answer"
    assert row.lead_id is not None
    lead = await LeadRepository(env.db).get(row.lead_id)
    assert lead.status == "retry" and lead.next_attempt_at is not None
    assert lead.next_attempt_at > NOW
    assert env.metrics.calls_total.labels(outcome="busy")._value.get() == 1


async def test_twilio_call_states_are_published_in_twilios_words(env: Env) -> None:
    await campaign_with_leads(env)
    await dial_round(env)
    sid = next(iter(env.standin.calls))
    states = env.part.bus.subscribe(["call.state"])
    await env.tracker.on_status(status(sid, "in-progress", 2))
    await env.tracker.settle()
    event = await asyncio.wait_for(states.get(), 5)
    assert isinstance(event.data, CallStateEvent)
    assert (event.data.state, event.data.source) == ("in-progress", "twilio")
    row = await CallRepository(env.db).by_sid(sid)
    assert row is not None and row.status == "in_progress"  # the store's spelling


async def test_amd_machine_hang_up_policy(env: Env) -> None:
    await campaign_with_leads(env)
    await dial_round(env)
    sid = next(iter(env.standin.calls))
    await env.tracker.on_status(status(sid, "in-progress", 2))
    await env.tracker.on_amd(AmdCallback.model_validate({"CallSid": sid,
                                                       "AnsweredBy": "machine_start"}))
    await env.tracker.settle()
    assert updates(env.standin, sid)[-1]["Status"] == ["completed"]
    row = await CallRepository(env.db).by_sid(sid)
    assert row is not None and row.amd_result == "machine_start"
    assert env.metrics.amd_results_total.labels(result="machine_start")._value.get() == 1
    # a repeat changes nothing
    await env.tracker.on_amd(AmdCallback.model_validate({"CallSid": sid,
                                                       "AnsweredBy": "machine_start"}))
    await env.tracker.settle()
    assert len(updates(env.standin, sid)) == 1


async def test_amd_voicemail_policy_leaves_a_message(env: Env) -> None:
    await campaign_with_leads(env, machine_policy="voicemail",
                              voicemail_message="Hi, this is Acme. Call us back.")
    tts = env.tts
    await dial_round(env)
    (form,) = creates(env.standin)
    assert form["MachineDetection"] == ["DetectMessageEnd"]
    sid = next(iter(env.standin.calls))
    await env.tracker.on_amd(AmdCallback.model_validate({"CallSid": sid,
                                                       "AnsweredBy": "machine_end_beep"}))
    await env.tracker.settle()
    (update,) = updates(env.standin, sid)
    # in the agent's voice: Twilio plays the clip our TTS made of the message, no <Say>
    root = ET.fromstring(update["Twiml"][0])
    assert [c.tag for c in root] == ["Pause", "Play", "Hangup"]
    url = root.findtext("Play") or ""
    assert url.startswith(PUBLIC + "/twilio/clips/")
    assert [text for _, text in tts.texts] == ["Hi, this is Acme. Call us back."]
    app = FastAPI()
    for router in env.part.routers():
        app.include_router(router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://testserver") as client:
        clip = await client.get(url.removeprefix(PUBLIC))
    assert clip.status_code == 200 and clip.headers["content-type"] == "audio/wav"
    spoken = [c async for c in tts.synthesize("Hi, this is Acme. Call us back.", call_id="x")]
    with wave.open(io.BytesIO(clip.content)) as wav:
        assert wav.readframes(wav.getnframes()) == b"".join(c.pcm for c in spoken)
    await env.tracker.on_status(status(sid, "completed", 3))
    await env.tracker.settle()
    row = await CallRepository(env.db).by_sid(sid)
    assert row is not None and row.outcome == "voicemail"


async def test_spoken_opt_out_adds_dnc_and_ends_the_call(env: Env) -> None:
    await campaign_with_leads(env)
    sid, row = await dialed(env)
    session = FakeSession()
    env.manager.sessions[str(row.id)] = session
    await env.tracker.on_status(status(sid, "in-progress", 2))
    env.part.live_calls.on_call_started(CallInfo(str(row.id), "MZ1", sid, "Ann", "fall", "outbound",
                                      CallState.LISTENING, NOW))
    env.part.live_calls.on_turn(TurnRecord(str(row.id), 1, "caller", "Please stop calling me.", 0.9,
                                NOW, NOW))
    await env.tracker.settle()
    assert session.ended == ["opted_out"]
    assert updates(env.standin, sid)[-1]["Status"] == ["completed"]
    assert (await env.part.dnc.check("+12125550100", None)).suppressed
    await env.tracker.on_status(status(sid, "completed", 3))
    await env.tracker.settle()
    row = await CallRepository(env.db).get(row.id)
    assert row.outcome == "opted_out" and row.lead_id is not None
    assert (await LeadRepository(env.db).get(row.lead_id)).status == "dnc"


async def test_opt_out_key_adds_dnc_and_ends_the_call(env: Env) -> None:
    await campaign_with_leads(env, opt_out_key="#")
    sid, row = await dialed(env)
    env.part.live_calls.on_dtmf(str(row.id), "9")  # not this campaign's key
    await env.tracker.settle()
    assert not (await env.part.dnc.check("+12125550100", None)).suppressed
    env.part.live_calls.on_dtmf(str(row.id), "#")
    await env.tracker.settle()
    check = await env.part.dnc.check("+12125550100", None)
    assert check.entry is not None and check.entry.source is DncChannel.KEYPRESS
    assert updates(env.standin, sid)[-1]["Status"] == ["canceled"]  # not answered yet


async def test_opt_out_key_from_the_pipeline_reaches_telephony(env: Env) -> None:
    """The daemon's observer fan-out carries the key press to telephony."""
    await campaign_with_leads(env)
    sid, row = await dialed(env)
    session = FakeSession()
    env.manager.sessions[str(row.id)] = session
    await env.tracker.on_status(status(sid, "in-progress", 2))
    sink = RecordingObserver()
    observer = ObserverFanOut(sink, env.part.observer)
    observer.on_call_started(CallInfo(str(row.id), "MZ1", sid, "Ann", "fall", "outbound",
                                      CallState.LISTENING, NOW))
    observer.on_dtmf(str(row.id), "9")  # the default opt-out key
    await env.tracker.settle()
    assert sink.dtmf == [(str(row.id), "9")]
    assert session.ended == ["opted_out"]
    assert updates(env.standin, sid)[-1]["Status"] == ["completed"]
    check = await env.part.dnc.check("+12125550100", None)
    assert check.entry is not None and check.entry.source is DncChannel.KEYPRESS


async def test_the_agents_opt_out_tool_ends_the_call(env: Env) -> None:
    await campaign_with_leads(env)
    sid, row = await dialed(env)
    await env.tracker.on_status(status(sid, "in-progress", 2))
    await env.tracker.settle()
    await env.part.live_calls.on_opt_out(str(row.id))  # the number is the call's
    check = await env.part.dnc.check("+12125550100", None)
    assert check.entry is not None and check.entry.source is DncChannel.AGENT_TOOL
    assert updates(env.standin, sid)[-1]["Status"] == ["completed"]


async def test_ordinary_words_do_not_opt_out(env: Env) -> None:
    await campaign_with_leads(env)
    sid, row = await dialed(env)
    env.part.live_calls.on_turn(TurnRecord(str(row.id), 1, "caller", "I could stop by the office", 0.9,
                                NOW, NOW))
    await env.tracker.settle()
    assert not (await env.part.dnc.check("+12125550100", None)).suppressed
    assert updates(env.standin, sid) == []


async def test_dnc_is_checked_right_before_dialing(env: Env) -> None:
    await campaign_with_leads(env)
    await env.part.dnc.add("+12125550100", source=DncChannel.OPERATOR, now=NOW)
    assert await dial_round(env) == 0
    assert creates(env.standin) == []
    campaign = await CampaignRepository(env.db).find("fall")
    rules = await DialBlockRepository(env.db).counts_by_rule(campaign.id)
    assert rules == {"dnc_global": 1, "federal_hours": 1}


async def test_recording_starts_when_the_stream_starts(env: Env) -> None:
    await campaign_with_leads(env, record=True, recording_announcement="We record this call.")
    await dial_round(env)
    (form,) = creates(env.standin)
    twiml = form["Twiml"][0]
    assert twiml.index("We record this call.") < twiml.index("<Connect ")
    assert "Record" not in form
    sid = next(iter(env.standin.calls))
    row = await CallRepository(env.db).by_sid(sid)
    assert row is not None
    assert list(env.standin.requests_to("/Recordings.json")) == []
    env.part.live_calls.on_call_started(CallInfo(str(row.id), "MZ1", sid, "Ann", "fall", "outbound",
                                      CallState.LISTENING, NOW))
    await env.tracker.settle()
    (rec,) = env.standin.requests_to("/Recordings.json")
    assert rec.form["RecordingStatusCallback"] == [f"{PUBLIC}/twilio/recording"]


async def test_conversation_end_hangs_up_the_line_but_not_a_transfer(env: Env) -> None:
    await campaign_with_leads(env, transfer_number="+12125550199")
    sid, row = await dialed(env)
    await env.tracker.on_status(status(sid, "in-progress", 2))
    await env.tracker.settle()
    await env.call("call.transfer", call_id=str(row.id))
    (update,) = updates(env.standin, sid)
    assert "<Number>+12125550199</Number>" in update["Twiml"][0]
    env.part.live_calls.on_call_ended(str(row.id), "socket_closed", 12.0)
    await env.tracker.settle()
    assert len(updates(env.standin, sid)) == 1  # the human's leg is not hung up


async def test_the_agents_transfer_reaches_twilio_through_the_handoff(env: Env) -> None:
    """Twilio's side is the pipeline's CallHandoff: a reply's Transfer bridges the live call."""
    with pytest.raises(NotFoundError):
        await env.part.twilio.transfers.transfer("sim-0123456789ab", None)  # not a Twilio call: the caller hears why
    await campaign_with_leads(env, transfer_number="+12125550199")
    await dial_round(env)
    tracked = next(c for c in env.tracker.tracked() if c.sid is not None)
    await env.tracker.on_status(status(tracked.sid or "", "in-progress", 2))
    await env.tracker.settle()
    await env.part.twilio.transfers.transfer(tracked.call_id.hex, "+12125550199")
    twiml = [u["Twiml"][0] for u in updates(env.standin, tracked.sid or "")]
    assert len(twiml) == 1 and "<Number>+12125550199</Number>" in twiml[0]


async def test_inbound_call_from_a_lead_is_answered(env: Env) -> None:
    await campaign_with_leads(env)
    match = await env.tracker.lookup_lead_by_phone("+12125550101")
    assert match is not None and match.name == "Bob Asleep" and match.campaign == "fall"
    request = VoiceRequest.model_validate({"CallSid": "CA" + "9" * 32, "From": "+12125550101",
                                           "To": FROM})
    answer = await env.tracker.on_inbound(request, match)
    assert answer is not None and answer.campaign == "fall" and answer.lead_name == "Bob Asleep"
    again = await env.tracker.on_inbound(request, match)
    assert again is not None and again.call_id == answer.call_id  # Twilio's retry
    await env.tracker.settle()
    row = await CallRepository(env.db).by_sid("CA" + "9" * 32)
    assert row is not None and row.direction == "inbound" and str(row.id) == answer.call_id
    assert await env.tracker.lookup_lead_by_phone("+12125550177") is None
    stranger = VoiceRequest.model_validate({"CallSid": "CA" + "8" * 32, "From": "+12125550177",
                                            "To": FROM})
    assert await env.tracker.on_inbound(stranger, None) is None  # no twilio.inbound_campaign


async def test_a_lost_final_callback_is_swept(env: Env) -> None:
    await campaign_with_leads(env)
    await dial_round(env)
    sid = next(iter(env.standin.calls))
    await env.tracker.on_status(status(sid, "in-progress", 2))
    await env.tracker.settle()
    assert await env.tracker.sweep_stale() == 0  # still within ring timeout + time limit
    env.clock.now = NOW + timedelta(seconds=30 + 900) + timedelta(minutes=11)
    assert await env.tracker.sweep_stale() == 1
    row = await CallRepository(env.db).by_sid(sid)
    assert row is not None and row.status == "completed"
    last = (await CallRepository(env.db).timeline(row.id))[-1]
    assert (last.status, last.source) == ("completed", "reautod")
    assert row.lead_id is not None
    assert (await LeadRepository(env.db).get(row.lead_id)).status == "exhausted"
    assert env.tracker.tracked() == []


async def test_a_refused_create_is_logged_and_retried_later(
        db: Database, standin: TwilioStandIn, writer: WriteBehind) -> None:
    clock = Clock()
    wrong = TwilioCalls(ACCOUNT, "not-the-token", api_base_url=standin.base_url)
    manager = FakeCalls()
    part = make_part(db, twilio_settings(standin), Secrets({"twilio_auth_token": SecretStr(TOKEN)}),
                     clock=clock, line=manager, twilio=wrong, writer=writer)
    env = Env(db, part, standin, clock, manager, Metrics(), writer)
    try:
        await campaign_with_leads(env)
        assert await dial_round(env) == 0
        assert manager.greetings == {} and len(manager.dropped) == 1  # prepared, then dropped
        campaign = await CampaignRepository(db).find("fall")
        (row,) = await CallRepository(db).recent(campaign_id=campaign.id)
        assert row.status == "failed" and row.outcome == "failed"
        assert row.error_code == "twilio_failed" and row.call_sid is None
        rules = await DialBlockRepository(db).counts_by_rule(campaign.id)
        assert rules == {"twilio_failed": 1, "federal_hours": 1}
        assert await LeadRepository(db).status_counts(campaign.id) == {"retry": 2}
        assert part.tracker is not None and part.tracker.tracked() == []
    finally:
        await part.close()


FUZZ_STATUSES = ("queued", "initiated", "ringing", "in-progress", "completed", "busy",
                 "no-answer", "failed", "canceled", "In-Progress", "answered", "bogus", "")


async def test_fuzzed_callbacks_never_move_a_call_wrongly(env: Env) -> None:
    """Random callback sequences (unknown statuses, duplicates, out of order, after the end):
    the stored status is always the state machine's, and every step it applied is stored."""
    rng = random.Random(20261121)
    calls = CallRepository(env.db)
    # manual dials take the dialer's pacing; this test is about callbacks, not pacing
    env.part.dialer.bucket = TokenBucket(1000.0, burst=20)
    for _ in range(20):
        dialed = await env.call("dial", number="+12125550100")
        sid, call_id = dialed["call_sid"], uuid.UUID(dialed["call_id"])
        reference = CallTimeline()
        applied: set[str] = set()
        sent: set[str] = set()
        for _ in range(rng.randint(1, 9)):
            seq = rng.choice((None, 0, 1, 2, 3, 4, 5, 6))
            form = {"CallSid": sid, "CallStatus": rng.choice(FUZZ_STATUSES)}
            if seq is not None:
                form["SequenceNumber"] = str(seq)
            callback = StatusCallback.model_validate(form)
            known = parse_status(callback.call_status)
            if reference.apply(callback.event()) is Applied.APPLIED and known is not None:
                applied.add(known.value)
            if known is not None:
                sent.add(known.value)
            await env.tracker.on_status(callback)
            await env.tracker.settle()
        row = await calls.get(call_id)
        assert row.status == reference.status.value, (form, reference)
        stored = [e.status for e in await calls.timeline(call_id)]
        assert len(stored) == len(set(stored))
        assert {"queued"} | applied <= set(stored) <= {"queued"} | sent, (stored, reference)
        # a fuzzed call may never reach an end; its call slot goes back as the sweep would
        env.part.slots.release(call_id)


async def test_unknown_call_sid_is_ignored(env: Env) -> None:
    await env.tracker.on_status(status("CA" + "0" * 32, "completed", 1))
    await env.tracker.settle()
    assert await CallRepository(env.db).recent() == []


async def test_restart_rebuilds_a_call_from_the_store(env: Env, db: Database,
                                                      standin: TwilioStandIn) -> None:
    await campaign_with_leads(env)
    await dial_round(env)
    sid = next(iter(env.standin.calls))
    await env.tracker.on_status(status(sid, "ringing", 1))
    await env.tracker.settle()
    # another process (a restarted daemon) gets the rest of the callbacks
    other = make_part(db, twilio_settings(standin),
                      Secrets({"twilio_auth_token": SecretStr(TOKEN)}), clock=env.clock,
                      writer=env.writer)
    try:
        assert other.tracker is not None
        await other.tracker.on_status(status(sid, "ringing", 1))  # duplicate: nothing new
        await other.tracker.on_status(status(sid, "completed", 4))
        await other.tracker.settle()
    finally:
        await other.close()
    row = await CallRepository(db).by_sid(sid)
    assert row is not None and row.status == "completed"
    statuses = [e.status for e in await CallRepository(db).timeline(row.id)]
    assert statuses.count("ringing") == 1 and "completed" in statuses


# -- control methods -------------------------------------------------------------------------------


async def test_campaign_lifecycle_and_import_report(env: Env) -> None:
    created = await env.call("campaign.create", name="spring", window_start="10:00",
                             window_end="18:00", window_days=[0, 2], max_concurrent=1)
    assert created["status"] == "draft" and created["settings"]["window_start"] == "10:00:00"
    with pytest.raises(ValidationError, match="already exists"):
        await env.call("campaign.create", name="spring")
    with pytest.raises(ValueError):
        CreateParams.model_validate({"name": "x", "window_days": [9]})
    with pytest.raises(ValueError):
        CreateParams.model_validate({"name": "x", "no_such_setting": 1})
    report = await env.call("campaign.import", campaign="spring", csv_text=CSV)
    assert report["summary"]["imported"] == 2 and report["summary"]["rejected"] == 2
    problems = {(i["line"], i["problem"]) for i in report["issues"]}
    assert problems == {(4, "bad_phone"), (5, "duplicate")}
    again = await env.call("campaign.import", campaign="spring", csv_text=CSV)
    assert again["summary"]["imported"] == 0  # the same people are duplicates now
    with pytest.raises(ReautodError):
        await env.call("campaign.import", campaign="spring", csv_text="\x00binary")
    with pytest.raises(ValueError):
        ImportParams.model_validate({"campaign": "spring"})
    assert (await env.call("campaign.start", campaign="spring"))["status"] == "active"
    with pytest.raises(ValidationError, match="cannot resume"):
        await env.call("campaign.resume", campaign="spring")
    assert (await env.call("campaign.pause", campaign="spring"))["status"] == "paused"
    assert (await env.call("campaign.resume", campaign="spring"))["status"] == "active"
    status_ = await env.call("campaign.status", campaign="spring")
    assert status_["leads"] == {"new": 2} and status_["dialing"] is True
    env.manager.refuse = UnavailableError("the LLM model is missing: run reautoctl models pull")
    status_ = await env.call("campaign.status", campaign="spring")
    assert status_["dialing"] is False and "models pull" in status_["problem"]
    assert await env.part.timers.tick() == 0
    env.manager.refuse = None
    assert (await env.call("campaign.stop", campaign="spring"))["status"] == "completed"
    listed = await env.call("campaigns.list")
    assert [c["name"] for c in listed["campaigns"]] == ["spring"]


async def test_import_from_a_path_the_daemon_reads(env: Env, tmp_path: Path) -> None:
    await env.call("campaign.create", name="files")
    leads = tmp_path / "leads.csv"
    leads.write_text(CSV)
    report = await env.call("campaign.import", campaign="files", csv_path=str(leads))
    assert report["summary"]["imported"] == 2
    with pytest.raises(ValidationError, match="absolute"):
        await env.call("campaign.import", campaign="files", csv_path="leads.csv")
    with pytest.raises(ValidationError, match="cannot read"):
        await env.call("campaign.import", campaign="files", csv_path=str(tmp_path / "none.csv"))
    with pytest.raises(ReautodError) as missing:
        await env.call("campaign.import", campaign="nope", csv_text=CSV)
    assert missing.value.code == "not_found"


async def test_dial_checks_dnc_and_window_then_calls(env: Env) -> None:
    await env.call("campaign.create", name="manual-ok", window_days=[0, 1, 2, 3, 4, 5, 6])
    result = await env.call("dial", number="+12125550100", campaign="manual-ok")
    (form,) = creates(env.standin)
    assert form["To"] == ["+12125550100"] and result["call_sid"] in env.standin.calls
    shown = await env.call("call.show", call_id=result["call_id"])
    assert shown["status"] == "queued" and shown["live"]["campaign"] == "manual-ok"
    history = await env.call("calls.history", campaign="manual-ok")
    assert [c["call_id"] for c in history["calls"]] == [result["call_id"]]
    env.clock.now = NOW + timedelta(hours=10)  # 21:00 in New York
    with pytest.raises(ValidationError, match="outside the calling window") as late:
        await env.call("dial", number="+12125550101")
    assert late.value.code == "outside_window"
    env.clock.now = NOW
    await env.part.dnc.add("+12125550101", source=DncChannel.OPERATOR, now=NOW)
    with pytest.raises(ValidationError) as blocked:
        await env.call("dial", number="+12125550101")
    assert blocked.value.code == "dnc"
    with pytest.raises(ValidationError):
        await env.call("dial", number="not a number")
    with pytest.raises(ValidationError) as toll_free:  # rings in any of 40 zones
        await env.call("dial", number="+18005550100")
    assert toll_free.value.code == "no_timezone"
    env.manager.refuse = UnavailableError("not accepting calls (shutting down)")
    with pytest.raises(UnavailableError):
        await env.call("dial", number="+12125550100")
    assert len(creates(env.standin)) == 1
    with pytest.raises(ValueError):
        DialParams.model_validate({"number": "+12125550100", "extra": 1})


async def test_dial_takes_the_dialers_call_slots_and_pacing(env: Env) -> None:
    """`dial` passes the dialer's own gate: the campaign's concurrency cap holds for manual
    dials, the slot comes back when the call ends, and the calls-per-second token is waited for."""
    await env.call("campaign.create", name="one-line", max_concurrent=1,
                   window_days=[0, 1, 2, 3, 4, 5, 6])
    first = await env.call("dial", number="+12125550100", campaign="one-line")
    with pytest.raises(OverloadedError) as full:
        await env.call("dial", number="+12125550101", campaign="one-line")
    assert full.value.code == "pacing" and "no free call slot" in full.value.message
    campaign = await CampaignRepository(env.db).find("one-line")
    assert env.part.dialer.limiter.active_for(str(campaign.id)) == 1
    await env.tracker.on_status(status(first["call_sid"], "completed", 1))
    await env.tracker.settle()
    assert env.part.dialer.limiter.active_for(str(campaign.id)) == 0
    # the token taken by the first dial is not back yet: the dial waits for it, not refuses
    await env.call("dial", number="+12125550101", campaign="one-line")
    assert len(creates(env.standin)) == 2


async def test_operator_dnc_entries_global_and_per_campaign(env: Env) -> None:
    await env.call("campaign.create", name="uk", default_region="GB",
                   window_days=[0, 1, 2, 3, 4, 5, 6])
    await env.call("campaign.create", name="us", window_days=[0, 1, 2, 3, 4, 5, 6])
    added = await env.call("dnc.add", number="020 7946 0000", campaign="uk", reason="asked")
    assert added == {"number": "+442079460000", "scope": "campaign", "campaign": "uk"}
    uk = await env.call("dnc.check", number="+442079460000", campaign="uk")
    assert uk["suppressed"] is True and uk["scope"] == "campaign" and uk["source"] == "operator"
    assert (await env.call("dnc.check", number="+442079460000", campaign="us"))[
        "suppressed"] is False
    await env.call("dnc.add", number="+12125550100")
    assert (await env.call("dnc.check", number="+12125550100", campaign="us"))["scope"] == \
        "global"
    with pytest.raises(ValidationError) as blocked:
        await env.call("dial", number="+12125550100", campaign="us")
    assert blocked.value.code == "dnc"
    with pytest.raises(ValidationError):
        await env.call("dnc.add", number="12")


async def test_without_twilio_dialing_refuses_with_what_to_set(db: Database,
                                                             writer: WriteBehind) -> None:
    part = make_part(db, Settings(), Secrets({}), writer=writer)
    try:
        assert part.routers() == [] and part.twilio.media_upgrade_validator() is None
        assert await part.twilio.health() == (True, part.twilio.problem)
        methods = {m.name: m for m in part.control_methods()}
        await methods["campaign.create"].handler(CreateParams(name="offline"))
        with pytest.raises(UnavailableError) as err:
            await methods["campaign.start"].handler(CampaignRef(campaign="offline"))
        for needed in ("twilio.account_sid", "twilio.from_number", "http.public_base_url",
                       "REAUTOD_SECRET_TWILIO_AUTH_TOKEN"):
            assert needed in err.value.message
        with pytest.raises(UnavailableError):
            await methods["dial"].handler(DialParams(number="+12125550100"))
        with pytest.raises(UnavailableError):
            await methods["call.transfer"].handler(CallRef(call_id="x"))
        assert await part.timers.tick() == 0
        # the agent's opt-out still reaches the DNC list (a simulated call has no line to end)
        await part.live_calls.on_opt_out("sim-1", "+12125550100")
        assert (await part.dnc.check("+12125550100", None)).suppressed
        with pytest.raises(UnavailableError):
            await part.live_calls.on_opt_out("sim-2")
    finally:
        await part.close()


@pytest.mark.parametrize("twilio, http", [
    ({"account_sid": ACCOUNT, "from_number": "5550006"}, {"public_base_url": PUBLIC}),
    ({"account_sid": ACCOUNT, "from_number": FROM}, {"public_base_url": "ftp://x"}),
])
async def test_invalid_twilio_settings_are_reported_not_fatal(
        db: Database, writer: WriteBehind, twilio: dict[str, str], http: dict[str, str]) -> None:
    part = make_part(db, Settings(twilio=twilio, http=http),
                     Secrets({"twilio_auth_token": SecretStr(TOKEN)}), writer=writer)
    try:
        ok, detail = await part.twilio.health()
        assert not ok and "invalid" in detail and part.routers() == []
        with pytest.raises(UnavailableError):
            part.twilio.require()
    finally:
        await part.close()


async def test_media_upgrade_is_signed_and_checked(env: Env) -> None:
    check = env.part.twilio.media_upgrade_validator()
    assert check is not None

    class Upgrade:  # what the check reads of a Starlette WebSocket
        def __init__(self, headers: dict[str, str]) -> None:
            self.headers = headers

    # the simulator dials a local URL; the signature covers the public one the TwiML names
    headers = dict(env.part.twilio.sign_media("ws://127.0.0.1:1234/twilio/media"))
    assert check(Upgrade(headers))  # type: ignore[arg-type]
    assert not check(Upgrade({}))  # type: ignore[arg-type]
    assert not check(Upgrade({"X-Twilio-Signature": "bogus"}))  # type: ignore[arg-type]
    assert env.metrics.webhook_signature_failures_total._value.get() == 2


# -- reautoctl's readable output of what the methods return ---------------------------------------


def test_create_options_become_settings() -> None:
    from reautod.control.commands import campaign as cli
    from reautod.control.commands import dial as dial_cli

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    cli.register(sub)
    dial_cli.register(sub)
    args = parser.parse_args(["campaign", "create", "q4", "--hours", "10:00-18:30", "--days",
                              "mon-wed,sat", "--machine-policy", "voicemail", "--set",
                              "ring_timeout_s=25", "--set", "voicemail_message=Call us",
                              "--set", "business_name=Bright Roofs", "--set",
                              "opt_out_offer=false"])
    params = cli.create_params(args)
    assert params == {"name": "q4", "window_start": "10:00", "window_end": "18:30",
                      "window_days": [0, 1, 2, 5], "machine_policy": "voicemail",
                      "ring_timeout_s": 25, "voicemail_message": "Call us",
                      "business_name": "Bright Roofs", "opt_out_offer": False}
    CreateParams.model_validate(params)  # what the daemon will accept
    for bad in (["--days", "fri-mon"], ["--days", "someday"], ["--hours", "10"],
                ["--set", "novalue"]):
        with pytest.raises(ValueError):
            cli.create_params(parser.parse_args(["campaign", "create", "x", *bad]))
    dial_args = parser.parse_args(["dial", "+12125550100", "--campaign", "q4"])
    assert dial_args.number == "+12125550100" and dial_args.campaign == "q4"


async def test_tables_show_what_the_methods_return(env: Env) -> None:
    """reautoctl parses each method's JSON answer with the result model the daemon built it
    from, then renders it: a field renamed on one side fails here."""
    from reautod.control.commands import call as call_cli
    from reautod.control.commands import campaign as cli
    from reautod.control.commands import dnc as dnc_cli

    created = CampaignInfo.model_validate(await env.call("campaign.create", name="fall"))
    text = cli.render_campaign(created)
    assert "window_start" in text and "draft" in text
    report = ImportResult.model_validate(
        await env.call("campaign.import", campaign="fall", csv_text=CSV))
    text = cli.render_import(report)
    assert "imported" in text and "bad_phone" in text and "duplicate" in text
    moved = CampaignTransition.model_validate(await env.call("campaign.start", campaign="fall"))
    assert (moved.previous, moved.status) == (CampaignStatus.DRAFT, CampaignStatus.ACTIVE)
    await dial_round(env)
    status = CampaignStatusResult.model_validate(
        await env.call("campaign.status", campaign="fall"))
    status_text = cli.render_status(status)
    assert "federal_hours" in status_text and "dialing" in status_text
    assert status.live_calls and status.live_calls[0].status == "queued"
    listed = CampaignList.model_validate(await env.call("campaigns.list"))
    fall = {c.name: c for c in listed.campaigns}["fall"]
    live = [c for c in env.part.twilio.registry.tracked() if not c.finished]
    assert live and fall.calls_live == len(live)
    assert fall.leads_total == 2 and fall.pacing is not None and fall.pacing.max_concurrent == 2
    assert "fall" in cli.render_list(listed)
    history = CallHistory.model_validate(await env.call("calls.history"))
    assert history.calls[0].from_number == FROM  # `from` on the wire
    table_text = call_cli.render_history(history)
    assert "+12125550100" not in table_text and "+1******0100" in table_text  # masked
    shown = CallDetail.model_validate(
        await env.call("call.show", call_id=str(history.calls[0].call_id)))
    assert shown.live is not None and shown.cost.rows == 0
    assert "queued" in call_cli.render_show(shown)

    added = DncAddResult.model_validate(
        await env.call("dnc.add", number="+12125550100", reason="asked twice"))
    assert added.scope is DncScope.GLOBAL and added.campaign is None
    checked = DncCheckResult.model_validate(await env.call("dnc.check", number="+12125550100"))
    assert checked.source is DncChannel.OPERATOR
    assert "global" in dnc_cli.render_check(checked) and "asked twice" in dnc_cli.render_check(checked)
    assert "may be called" in dnc_cli.render_check(DncCheckResult.model_validate(
        await env.call("dnc.check", number="+12125550101")))


async def test_webhooks_over_http_with_the_store(env: Env) -> None:
    """The real router in front of the store-backed handler: signed requests act, unsigned
    ones are refused and change nothing."""
    from fastapi import FastAPI
    from twilio.request_validator import RequestValidator

    await campaign_with_leads(env)
    app = FastAPI()
    for router in env.part.routers():
        app.include_router(router)
    signer = RequestValidator(TOKEN)

    async def post(path: str, form: dict[str, str], signed: bool = True) -> httpx.Response:
        headers = {"X-Twilio-Signature": signer.compute_signature(PUBLIC + path, form)} \
            if signed else {}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            return await c.post(path, data=form, headers=headers)

    inbound = {"CallSid": "CA" + "7" * 32, "From": "+12125550100", "To": FROM,
               "CallStatus": "ringing", "Direction": "inbound"}
    assert (await post("/twilio/voice", inbound, signed=False)).status_code == 403
    answer = await post("/twilio/voice", inbound)
    assert answer.status_code == 200
    assert '<Stream url="wss://reautod.example.com/twilio/media">' in answer.text
    assert '<Parameter name="direction" value="inbound" />' in answer.text
    assert '<Parameter name="lead_name" value="Ann Inwindow" />' in answer.text
    stranger = inbound | {"CallSid": "CA" + "8" * 32, "From": "+12125550177"}
    assert "<Hangup />" in (await post("/twilio/voice", stranger)).text
    await env.tracker.settle()
    row = await CallRepository(env.db).by_sid("CA" + "7" * 32)
    assert row is not None and row.direction == "inbound" and row.to_number == FROM
    assert await CallRepository(env.db).by_sid("CA" + "8" * 32) is None

    done = {"CallSid": "CA" + "7" * 32, "CallStatus": "completed", "SequenceNumber": "3"}
    assert (await post("/twilio/status", done, signed=False)).status_code == 403
    await env.tracker.settle()
    unchanged = await CallRepository(env.db).by_sid("CA" + "7" * 32)
    assert unchanged is not None and unchanged.status == "ringing"
    assert (await post("/twilio/status", done)).status_code == 200
    await env.tracker.settle()
    row = await CallRepository(env.db).by_sid("CA" + "7" * 32)
    assert row is not None and row.status == "completed"


@dataclass
class Erased:
    """ErasedNumbers: the numbers in `phones` were erased on their owner's request."""

    phones: set[str] = field(default_factory=set)

    async def is_erased(self, phone_e164: str) -> bool:
        return phone_e164 in self.phones

    async def erased_among(self, phones: Any) -> set[str]:
        return set(phones) & self.phones


async def test_callers_are_greeted_and_strangers_become_leads_of_the_inbound_campaign(
        db: Database, standin: TwilioStandIn, writer: WriteBehind) -> None:
    """The real router and store: a caller is greeted at once (the stream carries the inbound
    greeting); a caller who is no lead becomes one through the import path, an erased number
    never does, and without an inbound campaign a stranger hears the message, never silence."""
    from twilio.request_validator import RequestValidator

    base = twilio_settings(standin).model_dump()
    settings = Settings(**base | {"twilio": base["twilio"] | {"inbound_campaign": "walk-ins"}})
    clock = Clock()
    erased = Erased({"+12125550188"})
    calls = FakeCalls()
    part = make_part(db, settings, Secrets({"twilio_auth_token": SecretStr(TOKEN)}),
                     clock=clock, line=calls, erased=erased, writer=writer)
    part.inbound_gate = InboundShedding(lambda: calls, LoadGovernor(
        slo_s=1.5, window_s=60, min_turns=10, max_queue=4, inbound_reserve_s=60), Metrics())
    env = Env(db, part, standin, clock, FakeCalls(), Metrics(), writer)
    app = FastAPI()
    for router in part.routers():
        app.include_router(router)
    signer = RequestValidator(TOKEN)

    async def ring(sid_digit: str, caller: str) -> ET.Element:
        form = {"CallSid": "CA" + sid_digit * 32, "From": caller, "To": FROM}
        headers = {"X-Twilio-Signature": signer.compute_signature(PUBLIC + "/twilio/voice", form)}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            response = await c.post("/twilio/voice", data=form, headers=headers)
        assert response.status_code == 200, response.text
        return ET.fromstring(response.text)

    def parameters(root: ET.Element) -> dict[str | None, str | None]:
        return {p.get("name"): p.get("value") for p in root.findall("Connect/Stream/Parameter")}

    message = settings.twilio.inbound_message
    greeting = ("Thanks for calling Acme Solar. This is Alex, an automated assistant. "
                "How can I help you?")
    try:
        # the inbound campaign does not exist yet: the stranger hears the message
        root = await ring("1", "+12125550177")
        assert [(c.tag, c.text) for c in root] == [("Say", message), ("Hangup", None)]
        assert await part.tracker.lookup_lead_by_phone("+12125550177") is None  # type: ignore[union-attr]

        await env.call("campaign.create", name="walk-ins")
        await campaign_with_leads(env)
        root = await ring("2", "+12125550177")
        values = parameters(root)
        assert values["direction"] == "inbound" and values["campaign"] == "walk-ins"
        assert values["opening"] == greeting and values["lead_name"] == ""
        [lead] = await LeadRepository(db).by_phone("+12125550177")
        assert lead.next_attempt_at is not None
        assert lead.next_attempt_at.replace(tzinfo=UTC) >= NOW + timedelta(days=1)
        contact = await ContactRepository(db).get(lead.contact_id)
        assert contact.source == "inbound:walk-ins"
        await part.tracker.settle()  # type: ignore[union-attr]
        row = await CallRepository(db).by_sid("CA" + "2" * 32)
        assert row is not None and row.direction == "inbound" and row.lead_id == lead.id

        # an erased number is never stored again: the message, and no contact
        root = await ring("3", "+12125550188")
        assert [c.tag for c in root] == ["Say", "Hangup"]
        assert await LeadRepository(db).by_phone("+12125550188") == []

        # a lead calling back is greeted at once by their own campaign
        values = parameters(await ring("4", "+12125550100"))
        assert (values["campaign"], values["lead_name"]) == ("fall", "Ann Inwindow")
        assert values["opening"] == greeting

        # a box too busy for another call: the lead hears the busy message, not silence
        calls.refuse = OverloadedError("at capacity: 4 live calls (calls.max_concurrent = 4)")
        root = await ring("5", "+12125550100")
        assert [(c.tag, c.text) for c in root] == [("Say", settings.twilio.busy_message),
                                                   ("Hangup", None)]
    finally:
        await part.close()


# -- one writer of a call row ---------------------------------------------------------------------


@dataclass
class WatchedWriter:
    """The write-behind queue, watched: it records what it is given and writes it only when
    flushed (the placing path's wait) or released, noting each time whether the call row was
    in the database already; anything that writes a call row beside it shows there."""

    inner: WriteBehind
    db: Database
    submitted: list[Record] = field(default_factory=list)
    pending: list[Record] = field(default_factory=list)
    rows_before_flush: list[int] = field(default_factory=list)

    def submit(self, record: Record) -> bool:
        self.submitted.append(record)
        self.pending.append(record)
        return True

    async def flush(self, timeout: float | None = None) -> None:
        self.rows_before_flush.append(len(await CallRepository(self.db).recent()))
        await self.release(timeout)

    async def release(self, timeout: float | None = None) -> None:
        for record in self.pending:
            self.inner.submit(record)
        self.pending.clear()
        await self.inner.flush(timeout)


async def test_the_write_behind_queue_is_the_call_rows_only_writer(
        db: Database, standin: TwilioStandIn, writer: WriteBehind) -> None:
    """A placed call's row is written once, by the queue, with the placed state; its sid is an
    update queued after it. A second writer (the placing path writing the row itself) would
    put the row in before the queue's flush, or the sid before the queue's release."""
    watched = WatchedWriter(writer, db)
    clock = Clock()
    part = make_part(db, twilio_settings(standin), Secrets({"twilio_auth_token": SecretStr(TOKEN)}),
                     clock=clock, line=FakeCalls(), writer=watched)
    env = Env(db, part, standin, clock, FakeCalls(), Metrics(), writer)
    try:
        dialed = await env.call("dial", number="+12125550100")
        assert watched.rows_before_flush == [0]  # nobody wrote the row before the queue did
        call_id, sid = uuid.UUID(dialed["call_id"]), dialed["call_sid"]
        row = await CallRepository(db).get(call_id)
        assert (row.status, row.call_sid, row.to_number) == ("queued", None, "+12125550100")
        assert [(type(r).__name__, getattr(r, "call_sid", None)) for r in watched.submitted] == [
            ("CallStarted", None), ("CallStarted", sid)]
        await watched.release()
        row = await CallRepository(db).get(call_id)
        assert (row.status, row.call_sid) == ("queued", sid)
        assert [e.status for e in await CallRepository(db).timeline(call_id)] == ["queued"]
        # Twilio's callbacks move it on from there, in order
        await part.tracker.on_status(status(sid, "ringing", 1))  # type: ignore[union-attr]
        await part.tracker.settle()  # type: ignore[union-attr]
        assert (await CallRepository(db).get(call_id)).status == "ringing"
    finally:
        await part.close()

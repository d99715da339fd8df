"""The dialer on a real database: two dialers never share a lead; dead dialers' leases expire."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from reautod.call_events import TurnRecord
from reautod.campaigns.dialer import (
    BlockedDial,
    BlockReason,
    CampaignPlan,
    Dialer,
    LeadTarget,
)
from reautod.campaigns.dnc import DncChannel, DncList, DncScope
from reautod.campaigns.lead_queue import LeadClaim, SqlLeadQueue, default_owner
from reautod.campaigns.pacing import ConcurrencyLimiter, Outcome, TokenBucket
from reautod.campaigns.windows import CampaignWindow
from reautod.config import DatabaseSettings
from reautod.dialogue.effects import StoreCallEffects
from reautod.dialogue.ports import LeadContext
from reautod.errors import ReautodError, ValidationError
from reautod.resilience.memory import AdmissionLimit
from reautod.resilience.shedding import LoadGovernor
from reautod.store.database import Database
from reautod.store.enums import LeadStatus
from reautod.store.repositories import (
    CampaignRepository,
    ContactInput,
    ContactRepository,
    LeadRepository,
)
from tests.campaigns.test_dnc import MemoryDncStorage

SETTINGS = DatabaseSettings(pool_size=4, max_overflow=2, pool_timeout_s=5.0,
                            connect_timeout_s=5.0, retry_attempts=1)
# Tuesday 2026-11-24 16:00 UTC = 11:00 in New York: inside every default window.
NOW = datetime(2026, 11, 24, 16, 0, tzinfo=UTC)
TTL = timedelta(minutes=2)


async def open_db(url: str, *, migrate: bool = False) -> Database:
    db = Database(url, SETTINGS)
    await db.open()
    if migrate:
        await db.upgrade("head")
    return db


@pytest.fixture
async def pg(fresh_database_url: str) -> AsyncIterator[tuple[Database, Database]]:
    """Two Database pools on one Postgres database, as two daemons would have."""
    first = await open_db(fresh_database_url, migrate=True)
    second = await open_db(fresh_database_url)
    try:
        yield first, second
    finally:
        await second.close()
        await first.close()


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[Database]:
    db = await open_db(f"sqlite+aiosqlite:///{tmp_path / 'reautod.db'}", migrate=True)
    try:
        yield db
    finally:
        await db.close()


async def seed(db: Database, count: int, *, due: datetime = NOW) -> tuple[uuid.UUID, list[uuid.UUID]]:
    campaign = await CampaignRepository(db).create(f"c-{uuid.uuid4().hex[:6]}")
    leads = []
    for i in range(count):
        contact = await ContactRepository(db).upsert(
            ContactInput(f"+1212555{i:04d}", name=f"Lead {i}", timezone="America/New_York"))
        lead = await LeadRepository(db).add(campaign.id, contact.id, next_attempt_at=due)
        leads.append(lead.id)
    return campaign.id, leads


async def test_two_dialers_never_claim_the_same_lead(pg: tuple[Database, Database]) -> None:
    first, second = pg
    campaign, leads = await seed(first, 40)
    queues = [SqlLeadQueue(first, lease_ttl=TTL), SqlLeadQueue(second, lease_ttl=TTL)]
    taken: list[list[uuid.UUID]] = [[], []]

    async def drain(index: int) -> None:
        while True:
            claims = await queues[index].claim(campaign, NOW, 3)
            if not claims:
                return
            taken[index].extend(c.lead_id for c in claims)
            await asyncio.sleep(0)

    await asyncio.gather(drain(0), drain(1), drain(0), drain(1))
    assert not set(taken[0]) & set(taken[1])
    assert sorted(taken[0] + taken[1]) == sorted(leads)
    assert len(taken[0] + taken[1]) == len(leads)
    assert taken[0] and taken[1]  # both dialers got work
    for lead_id in leads:
        assert (await LeadRepository(first).get(lead_id)).status == LeadStatus.DIALING


async def test_claim_skips_rows_another_dialer_is_claiming(pg: tuple[Database, Database]) -> None:
    first, second = pg
    campaign, leads = await seed(first, 10)
    async with first.engine.begin() as conn:
        # Dialer A is mid-claim: it holds row locks on five due leads.
        locked = [r.id for r in await conn.execute(
            text("SELECT id FROM leads ORDER BY next_attempt_at, id LIMIT 5 FOR UPDATE"))]
        # Dialer B neither waits for A nor takes A's rows.
        claims = await asyncio.wait_for(
            SqlLeadQueue(second, lease_ttl=TTL).claim(campaign, NOW, 100), timeout=30)
    assert len(locked) == 5
    assert {c.lead_id for c in claims} == set(leads) - set(locked)


async def test_dead_dialers_lease_expires(pg: tuple[Database, Database]) -> None:
    first, second = pg
    campaign, _ = await seed(first, 3)
    dead, alive = SqlLeadQueue(first, lease_ttl=TTL), SqlLeadQueue(second, lease_ttl=TTL)
    claims = await dead.claim(campaign, NOW, 10)
    assert len(claims) == 3
    # Within the TTL nothing is reaped and nothing is claimable.
    assert await alive.reap_expired(NOW + TTL - timedelta(seconds=1), NOW + TTL) == 0
    assert await alive.claim(campaign, NOW + TTL, 10) == []
    # The holder renews one lease; the other two lapse.
    kept = await dead.renew(claims[0], NOW + timedelta(minutes=1))
    assert kept is not None
    later = NOW + TTL + timedelta(seconds=1)
    assert await alive.reap_expired(later, requeue_at=later) == 2
    reclaimed = await alive.claim(campaign, later, 10)
    assert {c.lead_id for c in reclaimed} == {claims[1].lead_id, claims[2].lead_id}
    # The dead dialer's writes are fenced off: it learns it lost the lease.
    assert await dead.renew(claims[1], later) is None
    assert not await dead.release(claims[2], LeadStatus.EXHAUSTED, later)
    assert (await LeadRepository(first).get(claims[2].lead_id)).status == LeadStatus.DIALING
    # The renewed lease is intact and can be released normally.
    assert await dead.release(kept, LeadStatus.BOOKED, later)
    assert (await LeadRepository(first).get(kept.lead_id)).status == LeadStatus.BOOKED


async def test_leads_a_previous_run_here_was_dialing_are_requeued_at_start(
        sqlite: Database) -> None:
    campaign, leads = await seed(sqlite, 4)
    host = default_owner().split(":", 1)[0]
    dead_here = SqlLeadQueue(sqlite, lease_ttl=TTL, owner=f"{host}:1:dead")
    elsewhere = SqlLeadQueue(sqlite, lease_ttl=TTL, owner="other-host:1:alive")
    dialing, in_call = await dead_here.claim(campaign, NOW, 2)
    assert await dead_here.renew(in_call, NOW, in_call=True) is not None
    [theirs] = await elsewhere.claim(campaign, NOW, 1)
    queue = SqlLeadQueue(sqlite, lease_ttl=TTL)  # this run, on the same host
    [ours] = await queue.claim(campaign, NOW, 1)
    assert await queue.reclaim_previous_run(NOW, NOW + timedelta(minutes=5)) == 1
    rows = {lead: await LeadRepository(sqlite).get(lead) for lead in leads}
    assert (rows[dialing.lead_id].status, rows[dialing.lead_id].next_attempt_at) == (
        LeadStatus.RETRY, NOW + timedelta(minutes=5))
    assert rows[dialing.lead_id].lease_owner is None
    # a call in progress may be resumed; another host's and our own leases are theirs
    assert rows[in_call.lead_id].status == LeadStatus.IN_CALL
    assert rows[theirs.lead_id].status == rows[ours.lead_id].status == LeadStatus.DIALING


async def test_claim_respects_due_time_and_validates(sqlite: Database) -> None:
    campaign, _ = await seed(sqlite, 2, due=NOW + timedelta(hours=1))
    queue = SqlLeadQueue(sqlite, lease_ttl=TTL)
    assert await queue.claim(campaign, NOW, 10) == []
    assert len(await queue.claim(campaign, NOW + timedelta(hours=1), 10)) == 2
    with pytest.raises(ValidationError, match="limit"):
        await queue.claim(campaign, NOW, 0)
    with pytest.raises(ValidationError, match="aware"):
        await queue.claim(campaign, datetime(2026, 1, 1), 1)
    with pytest.raises(ValidationError):
        SqlLeadQueue(sqlite, lease_ttl=timedelta(0))


async def test_a_due_callback_is_claimed_before_new_leads_of_higher_priority(
        sqlite: Database) -> None:
    campaign = await CampaignRepository(sqlite).create("callbacks-first")
    leads = LeadRepository(sqlite)
    ids = {}
    for i, (name, priority, due) in enumerate([("urgent new", 9, NOW - timedelta(hours=2)),
                                               ("asked for a callback", 0, NOW),
                                               ("callback not due yet", 0, NOW + timedelta(hours=1))]):
        contact = await ContactRepository(sqlite).upsert(ContactInput(f"+1212555{i:04d}", name=name))
        ids[name] = (await leads.add(campaign.id, contact.id, next_attempt_at=due,
                                     priority=priority)).id
    for name in ("asked for a callback", "callback not due yet"):
        row = await leads.get(ids[name])
        await leads.set_status(ids[name], LeadStatus.CALLBACK, next_attempt_at=row.next_attempt_at)
    queue = SqlLeadQueue(sqlite, lease_ttl=TTL)
    [first] = await queue.claim(campaign.id, NOW, 1)
    assert first.lead_id == ids["asked for a callback"]
    [second] = await queue.claim(campaign.id, NOW, 1)
    assert second.lead_id == ids["urgent new"]  # then priority, as before
    assert await queue.claim(campaign.id, NOW, 1) == []  # a callback waits for its time


# --- the dialer's decisions, on SQLite, with fakes for the outside ------------------------------


class Directory:
    def __init__(self, targets: dict[uuid.UUID, LeadTarget | None]) -> None:
        self.targets = targets
        self.attempts: dict[uuid.UUID, list[datetime]] = {}

    async def target(self, claim: LeadClaim) -> LeadTarget | None:
        return self.targets.get(claim.lead_id)

    async def attempt_times(self, lead_id: uuid.UUID, since: datetime) -> list[datetime]:
        return [t for t in self.attempts.get(lead_id, []) if t >= since]


class Placer:
    def __init__(self, fail: set[str] | None = None) -> None:
        self.placed: list[tuple[LeadClaim, LeadTarget]] = []
        self.fail = fail or set()

    async def place(self, claim: LeadClaim, target: LeadTarget) -> None:
        if target.phone in self.fail:
            raise ReautodError("Twilio said no", code="twilio_failed")
        self.placed.append((claim, target))


class Log:
    def __init__(self) -> None:
        self.entries: list[BlockedDial] = []

    async def blocked(self, entry: BlockedDial) -> None:
        self.entries.append(entry)


async def test_dialer_checks_dnc_window_and_places(sqlite: Database) -> None:
    campaign, leads = await seed(sqlite, 5)
    ok, dnc_lead, night, no_tz, failing = leads
    directory = Directory({
        ok: LeadTarget("+12125550000", "America/New_York", "NY"),
        dnc_lead: LeadTarget("+12125550001", "America/New_York", "NY"),
        night: LeadTarget("+12125550002", "Pacific/Honolulu", "HI"),  # 06:00 there
        no_tz: LeadTarget("+12125550003", None, None),
        failing: LeadTarget("+12125550004", "America/New_York", "NY"),
    })
    storage = MemoryDncStorage()
    dnc = DncList(storage)
    await dnc.add("+12125550001", source=DncChannel.SPOKEN, now=NOW, scope=DncScope.GLOBAL)
    placer, dial_log = Placer(fail={"+12125550004"}), Log()
    dialer = Dialer(SqlLeadQueue(sqlite, lease_ttl=TTL), directory, placer, dnc, dial_log,
                    limiter=ConcurrencyLimiter(per_box=10), bucket=TokenBucket(10, burst=10))
    plan = CampaignPlan(campaign, max_concurrent=5)
    report = await dialer.tick(plan, NOW, monotonic=0.0)
    assert report.claimed == 5 and report.dialed == 1
    assert [p[1].phone for p in placer.placed] == ["+12125550000"]
    reasons = {b.lead_id: b for b in dial_log.entries}
    assert reasons[dnc_lead].reason is BlockReason.DNC
    assert reasons[night].reason is BlockReason.WINDOW
    assert reasons[night].rule_code in ("federal_hours", "campaign_hours")
    assert reasons[no_tz].reason is BlockReason.NO_TIMEZONE
    assert reasons[failing].reason is BlockReason.PLACE_FAILED
    repo = LeadRepository(sqlite)
    assert (await repo.get(ok)).status == LeadStatus.DIALING
    assert (await repo.get(ok)).attempts == 1
    assert (await repo.get(dnc_lead)).status == LeadStatus.DNC
    night_row = await repo.get(night)
    assert night_row.status == LeadStatus.RETRY and night_row.attempts == 0
    assert night_row.next_attempt_at == reasons[night].retry_at
    assert night_row.next_attempt_at is not None and night_row.next_attempt_at > NOW
    assert (await repo.get(no_tz)).status == LeadStatus.FAILED
    assert (await repo.get(failing)).status == LeadStatus.RETRY
    assert dialer.limiter.active == 1

    # The call ends unanswered: the lead is queued for a retry per the policy.
    directory.attempts[ok] = [NOW]
    later = NOW + timedelta(minutes=1)
    assert await dialer.heartbeat(later) == []
    status = await dialer.call_ended(plan, ok, Outcome.NO_ANSWER, None, later)
    assert status is LeadStatus.RETRY
    row = await repo.get(ok)
    assert row.status == LeadStatus.RETRY and row.next_attempt_at == later + timedelta(hours=2)
    assert dialer.limiter.active == 0 and dialer.in_flight == {}


async def test_dialer_respects_slots_and_rate(sqlite: Database) -> None:
    campaign, leads = await seed(sqlite, 6)
    directory = Directory({lead: LeadTarget(f"+1212555{i:04d}", "America/New_York", "NY")
                           for i, lead in enumerate(leads)})
    placer = Placer()
    dialer = Dialer(SqlLeadQueue(sqlite, lease_ttl=TTL), directory, placer,
                    DncList(MemoryDncStorage()), Log(),
                    limiter=ConcurrencyLimiter(per_box=3), bucket=TokenBucket(1, burst=2))
    plan = CampaignPlan(campaign, max_concurrent=3,
                        window=CampaignWindow(time(8), time(21), frozenset(range(7))))
    assert (await dialer.tick(plan, NOW, monotonic=0.0)).dialed == 2  # burst of 2
    assert (await dialer.tick(plan, NOW, monotonic=0.5)).dialed == 0  # no token yet
    assert (await dialer.tick(plan, NOW, monotonic=1.0)).dialed == 1
    assert (await dialer.tick(plan, NOW, monotonic=10.0)).dialed == 0  # 3 slots busy
    assert len(placer.placed) == 3
    await dialer.call_ended(plan, placer.placed[0][0].lead_id, Outcome.ANSWERED,
                            LeadStatus.QUALIFIED, NOW)
    assert (await dialer.tick(plan, NOW, monotonic=11.0)).dialed == 1
    statuses = [(await LeadRepository(sqlite).get(lead)).status for lead in leads]
    assert statuses.count(LeadStatus.DIALING) == 3
    assert statuses.count(LeadStatus.QUALIFIED) == 1


async def test_a_callback_the_agent_scheduled_survives_the_calls_end(sqlite: Database) -> None:
    """The conversation moved the lead during the call (a callback at the agreed time): the
    dialer's release after the call is fenced out and says so, leaving the callback alone."""
    campaign, [lead] = await seed(sqlite, 1)
    directory = Directory({lead: LeadTarget("+12125550000", "America/New_York", "NY")})
    dialer = Dialer(SqlLeadQueue(sqlite, lease_ttl=TTL), directory, Placer(),
                    DncList(MemoryDncStorage()), Log(),
                    limiter=ConcurrencyLimiter(per_box=3), bucket=TokenBucket(1, burst=1))
    plan = CampaignPlan(campaign, window=CampaignWindow(time(8), time(21), frozenset(range(7))))
    assert (await dialer.tick(plan, NOW, monotonic=0.0)).dialed == 1
    await dialer.call_answered(lead, NOW + timedelta(seconds=20))
    callback_at = NOW + timedelta(days=1, hours=3)
    row = await LeadRepository(sqlite).get(lead)
    await StoreCallEffects(sqlite).schedule_callback(
        LeadContext("+12125550000", "America/New_York", lead_id=lead, contact_id=row.contact_id),
        callback_at, reason="the caller asked")
    directory.attempts[lead] = [NOW]
    status = await dialer.call_ended(plan, lead, Outcome.ANSWERED, None, NOW + timedelta(minutes=3))
    assert status is None and dialer.limiter.active == 0
    row = await LeadRepository(sqlite).get(lead)
    assert (row.status, row.next_attempt_at) == (LeadStatus.CALLBACK, callback_at)


@dataclass(frozen=True)
class Refusal:
    rule_code: str
    detail: str
    retry_at: datetime | None


class Budget:
    """The budget check: refuses with `refusal` while it is set; records what it was asked."""

    def __init__(self) -> None:
        self.refusal: Refusal | None = None
        self.asked: list[uuid.UUID | None] = []

    async def check_dial(self, campaign_id: uuid.UUID | None) -> Refusal | None:
        self.asked.append(campaign_id)
        return self.refusal


async def test_a_refusing_budget_dials_nothing_and_records_the_block(sqlite: Database) -> None:
    campaign, leads = await seed(sqlite, 3)
    directory = Directory({lead: LeadTarget(f"+1212555{i:04d}", "America/New_York", "NY")
                           for i, lead in enumerate(leads)})
    placer, dial_log, budget = Placer(), Log(), Budget()
    dialer = Dialer(SqlLeadQueue(sqlite, lease_ttl=TTL), directory, placer,
                    DncList(MemoryDncStorage()), dial_log, limiter=ConcurrencyLimiter(per_box=5),
                    bucket=TokenBucket(10, burst=10), budget=budget)
    plan = CampaignPlan(campaign, max_concurrent=5,
                        window=CampaignWindow(time(0), time(23, 59), frozenset(range(7))))
    day_end = NOW + timedelta(hours=8)
    budget.refusal = Refusal("budget_cap_day", "day budget of global is spent", day_end)
    report = await dialer.tick(plan, NOW, monotonic=0.0)
    assert report.dialed == 0 and placer.placed == [] and budget.asked == [campaign]
    (block,) = dial_log.entries
    assert (block.reason, block.rule_code, block.source) == (BlockReason.BUDGET,
                                                             "budget_cap_day", "budget")
    assert block.retry_at == day_end
    # the lead goes back due at once: raising the budget dials it without waiting for day_end
    assert (await LeadRepository(sqlite).get(block.lead_id)).next_attempt_at == NOW
    # while the same refusal lasts, ticks claim nothing and record nothing more
    for second in range(1, 5):
        await dialer.tick(plan, NOW + timedelta(seconds=second), monotonic=float(second))
    assert len(dial_log.entries) == 1
    # a different rule (the emergency stop) is recorded at once
    budget.refusal = Refusal("spending_stopped", "stopped by ops", None)
    await dialer.tick(plan, NOW + timedelta(seconds=5), monotonic=5.0)
    assert [b.rule_code for b in dial_log.entries] == ["budget_cap_day", "spending_stopped"]
    # resumed: the leads are dialed
    budget.refusal = None
    report = await dialer.tick(plan, NOW + timedelta(seconds=6), monotonic=6.0)
    assert report.dialed == 3 and len(placer.placed) == 3


class Erased:
    """ErasedNumbers: the numbers erased on request; records what it was asked."""

    def __init__(self, *numbers: str) -> None:
        self.numbers = set(numbers)
        self.asked: list[str] = []

    async def is_erased(self, phone_e164: str) -> bool:
        self.asked.append(phone_e164)
        return phone_e164 in self.numbers

    async def erased_among(self, phones: Iterable[str]) -> set[str]:
        return self.numbers & set(phones)


async def test_an_erased_number_is_never_dialed(sqlite: Database) -> None:
    campaign, (kept, erased) = await seed(sqlite, 2)
    directory = Directory({kept: LeadTarget("+12125550000", "America/New_York", "NY"),
                           erased: LeadTarget("+12125550001", "America/New_York", "NY")})
    placer, dial_log, register = Placer(), Log(), Erased("+12125550001")
    dialer = Dialer(SqlLeadQueue(sqlite, lease_ttl=TTL), directory, placer,
                    DncList(MemoryDncStorage()), dial_log,
                    limiter=ConcurrencyLimiter(per_box=10), bucket=TokenBucket(10, burst=10),
                    erased=register)
    report = await dialer.tick(CampaignPlan(campaign, max_concurrent=5), NOW, monotonic=0.0)
    assert report.dialed == 1 and [p[1].phone for p in placer.placed] == ["+12125550000"]
    [blocked] = dial_log.entries
    assert (blocked.lead_id, blocked.reason, blocked.rule_code) == (erased, BlockReason.ERASED,
                                                                    "erased")
    assert sorted(register.asked) == ["+12125550000", "+12125550001"]
    assert (await LeadRepository(sqlite).get(erased)).status == LeadStatus.DNC


async def paced(sqlite: Database, load: LoadGovernor,
                limiter: ConcurrencyLimiter) -> tuple[Dialer, CampaignPlan]:
    """A dialer paced by `load` over 8 due leads of one campaign, open all day."""
    campaign, leads = await seed(sqlite, 8)
    directory = Directory({lead: LeadTarget(f"+1212555{i:04d}", "America/New_York", "NY")
                           for i, lead in enumerate(leads)})
    dialer = Dialer(SqlLeadQueue(sqlite, lease_ttl=TTL), directory, Placer(),
                    DncList(MemoryDncStorage()), Log(), load=load,
                    limiter=limiter, bucket=TokenBucket(100, burst=8))
    return dialer, CampaignPlan(campaign, max_concurrent=8,
                                window=CampaignWindow(time(8), time(21), frozenset(range(7))))


async def test_the_dialer_paces_by_measured_voice_to_voice_and_engine_queues(
    sqlite: Database,
) -> None:
    now, depths = [0.0], {"llm": 0}
    load = LoadGovernor(slo_s=1.0, window_s=60, min_turns=3, max_queue=4,
                        queue_depths=lambda: depths, clock=lambda: now[0])
    dialer, plan = await paced(sqlite, load, ConcurrencyLimiter(per_box=8))

    def turns(*latencies: float) -> None:
        for v2v in latencies:
            load.on_turn(TurnRecord(call_id="c", index=0, speaker="agent", text="",
                                    confidence=None, started_at=NOW, ended_at=NOW,
                                    latencies={"voice_to_voice_s": v2v}))

    turns(1.4, 1.6, 1.2)  # over the SLO: nothing dialed, and the report says why
    held = await dialer.tick(plan, NOW, monotonic=0.0)
    assert held.dialed == 0 and "over the 1 s SLO" in (held.held_back or "")
    turns(*[0.9] * 27)  # the p90 comes down near the SLO: one a tick
    slowed = await dialer.tick(plan, NOW, monotonic=1.0)
    assert slowed.dialed == 1 and "near the 1 s SLO" in (slowed.held_back or "")
    depths["llm"] = 4  # a deep engine queue holds dials back whatever the latency
    assert (await dialer.tick(plan, NOW, monotonic=2.0)).dialed == 0
    depths["llm"], now[0] = 0, 120.0  # the slow turns aged out: full pace again
    recovered = await dialer.tick(plan, NOW, monotonic=3.0)
    assert recovered.dialed == 7 and recovered.held_back is None


async def test_the_dialer_yields_to_gpu_memory_a_lowered_limit_and_inbound_callers(
    sqlite: Database,
) -> None:
    now, used = [0.0], [0.97]
    limit = AdmissionLimit(lambda: 8, recover_s=300, clock=lambda: now[0])
    load = LoadGovernor(slo_s=1.0, window_s=60, min_turns=3, max_queue=4, max_gpu_memory=0.9,
                        gpu_memory=lambda: used[0], admission=limit, inbound_reserve_s=60,
                        clock=lambda: now[0])
    limiter = ConcurrencyLimiter(per_box=8)
    dialer, plan = await paced(sqlite, load, limiter)

    held = await dialer.tick(plan, NOW, monotonic=0.0)
    assert held.dialed == 0 and "GPU memory 97% used" in (held.held_back or "")
    used[0] = 0.5
    limit.out_of_memory("llm", live_calls=4)  # at most 3 live calls now
    lowered = await dialer.tick(plan, NOW, monotonic=1.0)
    assert lowered.dialed == 3 and limiter.active == 3
    assert "lowered to 3" in (lowered.held_back or "")
    now[0] = 600.0  # two quiet periods: the limit is back to 5
    load.inbound_shed()  # a caller was turned away: one slot stays free for them
    reserved = await dialer.tick(plan, NOW, monotonic=2.0)
    assert reserved.dialed == 1 and limiter.active == 4
    assert "kept for inbound callers" in (reserved.held_back or "")

"""The cost part as the daemon builds it: the price book from the config, the guard started from
the database, a call metered end to end into the ledger and the budget, alerts on the bus, the
dial check, Twilio's price of a dialed call reconciled, and a config naming an ElevenLabs plan
the book does not price refused."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reautod.call_events import CallInfo, CallState, TurnRecord
from reautod.config import Settings
from reautod.cost.part import CostPart
from reautod.cost.reconcile import ReportedPrice
from reautod.cost.results import BudgetAlert, CostUpdate
from reautod.daemon import main as daemon_main
from reautod.dialogue.part import json_model_of
from reautod.engines.base import ChatMessage
from reautod.engines.catalog import PROFILES
from reautod.engines.llm import LlamaLLM
from reautod.errors import ConfigError
from reautod.observability.events import EventBus
from reautod.observability.metrics import Metrics
from reautod.store.database import Database
from reautod.store.enums import AmdResult, BudgetPeriod, CostService
from reautod.store.repositories import CallRepository
from reautod.store.repositories.costs import CostRepository
from tests.cost.fakes import Collect
from tests.store.factories import call_started, campaign_contact_lead

T0 = datetime(2026, 11, 20, 17, tzinfo=UTC)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_metered_call_fills_the_budget_alerts_and_stops_dials(db: Database) -> None:
    sink, bus = Collect(), EventBus()
    events = bus.subscribe(["cost", "budget"])
    settings = Settings(cost={"alert_thresholds_pct": [50, 100]})
    part = CostPart(settings, db, sink, Metrics(), bus, clock=lambda: T0)
    await part.start()
    try:
        assert await part.check_dial(None) is None
        # a cap of $0.0001 (100 micro-dollars): one call's local compute passes it
        await part.guard.set_budget(BudgetPeriod.DAY, 100, None, timezone="UTC", actor="test")
        info = CallInfo(call_id="sim-part", stream_sid="MZ", call_sid=None, lead_name="Ann",
                        campaign=None, direction="outbound", state=CallState.LISTENING,
                        started_at=T0)
        part.observer.on_call_started(info)
        part.tracker.usage_meter("sim-part").llm(100, 20, 2.0)
        await asyncio.sleep(0)
        part.observer.on_turn(TurnRecord("sim-part", 0, "agent", "hi", None, T0, T0))
        part.observer.on_call_ended("sim-part", "caller hung up", 5.0)
        await part.observer.close()
        await part.ledger.stop()  # every row counted by the guard
        spent = sum(r.amount_micros for r in sink.costs())
        assert spent > 100
        (status,) = await part.guard.status()
        assert status.spent_micros == spent and status.at_cap
        refusal = await part.check_dial(uuid.uuid4())
        assert refusal is not None and refusal.rule_code == "budget_cap_day"
        # the turn came before the campaign lookup ended: its rows waited for the end's update
        seen = []
        while len(seen) < 3:
            seen.append(await asyncio.wait_for(events.get(), 5))
        alerts = [e.data for e in seen if e.event == "budget.alert"]
        updates = [e.data for e in seen if e.event == "cost.update"]
        assert all(isinstance(a, BudgetAlert) for a in alerts)
        assert all(isinstance(u, CostUpdate) for u in updates)
        assert [(a.kind, a.threshold_pct) for a in alerts] == [("threshold", 50),
                                                               ("threshold", 100)]
        assert [u.call_id for u in updates] == ["sim-part"]
        assert updates[-1].cost_micros == spent
    finally:
        await part.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_premium_plan_the_price_book_lacks_is_a_config_error(
        db: Database, tmp_path: Path) -> None:
    settings = Settings(elevenlabs={"enabled": True, "plan": "platinum"})
    with pytest.raises(ConfigError) as err:
        CostPart(settings, db, Collect(), Metrics(), EventBus())
    assert err.value.problems[0][0] == "elevenlabs.plan"
    missing = Settings(cost={"price_book": str(tmp_path / "nope.toml")})
    with pytest.raises(ConfigError, match="cannot read price book"):
        CostPart(missing, db, Collect(), Metrics(), EventBus())


class Prices:
    """Twilio's Call resource as the reconciler reads it; records the sids asked for."""

    def __init__(self, micros: int) -> None:
        self.micros = micros
        self.asked: list[str] = []

    async def call_price(self, call_sid: str) -> ReportedPrice:
        self.asked.append(call_sid)
        return ReportedPrice(call_sid, self.micros, "USD", "completed")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_dialed_call_is_billed_for_amd_and_its_price_reconciled(db: Database) -> None:
    campaign, contact, lead = await campaign_contact_lead(db)
    start = call_started(campaign, contact, lead, at=T0, call_sid="CA9")
    await CallRepository(db).write([start])  # the dialer writes the row before dialing
    await CallRepository(db).set_result(start.call_id, amd_result=AmdResult.HUMAN)
    sink, metrics = Collect(), Metrics()
    settings = Settings(cost={"reconcile_delays_s": [0.0]})
    part = CostPart(settings, db, sink, metrics, EventBus(), clock=lambda: T0)
    prices = Prices(50_000)
    part.reconcile_with(prices)
    await part.start()
    try:
        call = str(start.call_id)
        part.observer.on_call_started(CallInfo(
            call_id=call, stream_sid="MZ", call_sid="CA9", lead_name="Ann", campaign="spring",
            direction="outbound", state=CallState.LISTENING, started_at=T0))
        part.observer.on_call_ended(call, "caller hung up", 61.0)
        await part.observer.close()
        for _ in range(100):
            if prices.asked and (await CostRepository(db).ledger_error(T0)).calls:
                break
            await asyncio.sleep(0.05)
        assert prices.asked == ["CA9"]
        # two started minutes metered (voice $0.028 + media stream), all for the campaign
        voice = [r for r in sink.costs()
                 if r.provider == "twilio" and r.service is CostService.TELEPHONY]
        assert [(r.quantity, r.amount_micros) for r in voice] == [(2, 28_000)]
        assert {r.campaign_id for r in sink.costs()} == {campaign.id}
        amd = [r for r in sink.costs() if r.service is CostService.AMD]
        assert [r.amount_micros for r in amd] == [7_500]  # AMD ran: billed once
        error = await CostRepository(db).ledger_error(T0)
        assert (error.calls, error.reported_micros) == (1, 50_000)
    finally:
        await part.close()


def test_check_config_validates_the_price_book(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    book = tmp_path / "prices.toml"
    book.write_text('[[books]]\nversion = "mine"\neffective_from = 2026-01-01\n')
    config = tmp_path / "reautod.toml"
    config.write_text(f'[cost]\nprice_book = "{book}"\n')
    assert daemon_main(["--config", str(config), "--check-config"]) == 2
    err = capsys.readouterr().err
    assert f"price book {book}: 3 problem(s)" in err and "books[0].twilio: Field required" in err
    config.write_text("")
    assert daemon_main(["--config", str(config), "--check-config"]) == 0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_the_dialogues_json_requests_are_metered_to_the_call(
        db: Database, test_models_dir: Path) -> None:
    """The dialogue's constrained-JSON extraction runs on the shared model beside the call's
    engines: `llm_usage` puts its tokens and compute on that call's meter."""
    part = CostPart(Settings(), db, Collect(), Metrics(), EventBus(), clock=lambda: T0)
    llm = await asyncio.to_thread(
        LlamaLLM.load, PROFILES["test"]["llm"].path_in(test_models_dir), n_ctx=512,
        n_gpu_layers=0, n_threads=1, queue_size=4, timeout_s=30, max_tokens=8)
    try:
        model = json_model_of(llm, part.llm_usage)
        assert model is not None
        call = uuid.uuid4()  # the agent asks with the store's id of the call
        part.tracker.begin_call(call, None, direction="outbound", started_at=T0)
        schema = {"type": "object", "properties": {"is_owner": {"enum": ["yes", "no"]}},
                  "required": ["is_owner"], "additionalProperties": False}
        await model.complete_json([ChatMessage("user", "Do you own it? Yes.")], schema,
                                  call_id=str(call), max_tokens=16)
        snap = part.tracker.meter(call).snapshot()
        assert snap.llm_prompt_tokens > 0 and 0 < snap.llm_completion_tokens <= 16
    finally:
        await llm.close()
        await part.close()

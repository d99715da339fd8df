from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from reautod.cost.meters import CallMeter
from reautod.cost.pricebook import load_price_books
from reautod.cost.results import CostUpdate
from reautod.errors import ValidationError
from reautod.store.apply import apply_records
from reautod.store.database import Database
from reautod.store.enums import CostService
from reautod.store.repositories import CostRepository
from tests.store.factories import call_started, campaign_contact_lead

T0 = datetime(2026, 11, 21, 15, tzinfo=UTC)
BOOK = load_price_books().at(T0)


def metered_call() -> CallMeter:
    meter = CallMeter(BOOK, uuid.uuid4(), uuid.uuid4())
    meter.stt(audio_s=3.0, compute_s=0.2)  # 0.2 s x 83.33 micros/s ($0.30/h)
    meter.llm(prompt_tokens=400, completion_tokens=60, compute_s=0.8)  # 0.8 s x 125 ($0.45/h)
    meter.tts_local(characters=80, audio_s=5.0, compute_s=0.1)
    meter.tts_premium(characters=120, audio_s=7.5, plan="pro", model="eleven_flash_v2_5")
    meter.telephony(61.0)  # two started minutes
    meter.amd()
    return meter


def test_a_call_is_priced_by_the_book_in_integer_micro_dollars() -> None:
    meter = metered_call()
    snap = meter.snapshot()
    assert snap.by_service["stt"] == 17  # 16.67 rounded once
    assert snap.by_service["llm"] == 100
    assert snap.by_service["tts"] == 4 + 6_000  # local 0.1 s x 41.67 + 120 chars x 50
    assert snap.by_service["telephony"] == 2 * 14_000 + 2 * 4_000  # voice + media stream
    assert snap.by_service["amd"] == 7_500
    assert snap.premium_micros == 6_000
    assert snap.total_micros == sum(snap.by_service.values())
    assert snap.tts_characters == {"local": 80, "premium": 120}
    assert (snap.llm_prompt_tokens, snap.llm_completion_tokens) == (400, 60)
    assert all(isinstance(v, int) for v in snap.by_service.values())
    event = CostUpdate.of(snap).model_dump(mode="json")  # the cost.update payload the TUI reads
    assert event["cost_micros"] == snap.total_micros and event["premium_micros"] == 6_000


def test_flushes_write_deltas_that_add_up_to_the_total_rounded_once() -> None:
    meter = CallMeter(BOOK, uuid.uuid4(), None)
    rows = []
    for _ in range(7):  # 7 x 0.01 s x 41.667 micros/s: 0.4167 each, rounds to 0 alone
        meter.tts_local(characters=5, audio_s=0.3, compute_s=0.01)
        rows += meter.flush(T0)
    assert sum(r.amount_micros for r in rows) == meter.total_micros == 3  # round(2.9167)
    assert sum(r.quantity for r in rows) == Decimal("0.07")
    assert meter.flush(T0) == []  # nothing new
    assert len({r.event_id for r in rows}) == len(rows)


def test_telephony_grows_by_started_minutes_and_the_final_duration_tops_it_up() -> None:
    meter = CallMeter(BOOK, uuid.uuid4(), None)
    meter.telephony(10, media_stream=False)
    first = meter.flush(T0)
    assert [(r.quantity, r.amount_micros) for r in first] == [(1, 14_000)]
    meter.telephony(50, media_stream=False)  # still the first minute
    assert meter.flush(T0) == []
    meter.telephony_final(125, media_stream=False)
    (row,) = meter.flush(T0)
    assert (row.quantity, row.amount_micros) == (2, 28_000)  # minutes 2 and 3
    meter.telephony(30, media_stream=False)  # a late, smaller reading changes nothing
    assert meter.flush(T0) == []
    meter.recording(90)
    (row,) = meter.flush(T0)
    assert (row.service, row.quantity, row.amount_micros) == (CostService.RECORDING, 2, 5_000)


def test_unanswered_calls_cost_nothing_and_bad_readings_are_refused() -> None:
    meter = CallMeter(BOOK, uuid.uuid4(), None)
    meter.telephony_final(0)
    assert meter.flush(T0) == [] and meter.total_micros == 0
    for bad in (lambda: meter.stt(-1, 0), lambda: meter.tts_local(1, float("nan"), 0),
                lambda: meter.llm(-5, 0, 0.1), lambda: meter.tts_premium(
                    -1, 0, plan="pro", model="eleven_flash_v2_5")):
        with pytest.raises(ValidationError):
            bad()


async def test_rows_land_in_the_ledger_once_even_when_replayed(db: Database) -> None:
    campaign, contact, lead = await campaign_contact_lead(db)
    start = call_started(campaign, contact, lead, at=T0)
    meter = CallMeter(BOOK, start.call_id, campaign.id)
    meter.telephony(61)
    meter.tts_premium(characters=100, audio_s=6, plan="creator", model="eleven_flash_v2_5")
    rows = meter.flush(T0)

    async def write(conn: object) -> None:
        await apply_records(conn, [start, *rows])  # type: ignore[arg-type]

    await db.transaction(write)
    await db.transaction(write)  # a spool replay
    costs = CostRepository(db)
    assert await costs.spent_since(T0, campaign.id) == meter.total_micros
    assert await costs.spent_between(T0, None, campaign.id, tier="premium") == 5_000
    assert await costs.metered_telephony(start.call_id) == 28_000
    assert {r.service for r in rows} >= {CostService.TELEPHONY, CostService.TTS}

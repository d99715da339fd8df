"""Daily campaign stats (SQL on both backends) and `reautoctl db` / `reautoctl stats`."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from reautod.control import cli
from reautod.store.database import Database
from reautod.store.enums import AmdResult, CallOutcome, CallStatus, CostService, CostUnit
from reautod.store.records import CallEnded, CostRecorded, Record
from reautod.store.repositories import CallRepository
from reautod.store.schema import head_revision
from reautod.store.stats import daily_campaign_stats
from tests.store.conftest import TEST_DB_SETTINGS
from tests.store.factories import T0, call_started, campaign_contact_lead


async def seed(db: Database) -> uuid.UUID:
    """Day 1: 3 calls (2 answered by humans: one booked, one qualified; 1 no answer); day 2: 1."""
    campaign, contact, lead = await campaign_contact_lead(db, name="roofing")
    records: list[Record] = []
    specs = [
        (T0, CallStatus.COMPLETED, CallOutcome.BOOKED, AmdResult.HUMAN, 60_000),
        (
            T0 + timedelta(hours=1),
            CallStatus.COMPLETED,
            CallOutcome.QUALIFIED,
            AmdResult.HUMAN,
            30_000,
        ),
        (T0 + timedelta(hours=2), CallStatus.NO_ANSWER, CallOutcome.NO_ANSWER, None, None),
        (
            T0 + timedelta(days=1),
            CallStatus.COMPLETED,
            CallOutcome.VOICEMAIL,
            AmdResult.MACHINE_END_BEEP,
            20_000,
        ),
    ]
    for at, status, outcome, amd, duration in specs:
        start = call_started(campaign, contact, lead, at=at)
        answered = at + timedelta(seconds=10) if duration else None
        records += [
            start,
            CallEnded(
                start.call_id,
                at + timedelta(minutes=2),
                status,
                outcome=outcome,
                amd_result=amd,
                answered_at=answered,
                duration_ms=duration,
            ),
            CostRecorded(
                uuid.uuid4(),
                CostService.TELEPHONY,
                "twilio",
                CostUnit.MINUTES,
                Decimal(2),
                Decimal(14_000),
                28_000,
                at,
                call_id=start.call_id,
                campaign_id=campaign.id,
            ),
        ]
    await CallRepository(db).write(records)
    return campaign.id


async def test_daily_stats(db: Database) -> None:
    campaign_id = await seed(db)
    rows = await daily_campaign_stats(db, T0 - timedelta(days=1))
    assert [
        (r.day, r.campaign, r.attempts, r.connects, r.human_answers, r.qualified, r.booked)
        for r in rows
    ] == [
        ("2026-11-20", "roofing", 3, 2, 2, 2, 1),
        ("2026-11-21", "roofing", 1, 1, 0, 0, 0),
    ]
    assert rows[0].average_duration_s == 45.0
    assert (rows[0].cost_micros, rows[0].cost_per_call_micros) == (84_000, 28_000)
    assert rows[0].campaign_id == campaign_id
    assert await daily_campaign_stats(db, T0 + timedelta(days=2)) == []
    assert await daily_campaign_stats(db, T0 - timedelta(days=1), uuid.uuid4()) == []


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_db_commands_on_the_embedded_default(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REAUTOD_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)  # migrations are found from the code's location, not the cwd
    code, out, _ = run_cli(capsys, "--json", "db", "current")
    assert code == 0 and json.loads(out)["current"] is None
    code, out, _ = run_cli(capsys, "db", "upgrade")
    assert code == 0 and head_revision() in out
    assert (tmp_path / "state" / "reautod.db").exists()
    code, out, _ = run_cli(capsys, "--json", "db", "history")
    assert code == 0 and json.loads(out)[0]["current"] is True
    code, out, _ = run_cli(capsys, "--json", "db", "downgrade", "base")
    assert code == 0 and json.loads(out)["to"] is None
    code, _, err = run_cli(capsys, "db", "upgrade", "nonexistent")
    assert code == 1 and "migration refused" in err


def test_stats_command(
    capsys: pytest.CaptureFixture[str],
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REAUTOD_DATABASE_URL", db_url)
    code, _, err = run_cli(capsys, "stats")
    assert code == 1 and "reautoctl db upgrade" in err  # empty schema: says what to run
    assert run_cli(capsys, "db", "upgrade")[0] == 0

    async def seed_it() -> None:
        db = Database(db_url, TEST_DB_SETTINGS)
        await db.open()
        try:
            await seed(db)
        finally:
            await db.close()

    asyncio.run(seed_it())

    code, out, _ = run_cli(capsys, "stats", "--since", "2026-11-20", "--json")
    assert code == 0
    data = json.loads(out)
    assert [(d["day"], d["attempts"], d["booked"]) for d in data["days"]] == [
        ("2026-11-20", 3, 1),
        ("2026-11-21", 1, 0),
    ]
    # 4 calls of one lead at $0.028 each; that lead qualified and booked
    assert data["cost"] == {"total_micros": 112_000, "calls": 4, "leads": 1,
                            "qualified_leads": 1, "bookings": 1, "per_call_micros": 28_000,
                            "per_lead_micros": 112_000, "per_qualified_lead_micros": 112_000,
                            "per_booking_micros": 112_000}
    assert data["cost_by_tier"] == [{"tier": "local", "calls": 4, "total_micros": 112_000,
                                     "per_call_micros": 28_000}]
    code, out, _ = run_cli(capsys, "stats", "--since", "2026-11-20")
    assert code == 0 and "PER BOOKING" in out and "$0.1120" in out
    code, out, _ = run_cli(capsys, "stats", "--since", "2026-11-21", "--campaign", "roofing"
    )
    assert code == 0 and "roofing" in out and "$0.0280" in out and "2026-11-20" not in out
    code, _, err = run_cli(capsys, "stats", "--campaign", "nope")
    assert code == 1 and "no campaign named 'nope'" in err
    code, _, err = run_cli(capsys, "stats", "--since", "yesterday")
    assert code == 1 and "not a date" in err
    code, out, _ = run_cli(capsys, "stats", "--since", "2099-01-01")
    assert code == 0 and "no calls since" in out

"""`reautoctl budget ...` against the real control server serving the budget methods."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reautod.control.cli import main
from reautod.control.client import ControlClient
from reautod.control.server import ControlServer
from reautod.cost.budgets import BudgetGuard
from reautod.cost.control import budget_methods
from reautod.cost.counters import MemoryCounters
from reautod.cost.results import BudgetStatusResult
from reautod.errors import ReautodError
from reautod.observability.events import EventBus
from reautod.store.database import Database
from reautod.store.repositories import AuditRepository, BudgetRepository, CampaignRepository
from reautod.store.repositories.costs import CostRepository


@pytest.fixture
async def served(db: Database) -> AsyncIterator[tuple[Path, BudgetGuard]]:
    await CampaignRepository(db).create("spring")
    guard = BudgetGuard(BudgetRepository(db), CostRepository(db), MemoryCounters(),
                        clock=lambda: datetime(2026, 11, 20, 17, tzinfo=UTC))
    await guard.start()
    path = Path(os.environ["XDG_RUNTIME_DIR"]) / "c.sock"
    server = ControlServer(path, budget_methods(guard, CampaignRepository(db),
                                                default_timezone="America/Chicago"), EventBus())
    await server.start()
    try:
        yield path, guard
    finally:
        await server.close()


async def reautoctl(path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = await asyncio.to_thread(main, ["--socket", str(path), *args])
    return code, capsys.readouterr().out


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_budget_commands_set_show_stop_and_resume(
        served: tuple[Path, BudgetGuard], capsys: pytest.CaptureFixture[str], db: Database) -> None:
    path, guard = served
    code, out = await reautoctl(path, capsys, "budget", "status")
    assert code == 0 and "no budgets set" in out
    code, out = await reautoctl(path, capsys, "budget", "set", "day", "$25.50",
                                "--campaign", "spring")
    assert code == 0 and "day budget of spring set to $25.50 (America/Chicago)" in out
    code, out = await reautoctl(path, capsys, "budget", "set", "month", "500", "--timezone",
                                "Europe/Berlin")
    assert code == 0
    code, out = await reautoctl(path, capsys, "budget", "status")
    assert "spring" in out and "(site-wide)" in out and "$25.50" in out and "$500.00" in out
    code, out = await reautoctl(path, capsys, "--json", "budget", "status")
    status = BudgetStatusResult.model_validate(json.loads(out))  # the typed contract
    assert {(b.campaign, b.period.value, b.limit_micros) for b in status.budgets} == {
        ("spring", "day", 25_500_000), (None, "month", 500_000_000)}
    code, out = await reautoctl(path, capsys, "budget", "stop", "--reason", "card lost")
    assert code == 0 and "spending stopped" in out
    assert guard.stopped and await guard.check_dial(None) is not None
    code, out = await reautoctl(path, capsys, "budget", "status")
    assert "SPENDING STOPPED" in out and "card lost" in out
    code, out = await reautoctl(path, capsys, "budget", "resume")
    assert code == 0 and "resumed" in out and not guard.stopped
    code, out = await reautoctl(path, capsys, "budget", "remove", "month")
    assert code == 0 and "month budget of global removed" in out
    actions = [e.action for e in await AuditRepository(db).recent()]
    assert actions[:5] == ["budget.remove", "budget.resume", "budget.stop", "budget.set",
                           "budget.set"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_bad_input_gets_clear_errors_and_changes_nothing(
        served: tuple[Path, BudgetGuard], capsys: pytest.CaptureFixture[str]) -> None:
    path, guard = served
    async with ControlClient(path) as client:
        for params, needle in [
            ({"period": "day", "limit": "12.1234567"}, "six decimal places"),
            ({"period": "day", "limit": "lots"}, "not a decimal"),
            ({"period": "day", "limit": "5", "timezone": "Mars/Base"}, "Mars/Base"),
            ({"period": "fortnight", "limit": "5"}, "period"),
            ({"period": "day", "limit": "5", "campaign": "nope"}, "nope"),
            ({"period": "day", "limit": "5", "actor": "a b;rm"}, "actor"),
        ]:
            with pytest.raises(ReautodError) as info:
                await client.call("budget.set", params)
            assert needle in info.value.message
    code, _ = await reautoctl(path, capsys, "budget", "remove", "week")
    assert code == 1
    assert await guard.status() == []

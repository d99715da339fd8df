"""The store's control methods, called as the control server calls them."""

from __future__ import annotations

import json
from pathlib import Path

from reautod.control.protocol import encode_result
from reautod.methods import NoParams
from reautod.store.control import DailyStatsParams, store_methods
from reautod.store.database import Database
from reautod.store.results import DailyStats, DbStatus
from reautod.store.writebehind import WriteBehind
from tests.store.conftest import TEST_DB_SETTINGS
from tests.store.test_stats_cli import seed


def wire(result: object) -> object:
    return json.loads(encode_result(result))


async def test_db_status_and_daily_stats(db: Database, tmp_path: Path) -> None:
    wb = WriteBehind(db, tmp_path / "spool", queue_size=10)
    await wb.start()
    try:
        methods = {m.name: m for m in store_methods(db, wb)}
        # as a client reads them: the JSON the socket sends, parsed with the result model
        status = DbStatus.model_validate(wire(await methods["db.status"].handler(NoParams())))
        assert status.reachable and status.up_to_date and status.backend == db.backend
        assert status.write_behind is not None and status.write_behind.dropped == 0
        await seed(db)
        params = methods["stats.daily"].params.model_validate(
            {"campaign": "roofing", "since": "2026-11-20"}
        )
        assert isinstance(params, DailyStatsParams)
        daily = DailyStats.model_validate(wire(await methods["stats.daily"].handler(params)))
        assert [(d.day, d.attempts) for d in daily.days] == [
            ("2026-11-20", 3),
            ("2026-11-21", 1),
        ]
    finally:
        await wb.stop()


async def test_db_status_reports_an_unreachable_database() -> None:
    broken = Database("postgresql+psycopg://postgres@127.0.0.1:1/none", TEST_DB_SETTINGS)
    broken._engine = broken._create_engine(foreign_keys=True)  # opened earlier, now unreachable
    try:
        status = DbStatus.model_validate(wire(await store_methods(broken)[0].handler(NoParams())))
        assert status.reachable is False and status.error and "127.0.0.1:1" in status.error
        assert status.revision is None
    finally:
        await broken.close()

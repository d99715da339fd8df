"""Retention per data type, walked forward with a controlled clock on both backends: each limit
removes its data on the day it passes and not a day before, files before rows."""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from reautod.security.keys import KeyRing, generate_key_text
from reautod.security.retention import RetentionJob, RetentionSettings, run_daily
from reautod.store import models as m
from reautod.store.database import Database
from reautod.store.repositories._base import table
from reautod.store.repositories.audit import AuditRepository
from reautod.store.types import utcnow
from tests.security.people import ALICE, person, record

SETTINGS = RetentionSettings(recordings_days=60, transcripts_days=90, call_metadata_days=365,
                             audit_days=400, export_archives_days=30)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.start = self.now = now

    def __call__(self) -> datetime:
        return self.now

    def at(self, days: float) -> Clock:
        self.now = self.start + timedelta(days=days)
        return self


async def count(db: Database, model: type[m.Base], *where: object) -> int:
    t = table(model)

    async def work(conn: object) -> int:
        query = select(func.count()).select_from(t).where(*where)  # type: ignore[arg-type]
        return int((await conn.execute(query)).scalar_one())  # type: ignore[attr-defined]

    return await db.read(work)


def exists(path: str) -> bool:
    return Path(path).exists()


def files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def make_file(path: Path, days_old: float = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    if days_old:
        old = path.stat().st_mtime - days_old * 86400
        os.utime(path, (old, old))
    return path


async def test_each_kind_goes_when_its_limit_passes(db: Database, tmp_path: Path) -> None:
    recordings, exports = tmp_path / "recordings", tmp_path / "exports"
    clock = Clock(utcnow())
    keys = KeyRing.parse(generate_key_text())
    alice = await person(db, recordings, keys, ALICE, "Alice", 1, at=clock.start)
    # a second recording of the inbound call, with its own 30-day date
    await record(db, recordings, keys, alice.call_ids[1], alice.audio, timedelta(days=30))
    day_dir = recordings / clock.start.strftime("%Y-%m-%d")
    orphan = make_file(day_dir / str(uuid.uuid4()) / "inbound.wav.sealed.partial")
    fresh_orphan = make_file(recordings / "2999-01-01" / str(uuid.uuid4()) / "inbound.wav")
    stale_archive = make_file(exports / "old.zip", days_old=31)
    new_archive = make_file(exports / "new.zip")
    audit = AuditRepository(db, clock=clock)
    await audit.append("uid:1000", "campaign.start")
    job = RetentionJob(db, SETTINGS, recordings_dir=recordings, exports_dir=exports, clock=clock)
    dated = await job.recordings.expired(clock.at(31)())
    assert len(dated) == 2  # the inbound call's two files

    clock.at(29)
    report = await job.run()
    assert (report.recordings, report.orphan_recording_files, report.transcripts,
            report.export_archives) == (0, 0, 0, 1)
    assert not stale_archive.exists() and new_archive.exists()
    assert len(files(recordings)) == 6  # 4 recordings, 2 orphans

    clock.at(31)
    report = await job.run()
    assert report.recordings == 2 and report.orphan_recording_files == 0
    assert not any(exists(r.path) for r in dated)
    assert await count(db, m.Recording, table(m.Recording).c.status == "deleted") == 2

    report = await job.run()  # the same moment again: nothing more
    assert (report.recordings, report.orphan_recording_files, report.transcripts) == (0, 0, 0)

    clock.at(61)
    report = await job.run()
    assert report.recordings == 2 and report.orphan_recording_files == 1
    assert not orphan.exists() and fresh_orphan.exists()
    assert files(recordings) == [fresh_orphan]
    assert await count(db, m.Turn) == 3  # transcripts are kept longer

    clock.at(89)
    assert (await job.run()).transcripts == 0
    clock.at(91)
    assert (await job.run()).transcripts == 2  # the first call's; the inbound one is a day younger
    clock.at(92)
    assert (await job.run()).transcripts == 1
    assert await count(db, m.Turn) == 0 and await count(db, m.Call) == 2

    clock.at(364)
    assert (await job.run()).call_metadata == {"calls": 0, "call_attempts": 0, "dial_blocks": 0}
    clock.at(366)
    report = await job.run()
    assert report.call_metadata == {"calls": 1, "call_attempts": 1, "dial_blocks": 1}
    clock.at(367)
    assert (await job.run()).call_metadata["calls"] == 1
    assert await count(db, m.Call) == 0 and await count(db, m.Recording) == 0
    assert await count(db, m.LeadScore) == 0 and await count(db, m.CallEvent) == 0
    assert await count(db, m.CostEvent) == 1  # the money stays, without the call
    assert await count(db, m.Contact) == 1  # people are erased on request, not by age

    clock.at(401)
    report = await job.run()
    assert report.audit_entries >= 1
    verdict = await audit.verify()
    assert verdict.ok and verdict.starts_after is not None
    actions = [r.action for r in await audit.recent()]
    assert "campaign.start" not in actions and actions[0] == "retention.run"
    [last] = await audit.recent(limit=1)
    assert last.actor == "system:retention" and last.detail["audit_entries"] == report.audit_entries


async def test_the_daily_task_runs_again_and_survives_a_failed_run(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = RetentionJob(db, SETTINGS, recordings_dir=tmp_path / "r", exports_dir=tmp_path / "e")
    runs = completed = 0
    real = job.run

    async def flaky() -> object:
        nonlocal runs, completed
        runs += 1
        if runs == 1:
            raise OSError("disk gone for a moment")
        report = await real()
        completed += 1
        return report

    monkeypatch.setattr(job, "run", flaky)
    task = asyncio.create_task(run_daily(job, first_after=timedelta(0),
                                         every=timedelta(milliseconds=20)))
    for _ in range(1000):
        if completed >= 2:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert completed >= 2  # after the failed first run
    audit = [r.action for r in await AuditRepository(db).recent()]
    assert audit.count("retention.run") >= 2


def test_limits_nest() -> None:
    with pytest.raises(ValidationError, match="cannot exceed call_metadata_days"):
        RetentionSettings(recordings_days=400, call_metadata_days=365)
    with pytest.raises(ValidationError, match="extra"):
        RetentionSettings(recordings=3)  # type: ignore[call-arg]

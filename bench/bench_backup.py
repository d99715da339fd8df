"""Backup and restore times (`reautoctl backup create | verify | restore`) on a filled box.

Fills a database (Postgres, or SQLite with --sqlite) with calls and turns and a state directory
with WAV recordings, then times create, verify and restore into a fresh database and state
directory. Baseline, measured in the same run: copying the same recording bytes with shutil (what
the disk allows). The restore time is the figure docs/backup.md quotes for disaster recovery.

    .venv/bin/python bench/bench_backup.py                       # 2,000 calls x 20 turns, 200 x 60 s audio
    .venv/bin/python bench/bench_backup.py --sqlite
    .venv/bin/python bench/bench_backup.py --calls 200 --recordings 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench_store_writes import make_turn, temporary_database

from reautod.backup import service
from reautod.config import Settings, load_settings
from reautod.store.database import Database
from reautod.store.enums import CallStatus, RecordingDirection, RecordingFormat
from reautod.store.records import CallStarted, Record, RecordingFinalized
from reautod.store.repositories import CallRepository

BYTES_PER_SECOND = 16_000  # 8 kHz, 16-bit mono WAV


async def fill(url: str, recordings_dir: Path, calls: int, turns: int, recordings: int,
               seconds: int) -> None:
    db = Database(url, Settings().database)
    await db.open()
    try:
        await db.upgrade("head")
        audio = bytes(BYTES_PER_SECOND * seconds)
        now = datetime.now(UTC)
        batch: list[Record] = []
        for index in range(calls):
            call_id = uuid.uuid4()
            batch.append(CallStarted(call_id=call_id, created_at=now, status=CallStatus.COMPLETED))
            batch.extend(make_turn(call_id, seq) for seq in range(turns))
            if index < recordings:
                for direction in RecordingDirection:
                    wav = recordings_dir / "2026" / str(call_id) / f"{direction.value}.wav"
                    wav.parent.mkdir(parents=True, exist_ok=True)
                    wav.write_bytes(audio)
                    batch.append(RecordingFinalized(
                        recording_id=uuid.uuid4(), call_id=call_id, direction=direction,
                        path=str(wav), format=RecordingFormat.WAV, sample_rate=8000, channels=1,
                        duration_ms=seconds * 1000, size_bytes=len(audio), sha256="0" * 64,
                        created_at=now, retention_until=now + timedelta(days=90)))
            if len(batch) >= 2000:
                await CallRepository(db).write(batch)
                batch = []
        if batch:
            await CallRepository(db).write(batch)
    finally:
        await db.close()


def settings_for(url: str, state_dir: Path) -> Settings:
    return load_settings(None, overrides={"database_url": url, "state_dir": str(state_dir)})


@contextlib.contextmanager
def databases(args: argparse.Namespace, work: Path) -> Iterator[tuple[str, str]]:
    if args.sqlite:
        yield (f"sqlite+aiosqlite:///{work / 'a' / 'reautod.db'}",
               f"sqlite+aiosqlite:///{work / 'b' / 'reautod.db'}")
        return
    with temporary_database(args.admin_url) as source, temporary_database(args.admin_url) as target:
        yield source, target


def timed(label: str, fn):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    result = fn()
    elapsed = time.perf_counter() - started
    print(f"{label:<28} {elapsed:8.2f} s")
    return result, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sqlite", action="store_true", help="SQLite instead of Postgres")
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--recordings", type=int, default=200, help="calls with recordings")
    parser.add_argument("--seconds", type=int, default=60, help="length of each recording")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="reautod-bench-backup-") as tmp:
        work = Path(tmp)
        with databases(args, work) as (source_url, target_url):
            source = settings_for(source_url, work / "a")
            target = settings_for(target_url, work / "b")
            asyncio.run(fill(source_url, work / "a" / "recordings", args.calls, args.turns,
                             args.recordings, args.seconds))
            audio_mb = 2 * args.recordings * args.seconds * BYTES_PER_SECOND / 1e6
            print(f"{'sqlite' if args.sqlite else 'postgres'}: {args.calls} calls x {args.turns} "
                  f"turns, {2 * args.recordings} recordings ({audio_mb:.0f} MB of audio)")
            _, copy_s = timed("baseline: copy recordings",
                              lambda: shutil.copytree(work / "a" / "recordings", work / "copy"))
            shutil.rmtree(work / "copy")
            created, create_s = timed("backup create", lambda: service.create(
                source, None, work / "backups"))
            timed("backup verify", lambda: service.verify(Path(created.path)))
            _, restore_s = timed("backup restore (verifies)", lambda: service.restore(
                target, Path(created.path)))
            size_mb = created.size_bytes / 1e6
            print(f"archive {size_mb:.0f} MB; restore {size_mb / restore_s:.0f} MB/s; "
                  f"create/copy {create_s / copy_s:.1f}x, restore/copy {restore_s / copy_s:.1f}x")


if __name__ == "__main__":
    main()

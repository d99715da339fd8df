"""Sustained turn writes through the write-behind queue on Postgres.

Prints throughput and enqueue -> committed latency percentiles, and, as a baseline measured in
the same run, one-transaction-per-turn direct writes. Target: >= 2,000 turns/s, p99 <= 10 ms.

    .venv/bin/python bench/bench_store_writes.py                    # 2,000 turns/s for 10 s
    .venv/bin/python bench/bench_store_writes.py --rate 0           # as fast as it goes
    .venv/bin/python bench/bench_store_writes.py --url postgresql+psycopg://.../db

Without --url a temporary database is created on the admin server (--admin-url) and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql

from reautod.config import DatabaseSettings
from reautod.store.database import Database
from reautod.store.enums import CallTransport, Speaker
from reautod.store.records import CallStarted, Record, TurnSpoken
from reautod.store.repositories import CallRepository
from reautod.store.writebehind import RELAXED_KINDS, WriteBehind

TICK_S = 0.005


@contextlib.contextmanager
def temporary_database(admin_url: str) -> Iterator[str]:
    name = f"reautod_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def make_turn(call_id: uuid.UUID, seq: int) -> TurnSpoken:
    return TurnSpoken(
        turn_id=uuid.uuid4(),
        call_id=call_id,
        seq=seq,
        speaker=Speaker.CALLER if seq % 2 else Speaker.AGENT,
        text="Yes, we own the house and the roof faces south, so that might work for us.",
        started_at=datetime.now(UTC),
        ended_at=datetime.now(UTC),
        stt_confidence=0.93,
        stt_ms=180,
        llm_first_token_ms=240,
        tts_first_byte_ms=90,
        response_ms=610,
    )


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, round(p / 100 * (len(sorted_values) - 1)))
    return sorted_values[index]


async def baseline(db: Database, seconds: float) -> float:
    """Direct writes, one transaction per turn, one writer: turns/s."""
    repo = CallRepository(db)
    call_ids = [uuid.uuid4()]
    await repo.write(
        [CallStarted(call_ids[0], datetime.now(UTC), transport=CallTransport.SIMULATED)]
    )
    seqs = dict.fromkeys(call_ids, 1_000_000)
    done = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        call_id = call_ids[done % len(call_ids)]
        seqs[call_id] += 1
        await repo.write([make_turn(call_id, seqs[call_id])])
        done += 1
    return done / (time.perf_counter() - start)


async def run(args: argparse.Namespace, url: str) -> None:
    settings = DatabaseSettings(pool_size=4, write_queue_size=args.queue_size)
    db = Database(url, settings)
    await db.open()
    await db.upgrade("head")
    modes = (
        {"durable": False, "relaxed": True}
        if args.mode == "both"
        else {args.mode: args.mode == "relaxed"}
    )
    for mode, relaxed in modes.items():
        await run_mode(args, db, mode, relaxed)
    base = await baseline(db, args.baseline_seconds)
    print(f"baseline: direct writes, one durable transaction per turn: {base:,.0f} turns/s")
    await db.close()
    await commit_floor(url)


async def commit_floor(url: str, n: int = 300) -> None:
    """What one bare INSERT + COMMIT costs on this box (raw psycopg, no SQLAlchemy): the floor
    under any enqueue -> committed latency."""
    libpq = url.replace("postgresql+psycopg://", "postgresql://", 1)
    async with await psycopg.AsyncConnection.connect(libpq) as conn:
        # A real table: temporary ones skip the WAL, and the WAL flush is what is measured.
        await conn.execute("CREATE TABLE IF NOT EXISTS bench_floor (id uuid PRIMARY KEY)")
        for sync in ("on", "off"):
            await conn.execute(f"SET synchronous_commit = {sync}")
            await conn.commit()
            times = []
            for _ in range(n):
                t = time.perf_counter()
                await conn.execute("INSERT INTO bench_floor VALUES (%s)", (uuid.uuid4(),))
                await conn.commit()
                times.append((time.perf_counter() - t) * 1000)
            times.sort()
            print(
                f"floor: one-row INSERT+COMMIT, synchronous_commit={sync}: "
                f"p50 {percentile(times, 50):.2f} ms  p99 {percentile(times, 99):.2f} ms"
            )
        await conn.execute("DROP TABLE bench_floor")
        await conn.commit()


async def run_mode(args: argparse.Namespace, db: Database, mode: str, relaxed: bool) -> None:
    call_ids = [uuid.uuid4() for _ in range(args.calls)]
    await CallRepository(db).write(
        [CallStarted(c, datetime.now(UTC), transport=CallTransport.SIMULATED) for c in call_ids]
    )

    enqueued: dict[uuid.UUID, float] = {}
    latencies: list[float] = []
    last_commit = 0.0

    def on_commit(records: Sequence[Record]) -> None:
        nonlocal last_commit
        now = time.perf_counter()
        last_commit = now
        for r in records:
            if isinstance(r, TurnSpoken):
                latencies.append(now - enqueued.pop(r.turn_id))

    with tempfile.TemporaryDirectory() as spool:
        wb = WriteBehind(
            db,
            Path(spool),
            queue_size=args.queue_size,
            batch_size=args.batch_size,
            relaxed_kinds=RELAXED_KINDS if relaxed else frozenset(),
            on_commit=on_commit,
        )
        await wb.start()
        seq = 0
        submitted = 0
        started = time.perf_counter()
        next_tick = started
        while time.perf_counter() - started < args.seconds:
            if args.rate:
                due = int((time.perf_counter() - started) * args.rate) - submitted
            else:
                due = max(0, args.queue_size // 2 - wb.stats().queued)
            for _ in range(due):
                t = make_turn(call_ids[submitted % len(call_ids)], seq)
                seq += 1
                enqueued[t.turn_id] = time.perf_counter()
                if wb.submit(t):
                    submitted += 1
            next_tick += TICK_S
            await asyncio.sleep(max(0.0, next_tick - time.perf_counter()))
        await wb.flush(timeout=120)
        await wb.stop()
        stats = wb.stats()

    elapsed = last_commit - started
    latencies.sort()
    ms = [x * 1000 for x in latencies]
    throughput = len(latencies) / elapsed

    print(
        f"write-behind ({mode} commits), Postgres, {args.calls} calls, batch <= {args.batch_size}, "
        f"target rate {args.rate or 'max'} turns/s, {args.seconds:.0f} s"
    )
    print(
        f"  committed turns      {len(latencies)} (dropped {stats.dropped}, spooled {stats.spooled})"
    )
    print(f"  throughput           {throughput:,.0f} turns/s")
    print(
        f"  enqueue->committed   p50 {percentile(ms, 50):.2f} ms  p90 {percentile(ms, 90):.2f} ms  "
        f"p99 {percentile(ms, 99):.2f} ms  max {ms[-1]:.2f} ms"
    )
    ok = throughput >= min(2000, args.rate or 2000) * 0.98 and percentile(ms, 99) <= 10
    print(f"  target (>= 2,000 turns/s, p99 <= 10 ms): {'met' if ok else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="SQLAlchemy URL of a Postgres database to use (kept)")
    parser.add_argument(
        "--admin-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="server to create a temporary database on (without --url)",
    )
    parser.add_argument(
        "--rate", type=int, default=2000, help="turns/s to offer; 0 = as fast as possible"
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--calls", type=int, default=20, help="concurrent calls the turns spread over"
    )
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--queue-size", type=int, default=10_000)
    parser.add_argument("--baseline-seconds", type=float, default=3.0)
    parser.add_argument(
        "--mode",
        choices=["both", "relaxed", "durable"],
        default="both",
        help="commit mode of turn batches (see reautod.store.writebehind)",
    )
    args = parser.parse_args()
    if args.url:
        asyncio.run(run(args, args.url))
    else:
        with temporary_database(args.admin_url) as url:
            asyncio.run(run(args, url))


if __name__ == "__main__":
    main()

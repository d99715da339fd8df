"""Two writers on the same call at once (a webhook and the pipeline): the result is consistent."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from datetime import timedelta

from reautod.store.database import Database
from reautod.store.enums import CallOutcome, CallStatus
from reautod.store.records import CallEnded, CallStatusChanged, Record
from reautod.store.repositories import CallRepository
from tests.store.conftest import TEST_DB_SETTINGS
from tests.store.factories import T0, call_started, campaign_contact_lead, turn


async def test_two_writers_on_one_call_converge(db: Database, db_url: str) -> None:
    campaign, contact, lead = await campaign_contact_lead(db)
    other = Database(db_url, TEST_DB_SETTINGS)  # a second pool, as a second process would have
    await other.open()
    try:
        for round_no in range(5):
            start = call_started(campaign, contact, lead, call_sid=f"CA{round_no:032d}")
            turns = [turn(start.call_id, seq) for seq in range(20)]
            statuses: list[Record] = [
                CallStatusChanged(start.call_id, s, T0 + timedelta(seconds=i), "twilio", i)
                for i, s in enumerate(
                    [CallStatus.RINGING, CallStatus.IN_PROGRESS, CallStatus.COMPLETED], start=1
                )
            ]
            ended = CallEnded(
                start.call_id,
                T0 + timedelta(minutes=1),
                outcome=CallOutcome.BOOKED,
                duration_ms=55_000,
            )
            # The webhook side knows the SID only; the pipeline side knows the stream SID.
            webhook_start = dataclasses.replace(start, stream_sid=None)
            pipeline_start = dataclasses.replace(
                start, call_sid=None, stream_sid=f"MZ{round_no:032d}"
            )
            rng = random.Random(round_no)
            a: list[Record] = [webhook_start, *statuses]
            b: list[Record] = [pipeline_start, *turns, *statuses, ended]
            rng.shuffle(a[1:])  # webhooks arrive in any order after the call exists
            writers = [CallRepository(db), CallRepository(other)]

            async def write(repo: CallRepository, records: list[Record]) -> None:
                for i in range(0, len(records), 3):
                    await repo.write(records[i : i + 3])

            await asyncio.gather(
                write(writers[0], a), write(writers[1], b), write(writers[0], [start, *turns[5:15]])
            )

            calls = CallRepository(db)
            row = await calls.get(start.call_id)
            assert row.status == "completed", round_no
            assert row.outcome == "booked" and row.duration_ms == 55_000
            assert row.call_sid == f"CA{round_no:032d}" and row.stream_sid == f"MZ{round_no:032d}"
            assert row.answered_at == T0 + timedelta(seconds=2)
            assert [t.id for t in await calls.turns(start.call_id)] == [t.turn_id for t in turns]
            timeline = [e.status for e in await calls.timeline(start.call_id)]
            assert sorted(timeline) == sorted(["initiated", "ringing", "in_progress", "completed"])
    finally:
        await other.close()

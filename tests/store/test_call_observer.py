"""The pipeline's observer events become call, turn and end rows through the write-behind queue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from reautod.call_events import CallInfo, CallState, TurnRecord
from reautod.store.call_observer import StoreCallObserver, call_uuid
from reautod.store.database import Database
from reautod.store.records import CallStarted
from reautod.store.repositories import CallRepository, CampaignRepository
from reautod.store.writebehind import WriteBehind

STARTED = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


async def test_a_simulated_call_is_persisted(db: Database, tmp_path: Path) -> None:
    campaign = await CampaignRepository(db).create("sim")
    pipeline_id = "sim-0123456789ab"
    # The dialer created the row first (campaign, CallSid); the pipeline fills in the rest.
    await CallRepository(db).write(
        [
            CallStarted(
                call_uuid(pipeline_id), STARTED, campaign_id=campaign.id, call_sid="CA" + "9" * 32
            )
        ]
    )
    wb = WriteBehind(db, tmp_path / "spool", queue_size=100)
    await wb.start()
    observer = StoreCallObserver(wb)
    info = CallInfo(
        call_id=pipeline_id,
        stream_sid="MZ" + "1" * 32,
        call_sid="CA" + "9" * 32,
        lead_name="Pat",
        campaign="sim",
        direction="outbound",
        state=CallState.CONNECTING,
        started_at=STARTED,
    )
    observer.on_call_started(info)
    turns = [
        TurnRecord(
            pipeline_id,
            1,
            "agent",
            "Hi Pat, this is Alex.",
            None,
            STARTED,
            STARTED + timedelta(seconds=2),
            {"tts_first_audio_s": 0.12},
        ),
        TurnRecord(
            pipeline_id,
            2,
            "caller",
            "Who is this?",
            0.91,
            STARTED + timedelta(seconds=3),
            STARTED + timedelta(seconds=4),
            {"stt_s": 0.2},
        ),
        TurnRecord(
            pipeline_id,
            3,
            "agent",
            "Alex, from Acme",
            None,
            STARTED + timedelta(seconds=5),
            STARTED + timedelta(seconds=6),
            {"voice_to_voice_s": 0.64},
            interrupted=True,
        ),
    ]
    for t in [*turns, turns[1]]:  # a turn reported twice is stored once
        observer.on_turn(t)
    observer.on_barge_in(pipeline_id, "Alex, from")
    observer.on_call_ended(pipeline_id, "caller_hung_up", 12.5)
    await wb.flush(timeout=30)
    await wb.stop()

    calls = CallRepository(db)
    row = await calls.get(call_uuid(pipeline_id))
    assert (row.campaign_id, row.transport, row.status) == (campaign.id, "twilio", "completed")
    assert row.stream_sid == "MZ" + "1" * 32 and row.duration_ms == 12_500
    assert row.disposition == "caller_hung_up" and row.answered_at == STARTED
    stored = await calls.turns(row.id)
    assert [(t.seq, t.speaker, t.interrupted) for t in stored] == [
        (1, "agent", False),
        (2, "caller", False),
        (3, "agent", True),
    ]
    assert (stored[0].tts_first_byte_ms, stored[1].stt_ms, stored[2].response_ms) == (120, 200, 640)
    assert stored[1].stt_confidence == 0.91


async def test_a_call_named_after_a_campaign_joins_it(db: Database, tmp_path: Path) -> None:
    """A simulated call's `--campaign` is a name: the row joins the campaign that has it (so its
    report and budgets count the call), and none when no campaign has it."""
    spring = await CampaignRepository(db).create("spring")
    wb = WriteBehind(db, tmp_path / "spool", queue_size=100)
    await wb.start()
    observer = StoreCallObserver(wb)
    for n, (call_id, campaign) in enumerate((("sim-aaaaaaaaaaaa", "spring"),
                                            ("sim-bbbbbbbbbbbb", "simulate"))):
        observer.on_call_started(CallInfo(
            call_id=call_id, stream_sid=f"MZ{n}" + "2" * 31, call_sid=None, lead_name="Pat",
            campaign=campaign, direction="outbound", state=CallState.CONNECTING,
            started_at=STARTED))
    await wb.flush(timeout=30)
    await wb.stop()
    calls = CallRepository(db)
    joined = await calls.get(call_uuid("sim-aaaaaaaaaaaa"))
    assert (joined.campaign_id, joined.transport) == (spring.id, "simulated")
    assert (await calls.get(call_uuid("sim-bbbbbbbbbbbb"))).campaign_id is None

"""Applying records to the database, idempotently, in the order given, in one transaction."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table, and_, case, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from reautod.store import models as m
from reautod.store.enums import CallOutcome, CallStatus
from reautod.store.records import (
    AgentDecisionRecord,
    AgentTransitionRecord,
    CallEnded,
    CallOutcomeDecided,
    CallStarted,
    CallStatusChanged,
    CostRecorded,
    PlaybookAssigned,
    Record,
    RecordingFinalized,
    ScoreUpdate,
    TierDecided,
    TurnSpoken,
)
from reautod.store.sql import status_rank, upsert

calls = cast(Table, m.Call.__table__)
call_events = cast(Table, m.CallEvent.__table__)
leads = cast(Table, m.Lead.__table__)
campaigns = cast(Table, m.Campaign.__table__)


async def apply_records(conn: AsyncConnection, records: Sequence[Record]) -> None:
    """Write `records` in order; consecutive records of one kind go in one statement."""
    for kind, run in itertools.groupby(records, key=lambda r: r.kind):
        group = list(run)
        if kind == TurnSpoken.kind:
            await _turns(conn, group)  # type: ignore[arg-type]
        elif kind == AgentTransitionRecord.kind:
            await _transitions(conn, group)  # type: ignore[arg-type]
        elif kind == CostRecorded.kind:
            await _costs(conn, group)  # type: ignore[arg-type]
        elif kind == TierDecided.kind:
            await _tier_decisions(conn, group)  # type: ignore[arg-type]
        else:
            for record in group:
                await _APPLY_ONE[kind](conn, record)


async def _call_started(conn: AsyncConnection, r: CallStarted) -> None:
    campaign_id: Any = r.campaign_id
    if campaign_id is None and r.campaign_name is not None:  # NULL when no campaign has it
        campaign_id = (select(campaigns.c.id).where(campaigns.c.name == r.campaign_name)
                       .scalar_subquery())
    stmt = upsert(conn, calls).values(
        id=r.call_id,
        campaign_id=campaign_id,
        contact_id=r.contact_id,
        lead_id=r.lead_id,
        call_sid=r.call_sid,
        stream_sid=r.stream_sid,
        direction=r.direction.value,
        transport=r.transport.value,
        status=r.status.value,
        from_number=r.from_number,
        to_number=r.to_number,
        prompt_version=r.prompt_version,
        created_at=r.created_at,
    )
    fill = ("campaign_id", "contact_id", "lead_id", "call_sid", "stream_sid", "from_number",
            "to_number", "prompt_version")
    set_: dict[str, Any] = {c: func.coalesce(calls.c[c], stmt.excluded[c]) for c in fill}
    set_["status"] = _forward_status(stmt.excluded.status)
    await conn.execute(stmt.on_conflict_do_update(index_elements=["id"], set_=set_))
    await _event(conn, r.call_id, r.status, r.created_at, "pipeline", None, {})


async def _call_status(conn: AsyncConnection, r: CallStatusChanged) -> None:
    await _event(conn, r.call_id, r.status, r.at, r.source, r.sequence, r.detail)
    values: dict[str, Any] = {"status": _forward_status(r.status.value)}
    if r.status is CallStatus.IN_PROGRESS:
        values["answered_at"] = func.coalesce(calls.c.answered_at, r.at)
    if r.status.terminal:
        values["ended_at"] = func.coalesce(calls.c.ended_at, r.at)
    await conn.execute(update(calls).where(calls.c.id == r.call_id).values(**values))


async def _call_ended(conn: AsyncConnection, r: CallEnded) -> None:
    await _event(conn, r.call_id, r.status, r.ended_at, "pipeline", None, {})
    values: dict[str, Any] = {
        "status": _forward_status(r.status.value),
        "ended_at": r.ended_at,
        "answered_at": func.coalesce(calls.c.answered_at, r.answered_at),
    }
    for name in ("outcome", "amd_result"):
        value = getattr(r, name)
        if value is not None:
            values[name] = value.value
    for name in ("duration_ms", "error_code"):
        if getattr(r, name) is not None:
            values[name] = getattr(r, name)
    if r.disposition is not None:  # the conversation's disposition (CallOutcomeDecided) stays
        values["disposition"] = func.coalesce(calls.c.disposition, r.disposition)
    await conn.execute(update(calls).where(calls.c.id == r.call_id).values(**values))


async def _call_outcome(conn: AsyncConnection, r: CallOutcomeDecided) -> None:
    opted_out = CallOutcome.OPTED_OUT.value
    await conn.execute(
        update(calls)
        .where(calls.c.id == r.call_id,
               calls.c.outcome.is_(None) | (calls.c.outcome != opted_out))
        .values(outcome=r.outcome.value, disposition=r.disposition[:2000])
    )
    if r.campaign_id is not None:
        await conn.execute(update(calls).where(calls.c.id == r.call_id, calls.c.campaign_id.is_(None))
                           .values(campaign_id=r.campaign_id))
    if r.lead_id is not None and r.lead_status is not None:
        await conn.execute(
            update(leads).where(leads.c.id == r.lead_id)
            .values(status=r.lead_status.value, updated_at=r.at, lease_owner=None,
                    lease_expires_at=None)
        )


async def _event(
    conn: AsyncConnection,
    call_id: Any,
    status: CallStatus,
    at: Any,
    source: str,
    sequence: int | None,
    detail: dict[str, Any],
) -> None:
    stmt = upsert(conn, call_events).values(
        call_id=call_id, status=status.value, at=at, source=source, sequence=sequence, detail=detail
    )
    await conn.execute(stmt.on_conflict_do_nothing(index_elements=["call_id", "status"]))


def _forward_status(new: Any) -> Any:
    """The stored status, replaced only by a later one in the lifecycle (order-independent)."""
    return case((status_rank(calls.c.status) < status_rank(new), new), else_=calls.c.status)


async def _insert_many(conn: AsyncConnection, model: type[m.Base], rows: list[dict[str, Any]]) -> None:
    """INSERT .. ON CONFLICT (id) DO NOTHING for many rows as an executemany: one cached
    compiled statement, pipelined by psycopg. (A multi-row `.values([...])` is compiled anew
    for every batch, which costs more than the write itself.)"""
    stmt = upsert(conn, model).on_conflict_do_nothing(index_elements=["id"])
    await conn.execute(stmt, rows)


async def _turns(conn: AsyncConnection, records: list[TurnSpoken]) -> None:
    rows = [
        {
            "id": r.turn_id,
            "call_id": r.call_id,
            "seq": r.seq,
            "speaker": r.speaker.value,
            "text": r.text,
            "agent": r.agent,
            "stt_confidence": r.stt_confidence,
            "interrupted": r.interrupted,
            "started_at": r.started_at,
            "ended_at": r.ended_at,
            "stt_ms": r.stt_ms,
            "llm_first_token_ms": r.llm_first_token_ms,
            "llm_ms": r.llm_ms,
            "tts_first_byte_ms": r.tts_first_byte_ms,
            "response_ms": r.response_ms,
        }
        for r in sorted(records, key=lambda r: r.turn_id)  # one lock order across writers
    ]
    await _insert_many(conn, m.Turn, rows)


async def _transitions(conn: AsyncConnection, records: list[AgentTransitionRecord]) -> None:
    rows = [
        {
            "id": r.transition_id,
            "call_id": r.call_id,
            "seq": r.seq,
            "from_agent": r.from_agent,
            "to_agent": r.to_agent,
            "reason": r.reason,
            "at": r.at,
        }
        for r in sorted(records, key=lambda r: r.transition_id)
    ]
    await _insert_many(conn, m.AgentTransition, rows)


async def _costs(conn: AsyncConnection, records: list[CostRecorded]) -> None:
    rows = [
        {
            "id": r.event_id,
            "call_id": r.call_id,
            "campaign_id": r.campaign_id,
            "service": r.service.value,
            "provider": r.provider,
            "tier": r.tier,
            "unit": r.unit.value,
            "quantity": r.quantity,
            "unit_price_micros": r.unit_price_micros,
            "amount_micros": r.amount_micros,
            "occurred_at": r.occurred_at,
        }
        for r in sorted(records, key=lambda r: r.event_id)
    ]
    await _insert_many(conn, m.CostEvent, rows)


async def _tier_decisions(conn: AsyncConnection, records: list[TierDecided]) -> None:
    rows = [
        {
            "id": r.decision_id,
            "call_id": r.call_id,
            "seq": r.seq,
            "stage": r.stage,
            "tier": r.tier.value,
            "reason": r.reason,
            "lead_score": r.lead_score,
            "expected_value_micros": r.expected_value_micros,
            "marginal_cost_micros": r.marginal_cost_micros,
            "at": r.at,
        }
        for r in sorted(records, key=lambda r: r.decision_id)
    ]
    await _insert_many(conn, m.TierDecision, rows)


async def _score(conn: AsyncConnection, r: ScoreUpdate) -> None:
    stmt = upsert(conn, m.LeadScore).values(
        id=r.score_id,
        contact_id=r.contact_id,
        lead_id=r.lead_id,
        call_id=r.call_id,
        score=r.score,
        factors=r.factors,
        reason=r.reason,
        at=r.at,
    )
    result = await conn.execute(stmt.on_conflict_do_nothing(index_elements=["id"]))
    if r.lead_id is not None and result.rowcount:
        await conn.execute(
            update(leads).where(and_(leads.c.id == r.lead_id)).values(score=r.score, updated_at=r.at)
        )


async def _recording(conn: AsyncConnection, r: RecordingFinalized) -> None:
    values = {
        "id": r.recording_id,
        "call_id": r.call_id,
        "direction": r.direction.value,
        "path": r.path,
        "format": r.format.value,
        "sample_rate": r.sample_rate,
        "channels": r.channels,
        "duration_ms": r.duration_ms,
        "size_bytes": r.size_bytes,
        "sha256": r.sha256,
        "encrypted": r.encrypted,
        "consent_recorded": r.consent_recorded,
        "consent_detail": r.consent_detail,
        "retention_until": r.retention_until,
        "created_at": r.created_at,
    }
    stmt = upsert(conn, m.Recording).values(**values)
    keep = {"id", "call_id", "direction", "created_at"}
    set_ = {k: stmt.excluded[k] for k in values if k not in keep}
    await conn.execute(stmt.on_conflict_do_update(index_elements=["call_id", "direction"], set_=set_))


async def _playbook(conn: AsyncConnection, r: PlaybookAssigned) -> None:
    await conn.execute(
        update(calls).where(calls.c.id == r.call_id)
        .values(playbook=r.playbook, prompt_version=r.prompt_version, prompt_variant=r.variant)
    )


async def _decision(conn: AsyncConnection, r: AgentDecisionRecord) -> None:
    stmt = upsert(conn, m.AgentDecision).values(
        id=r.decision_id, call_id=r.call_id, seq=r.seq, stage=r.stage, tool=r.tool,
        status=r.status.value, args=r.args, evidence=r.evidence, detail=r.detail, at=r.at,
    )
    await conn.execute(stmt.on_conflict_do_nothing(index_elements=["id"]))


_APPLY_ONE: dict[str, Any] = {
    CallStarted.kind: _call_started,
    CallStatusChanged.kind: _call_status,
    CallEnded.kind: _call_ended,
    ScoreUpdate.kind: _score,
    RecordingFinalized.kind: _recording,
    PlaybookAssigned.kind: _playbook,
    AgentDecisionRecord.kind: _decision,
    CallOutcomeDecided.kind: _call_outcome,
}

"""The outbox's ordering rule, channels, operator actions (retry, replay) and counts."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from reautod.errors import NotFoundError, ValidationError
from reautod.store.database import Database
from reautod.store.enums import OutboxChannel, OutboxStatus
from reautod.store.repositories import NewMessage, OutboxRepository
from tests.store.factories import T0

LATER = T0 + timedelta(days=400)  # later than any enqueue time, whatever today is
HOOK = "https://crm.example/hook"


def msg(event: str, key: str | None, endpoint: str = "crm", **kw: object) -> NewMessage:
    return NewMessage(event, HOOK, {"event": event}, endpoint=endpoint, ordering_key=key, **kw)  # type: ignore[arg-type]


async def test_a_leads_later_message_waits_for_the_earlier_one(db: Database) -> None:
    outbox = OutboxRepository(db)
    first, second, third = await outbox.enqueue_many(
        [msg("call.completed", "lead-a"), msg("lead.scored", "lead-a"), msg("lead.scored", "lead-b")]
    )
    # Another endpoint's copy of lead a's event is independent of the crm endpoint.
    [other] = await outbox.enqueue_many([msg("call.completed", "lead-a", endpoint="sheet")])
    claimed = {m.id for m in await outbox.claim_due(LATER, 10)}
    assert claimed == {first, third, other}
    # The first fails and waits for a retry: the second still may not overtake it.
    await outbox.failed(first, "HTTP 503", retry_at=LATER + timedelta(minutes=1))
    assert await outbox.claim_due(LATER + timedelta(seconds=30), 10) == []
    [again] = await outbox.claim_due(LATER + timedelta(minutes=1), 10)
    assert again.id == first and again.attempts == 2
    await outbox.delivered(first, LATER)
    [then] = await outbox.claim_due(LATER + timedelta(minutes=1), 10)
    assert then.id == second
    # A dead message no longer holds the lead's later ones back.
    fourth, fifth = await outbox.enqueue_many([msg("a", "lead-c"), msg("b", "lead-c")])
    assert [m.id for m in await outbox.claim_due(LATER, 10)] == [fourth]
    assert await outbox.failed(fourth, "HTTP 410", retry_at=None)
    assert [m.id for m in await outbox.claim_due(LATER, 10)] == [fifth]


async def test_channels_need_their_own_kind_of_target(db: Database) -> None:
    outbox = OutboxRepository(db)
    with pytest.raises(ValidationError, match="sms:"):
        await outbox.enqueue_many([NewMessage("x", HOOK, {}, channel=OutboxChannel.SMS)])
    with pytest.raises(ValidationError):
        await outbox.enqueue("x", "ftp://nope", {})
    event = uuid.uuid4()
    ids = await outbox.enqueue_many([
        NewMessage("appointment.booked", "sms:+15550001111", {}, event_id=event,
                   channel=OutboxChannel.SMS, endpoint="sms"),
        NewMessage("appointment.booked", "mailto:rep@example.com", {}, event_id=event,
                   channel=OutboxChannel.EMAIL, endpoint="email"),
    ])
    assert [m.id for m in await outbox.of_event(event)] == ids
    assert (await outbox.get(ids[0])).channel == "sms"
    with pytest.raises(NotFoundError):
        await outbox.get(uuid.uuid4())


async def test_retry_replay_and_counts(db: Database) -> None:
    outbox = OutboxRepository(db)
    dead_id, ok_id = await outbox.enqueue_many([msg("x", "a"), msg("y", "b", event_id=uuid.uuid4())])
    await outbox.claim_due(LATER, 10)
    assert await outbox.failed(dead_id, "HTTP 400", retry_at=None)
    await outbox.delivered(ok_id, LATER)
    counts = await outbox.counts()
    assert counts.by_status[OutboxStatus.DEAD] == 1 and counts.dead_letters == 1
    assert counts.by_endpoint == {"crm": {"dead": 1, "delivered": 1}}
    assert counts.oldest_pending_at is None
    [letter] = await outbox.dead()
    assert (letter.outbox_id, letter.endpoint, letter.channel) == (dead_id, "crm", "webhook")

    with pytest.raises(NotFoundError):
        await outbox.retry([uuid.uuid4()], LATER)
    assert await outbox.retry([letter.id], LATER) == [dead_id]  # by dead-letter id
    assert await outbox.dead() == []
    again = await outbox.get(dead_id)
    assert (again.status, again.attempts) == ("pending", 0)
    assert (await outbox.counts()).oldest_pending_at is not None

    [copy] = await outbox.replay(T0, endpoint="crm")
    original, replayed = await outbox.get(ok_id), await outbox.get(copy)
    assert replayed.event_id == original.event_id and replayed.payload == original.payload
    assert replayed.status == "pending" and replayed.id != original.id
    assert await outbox.replay(T0, event_type="nothing") == []
    assert [m.id for m in await outbox.recent(status=OutboxStatus.DELIVERED)] == [ok_id]
    assert len(await outbox.recent(endpoint="crm", limit=10)) == 3

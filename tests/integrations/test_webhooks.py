"""Outgoing webhooks: signed deliveries to a real receiver, retries with backoff, dead letters,
order per lead, authentication (API key, OAuth 2.0 client credentials), and the schema docs."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from reautod.integrations import signing
from reautod.integrations.credentials import Credentials
from reautod.integrations.delivery import DeliveryWorker, RetryPolicy
from reautod.integrations.events import (
    EVENTS,
    BudgetAlert,
    BudgetAlertEvent,
    CallCompleted,
    CallCompletedEvent,
    LeadQualified,
    LeadQualifiedEvent,
    LeadScored,
    LeadScoredEvent,
    WebhookEvent,
    json_schema,
)
from reautod.integrations.settings import (
    DeliverySettings,
    IntegrationsSettings,
    WebhookEndpoint,
)
from reautod.integrations.webhooks import WebhookDeliverer, WebhookPublisher, ordering_key
from reautod.observability.metrics import Metrics
from reautod.store.database import Database
from reautod.store.repositories import OutboxRepository
from tests.integrations.conftest import Clock
from tests.integrations.helpers import contact, docs_snippet, scored
from tests.integrations.standins import Received, TokenServer, WebhookReceiver

SECRET = "whsec-test-1"
FAST = DeliverySettings(max_attempts=3, backoff_base_s=10, backoff_max_s=600, batch_size=10)


def endpoint(url: str, **kw: object) -> WebhookEndpoint:
    return WebhookEndpoint.model_validate({"name": "crm", "url": url, "secret_credential": "crm_secret", **kw})


def worker(db: Database, endpoints: list[WebhookEndpoint], creds: Credentials, clock: Clock,
           metrics: Metrics | None = None) -> tuple[WebhookPublisher, DeliveryWorker]:
    repo = OutboxRepository(db)
    deliverer = WebhookDeliverer(endpoints, creds)
    work = DeliveryWorker(repo, {"webhook": deliverer}, FAST, metrics=metrics, clock=clock,
                          rand=lambda: 1.0)
    return WebhookPublisher(repo, endpoints, wake=work.notify), work


def test_signatures_and_the_documented_verifier_agree() -> None:
    verify_docs = docs_snippet("verify_reautod_webhook")["verify_reautod_webhook"]
    body = b'{"a":1}'
    header = signing.sign(SECRET, body, timestamp=1_700_000_000)
    assert signing.verify(SECRET, body, header, now=1_700_000_100) is signing.Verdict.VALID
    assert verify_docs(SECRET, body, header, now=1_700_000_100)
    # Outside the replay window, another body, another secret, junk: refused by both.
    assert signing.verify(SECRET, body, header, now=1_700_000_301) is signing.Verdict.STALE
    assert not verify_docs(SECRET, body, header, now=1_700_000_301)
    assert signing.verify(SECRET, b'{"a":2}', header, now=1_700_000_000) is signing.Verdict.MISMATCH
    assert not verify_docs("other", body, header, now=1_700_000_000)
    assert signing.verify(SECRET, body, "t=abc,v1=", now=0) is signing.Verdict.MALFORMED
    assert signing.verify(SECRET, body, None) is signing.Verdict.MISSING
    assert not verify_docs(SECRET, body, "garbage", now=0)
    # Rotation: a second v1 that matches is enough.
    rotated = header.replace("v1=", "v1=00,v1=")
    assert signing.verify(SECRET, body, rotated, now=1_700_000_000) is signing.Verdict.VALID


def test_the_published_json_schema_is_current() -> None:
    path = Path(__file__).resolve().parents[2] / "docs" / "webhook-schema.json"
    assert json.loads(path.read_text()) == json_schema(), (
        "regenerate: python -c 'import json; from reautod.integrations.events import json_schema;"
        " print(json.dumps(json_schema(), indent=2))' > docs/webhook-schema.json")


def test_endpoints_filter_by_campaign_and_event() -> None:
    settings = IntegrationsSettings.model_validate({
        "webhook_url": "https://all.example/hook",
        "webhooks": [{"name": "spring", "url": "https://s.example/h", "secret_credential": "s",
                      "campaigns": ["spring"], "events": ["lead.scored"]}],
    })
    publisher = WebhookPublisher(OutboxRepository(None), settings.endpoints())  # type: ignore[arg-type]
    assert [m.endpoint for m in publisher.messages(scored(str(uuid.uuid4()), 50))] == ["global", "spring"]
    assert [m.endpoint for m in publisher.messages(scored(str(uuid.uuid4()), 50, "fall"))] == ["global"]
    with pytest.raises(ValueError, match="unique"):
        IntegrationsSettings.model_validate({
            "webhook_url": "https://all.example/hook",
            "webhooks": [{"name": "global", "url": "https://x.example", "secret_credential": "s"}]})


async def test_signed_delivery_retries_in_order_then_dead_letters(
    db: Database, credentials: Callable[..., Credentials],
) -> None:
    creds = credentials(crm_secret=SECRET)
    clock, metrics = Clock(), Metrics()
    verify_docs = docs_snippet("verify_reautod_webhook")["verify_reautod_webhook"]
    # 503 (retry), 503 (retry), then 200s; a lead's second event must wait for its first.
    with WebhookReceiver(script=[503, 503], retry_after="30") as receiver:
        publisher, work = worker(db, [endpoint(receiver.base_url + "/hook")], creds, clock, metrics)
        lead = await contact(db)
        first, second = scored(lead, 10), scored(lead, 90)
        await publisher.publish(first)
        await publisher.publish(second)
        assert await work.run_once() == 1  # only the first: the second is held back
        clock.advance(seconds=10)
        assert await work.run_once() == 0  # Retry-After: 30 s is longer than the backoff
        clock.advance(seconds=25)
        assert await work.run_once() == 1  # second attempt: 503 again
        clock.advance(seconds=60)
        await work.run_once()  # third: delivered
        await work.run_once()  # then the lead's second event
        got = receiver.accepted()
        ids = [json.loads(r.body)["id"] for r in got]
        assert ids == [str(first.id)] * 3 + [str(second.id)]
        for r in got:
            assert r.headers["idempotency-key"] == json.loads(r.body)["id"]
            assert verify_docs(SECRET, r.body, r.headers["reautod-signature"])
        assert [r.headers["reautod-attempt"] for r in got] == ["1", "2", "3", "1"]
        assert EVENTS.validate_json(got[-1].body) == second
        await work.stop()

    # A receiver that always fails: dead after max_attempts; a 400 is dead at once.
    with WebhookReceiver(default=500) as down, WebhookReceiver(default=400) as refusing:
        endpoints = [endpoint(down.base_url), endpoint(refusing.base_url).model_copy(update={"name": "bad"})]
        publisher, work = worker(db, endpoints, creds, clock, metrics)
        await publisher.publish(scored(await contact(db), 5))
        for _ in range(FAST.max_attempts):
            await work.run_once()
            clock.advance(seconds=FAST.backoff_max_s)
        assert len(down.accepted()) == FAST.max_attempts and len(refusing.accepted()) == 1
        dead = {d.endpoint: d for d in await OutboxRepository(db).dead()}
        assert dead["crm"].attempts == 3 and dead["crm"].last_error == "HTTP 500 Internal Server Error"
        assert dead["bad"].attempts == 1 and "400" in (dead["bad"].last_error or "")
        await work.refresh_gauges()
        await work.stop()
    assert metrics.outbox_dead_letters._value.get() == 2
    delivered = metrics.outbox_deliveries_total.labels(channel="webhook", result="delivered")
    assert delivered._value.get() == 2


async def test_a_calls_events_without_a_lead_still_arrive_in_order(
    db: Database, credentials: Callable[..., Credentials],
) -> None:
    """A simulated or unknown caller has no contact: the call's id orders its events."""
    clock = Clock()
    call_id = str(uuid.uuid4())
    events: list[WebhookEvent] = [
        CallCompletedEvent(data=CallCompleted(call_id=call_id, direction="outbound",
                                              status="completed", duration_s=12.0,
                                              started_at=datetime.now(UTC))),
        LeadScoredEvent(data=LeadScored(call_id=call_id, score=80)),
        LeadQualifiedEvent(data=LeadQualified(call_id=call_id, score=80)),
    ]
    with WebhookReceiver() as receiver:
        publisher, work = worker(db, [endpoint(receiver.base_url + "/hook")],
                                 credentials(crm_secret=SECRET), clock)
        for event in events:
            await publisher.publish(event)
        # one at a time: each waits for the one before it
        assert [await work.run_once() for _ in range(4)] == [1, 1, 1, 0]
        await work.stop()
    assert [r.json()["type"] for r in receiver.accepted()] == [
        "call.completed", "lead.scored", "lead.qualified"]
    budget = BudgetAlertEvent(data=BudgetAlert(
        kind="threshold", scope="site", period="day", period_start=datetime.now(UTC),
        threshold_pct=80, limit_usd=Decimal(10), spent_usd=Decimal(8)))
    assert ordering_key(budget) is None  # site-wide: nothing to wait for


def test_retry_policy_backs_off_with_jitter_and_caps() -> None:
    policy = RetryPolicy(max_attempts=5, base_s=2, max_s=10)
    assert policy.delay(1, None, 0.0) == 1 and policy.delay(1, None, 1.0) == 2
    assert policy.delay(3, None, 1.0) == 8 and policy.delay(4, None, 1.0) == 10
    assert policy.delay(2, 60, 0.5) == 10  # Retry-After honoured up to the cap
    assert policy.delay(5, None, 0.5) is None


async def test_api_key_and_oauth_client_credentials(
    db: Database, credentials: Callable[..., Credentials],
) -> None:
    creds = credentials(crm_secret=SECRET, crm_key="k-123", oauth_secret="s3cret")
    with TokenServer(clients={"reautod": "s3cret"}, expires_in=62) as tokens:

        def needs_token(request: Received) -> int | None:
            return None if tokens.bearer_ok(request) else 401

        def needs_key(request: Received) -> int | None:
            return None if request.headers.get("x-crm-key") == "k-123" else 401

        with WebhookReceiver(check=needs_token) as oauth_rx, WebhookReceiver(check=needs_key) as key_rx:
            endpoints = [
                endpoint(oauth_rx.base_url, name="oauth", auth={
                    "type": "oauth2", "token_url": tokens.token_url, "client_id": "reautod",
                    "client_secret_credential": "oauth_secret", "refresh_leeway_s": 60}),
                endpoint(key_rx.base_url, name="keyed", auth={
                    "type": "api_key", "header": "X-CRM-Key", "key_credential": "crm_key"}),
            ]
            publisher, work = worker(db, endpoints, creds, Clock())
            for score in (1, 2):
                await publisher.publish(scored(await contact(db), score))
            await work.run_once()
            assert len(oauth_rx.accepted()) == 2 and len(key_rx.accepted()) == 2
            assert len(tokens.issued) == 1  # fetched once, cached
            # 62 s tokens with a 60 s leeway are stale within ~2 s: refreshed before expiry.
            await asyncio.sleep(2.1)
            await publisher.publish(scored(await contact(db), 3))
            await work.run_once()
            assert len(tokens.issued) == 2
            # A token the receiver revoked: one more is fetched and the delivery goes through.
            with tokens.lock:
                tokens.issued.pop()
            await publisher.publish(scored(await contact(db), 4))
            await work.run_once()
            assert len(tokens.issued) == 2 and len(oauth_rx.accepted()) == 5
            assert all(m.status == "delivered" for m in await OutboxRepository(db).recent())
            await work.stop()


def test_the_documented_settings_are_valid() -> None:
    import re
    import tomllib

    from tests.integrations.helpers import DOCS

    merged: dict[str, object] = {}
    for block in re.findall(r"```toml\n(.*?)```", DOCS.read_text(), flags=re.S):
        merged.update(tomllib.loads(block)["integrations"])
    settings = IntegrationsSettings.model_validate(merged)
    assert [e.name for e in settings.endpoints()] == ["global", "spring-crm"]
    assert settings.caldav is not None and settings.sheets is not None and settings.smtp is not None


def test_a_cost_budget_alert_becomes_a_webhook_event() -> None:
    from datetime import UTC, datetime

    from reautod.cost import results
    from reautod.integrations.events import CampaignRef, budget_alert_event
    from reautod.store.enums import BudgetAlertKind, BudgetPeriod

    campaign = uuid.uuid4()
    alert = results.BudgetAlert(kind=BudgetAlertKind.FORECAST, scope=str(campaign), campaign_id=campaign,
                            period=BudgetPeriod.WEEK, period_start=datetime(2026, 11, 30, 5, tzinfo=UTC),
                            threshold_pct=100, spent_micros=12_500_000, projected_micros=31_000_000,
                            limit_micros=25_000_000, at=datetime(2026, 12, 2, 9, tzinfo=UTC))
    event = budget_alert_event(alert, CampaignRef(id=str(campaign), name="spring"))
    body = json.loads(EVENTS.dump_json(event))
    assert body["type"] == "budget.alert" and body["occurred_at"] == "2026-12-02T09:00:00Z"
    assert body["data"]["spent_usd"] == "12.5" and body["data"]["projected_usd"] == "31"
    assert (body["data"]["kind"], body["data"]["scope"], body["data"]["period"]) == (
        "forecast", "campaign", "week")
    again = EVENTS.validate_json(EVENTS.dump_json(event))
    assert isinstance(again, BudgetAlertEvent) and again.data.limit_usd == Decimal(25)

"""Budget alerts out: the cost part's alert, handed to the integrations' sink, becomes one
`budget.alert` outbox message per endpoint that wants it, named with the campaign's name (so
per-campaign endpoints filter on it); with no endpoint configured nothing is queued."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from reautod.campaigns.dnc import DncList
from reautod.campaigns.store_adapters import StoreDncStorage
from reautod.config import Secrets, Settings
from reautod.cost.results import BudgetAlert
from reautod.integrations.credentials import Credentials
from reautod.integrations.events import EVENTS, BudgetAlertEvent
from reautod.integrations.part import IntegrationsPart
from reautod.observability.metrics import Metrics
from reautod.store.database import Database
from reautod.store.enums import BudgetAlertKind, BudgetPeriod
from reautod.store.repositories import CampaignRepository, OutboxRepository
from reautod.store.writebehind import WriteBehind


def build(settings: dict[str, Any], db: Database, writer: WriteBehind,
          credentials: Credentials) -> IntegrationsPart:
    return IntegrationsPart(Settings.model_validate(settings), Secrets({}), db, writer,
                            Metrics(), DncList(StoreDncStorage(db)), credentials=credentials)


def alert(campaign_id: uuid.UUID | None) -> BudgetAlert:
    return BudgetAlert(kind=BudgetAlertKind.THRESHOLD,
                       scope=f"campaign:{campaign_id}" if campaign_id else "site",
                       campaign_id=campaign_id, period=BudgetPeriod.DAY,
                       period_start=datetime(2026, 12, 2, 6, tzinfo=UTC), threshold_pct=80,
                       spent_micros=8_500_000, projected_micros=None, limit_micros=10_000_000,
                       at=datetime(2026, 12, 2, 15, tzinfo=UTC))


async def test_a_budget_alert_is_queued_for_the_endpoints_that_want_it(
    db: Database, writer: WriteBehind, credentials: Callable[..., Credentials],
) -> None:
    spring = await CampaignRepository(db).create("spring")
    part = build({"integrations": {"webhooks": [
        {"name": "finance", "url": "https://finance.example/hook", "secret_credential": "s",
         "events": ["budget.alert"]},
        {"name": "autumn-crm", "url": "https://crm.example/hook", "secret_credential": "s",
         "campaigns": ["autumn"]},
    ]}}, db, writer, credentials(s="whsec"))
    try:
        part.budget_alerts.budget_alert(alert(spring.id))
        part.budget_alerts.budget_alert(alert(None))
    finally:
        await part.close()  # waits for the alerts in flight
    messages = await OutboxRepository(db).recent()
    # both to finance (it wants every budget alert); neither to autumn's CRM
    assert sorted((m.endpoint, m.event_type) for m in messages) == [
        ("finance", "budget.alert"), ("finance", "budget.alert")]
    events = [EVENTS.validate_python(m.payload) for m in messages]
    assert all(isinstance(e, BudgetAlertEvent) for e in events)
    by_scope = {e.data.scope: e for e in events if isinstance(e, BudgetAlertEvent)}
    assert by_scope["campaign"].campaign is not None
    assert by_scope["campaign"].campaign.name == "spring"
    assert by_scope["site"].campaign is None
    assert str(by_scope["site"].data.spent_usd) == "8.5" and by_scope["site"].data.period == "day"


async def test_without_an_endpoint_nothing_is_queued(
    db: Database, writer: WriteBehind, credentials: Callable[..., Credentials],
) -> None:
    part = build({}, db, writer, credentials())
    try:
        part.budget_alerts.budget_alert(alert(None))
    finally:
        await part.close()
    assert await OutboxRepository(db).recent() == []

"""Budget alerts out: the cost part's `AlertSink` (reautod.cost.budgets) that queues each alert
in the outbox as a `budget.alert` webhook, for every endpoint that wants it.

The guard calls `budget_alert` from its own coroutine and asks that it not block, so the event is
built and queued on a task of its own (the campaign's name is read from the store: endpoints
filter by it). The alert itself is already recorded, once per period and threshold, in the
`budget_alerts` table before the sink hears of it; a store outage here loses the webhook, not
the alert, and is logged.
"""

from __future__ import annotations

import logging

from reautod.cost.results import BudgetAlert
from reautod.errors import NotFoundError, ReautodError
from reautod.integrations.events import CampaignRef, budget_alert_event
from reautod.integrations.tasks import BackgroundTasks
from reautod.integrations.webhooks import WebhookPublisher
from reautod.store.repositories import CampaignRepository

log = logging.getLogger(__name__)


class BudgetAlertWebhooks:
    """Queues every budget alert as a `budget.alert` webhook (see the module docstring)."""

    def __init__(self, publisher: WebhookPublisher, campaigns: CampaignRepository) -> None:
        self.publisher = publisher
        self.campaigns = campaigns
        self._tasks = BackgroundTasks()
        self._closed = False

    def budget_alert(self, alert: BudgetAlert) -> None:
        if not self.publisher.endpoints:
            return  # no webhook configured: nothing to queue
        if self._closed:  # the last calls' rows during the drain, after the outbox closed
            log.warning("budget alert (%s %s, %d%%) not sent as a webhook: shutting down",
                        alert.scope, alert.period.value, alert.threshold_pct)
            return
        self._tasks.spawn(self.publish(alert), "budget alert webhook")

    async def publish(self, alert: BudgetAlert) -> None:
        try:
            campaign = None
            if alert.campaign_id is not None:
                try:
                    row = await self.campaigns.get(alert.campaign_id)
                    campaign = CampaignRef(id=str(row.id), name=row.name)
                except NotFoundError:  # deleted since: the event still says which one
                    campaign = CampaignRef(id=str(alert.campaign_id), name="")
            await self.publisher.publish(budget_alert_event(alert, campaign))
        except ReautodError as err:
            log.error("budget alert webhook not queued: %s (%s)", err.message, err.code)

    async def close(self, timeout_s: float = 10.0) -> None:
        """Let the alerts in flight reach the outbox, then give up on the rest."""
        self._closed = True
        await self._tasks.close(timeout_s)

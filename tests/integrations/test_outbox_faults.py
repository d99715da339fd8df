"""A webhook receiver that goes away (the fault proxy cuts or resets the link to a real receiver):
the endpoint's circuit opens, the outbox keeps the events (never dead letters for the outage,
however long) and stops trying, and after recovery the probe delivers them, in order."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from reautod.integrations.credentials import Credentials
from reautod.integrations.delivery import DeliveryWorker
from reautod.integrations.settings import DeliverySettings, WebhookEndpoint
from reautod.integrations.webhooks import WebhookDeliverer, WebhookPublisher
from reautod.resilience.service import Resilience
from reautod.resilience.settings import ResilienceSettings, ServicePolicy
from reautod.store.database import Database
from reautod.store.repositories import OutboxRepository
from tests.fixtures.fault_proxy import FaultProxy
from tests.integrations.conftest import Clock
from tests.integrations.helpers import contact, scored
from tests.integrations.standins import WebhookReceiver


async def test_receiver_down_keeps_events_and_delivers_after_recovery(
    db: Database, credentials: Callable[..., Credentials],
) -> None:
    creds, clock = credentials(crm_secret="s"), Clock()
    resilience = Resilience(ResilienceSettings(
        webhooks=ServicePolicy(failures=2, recovery_s=1.0, retries=0)))
    settings = DeliverySettings(max_attempts=3, backoff_base_s=1, backoff_max_s=1)
    with WebhookReceiver() as receiver, FaultProxy("127.0.0.1", int(receiver.base_url.rsplit(":", 1)[1])) as proxy:
        endpoints = [WebhookEndpoint(name="crm", url=f"http://127.0.0.1:{proxy.port}/hook",
                                     secret_credential="crm_secret")]
        repo = OutboxRepository(db)
        work = DeliveryWorker(repo, {"webhook": WebhookDeliverer(endpoints, creds)}, settings,
                              clock=clock, rand=lambda: 1.0, resilience=resilience)
        publisher = WebhookPublisher(repo, endpoints)
        lead = await contact(db)
        proxy.reset()  # (the Redis fault tests cover cut and stall)
        await publisher.publish(scored(lead, 10))
        await publisher.publish(scored(lead, 90))

        for _ in range(2):  # two transient failures of the first event open the circuit
            assert await work.run_once() == 1
            clock.advance(seconds=5)
        assert resilience.state("webhooks", key="crm") == "open"
        tried = proxy.connections
        for _ in range(6):  # an outage longer than max_attempts: nothing sent, nothing dead
            await work.run_once()
            clock.advance(seconds=5)
        assert proxy.connections == tried
        counts = await repo.counts()
        assert counts.dead_letters == 0 and counts.by_status.get("pending") == 2

        proxy.heal()
        await asyncio.sleep(1.05)  # the recovery time: the next attempt is the probe
        for _ in range(3):
            await work.run_once()
            clock.advance(seconds=5)
        assert resilience.state("webhooks", key="crm") == "closed"
        assert [r.json()["data"]["score"] for r in receiver.accepted()] == [10, 90]
        assert (await repo.counts()).by_status.get("pending", 0) == 0
        await work.stop()

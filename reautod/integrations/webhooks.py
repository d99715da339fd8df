"""Webhook events out: the publisher turns an event into one outbox message per endpoint that
wants it; the deliverer POSTs a message, signed, and says whether a failure is worth a retry.

Transient (retried): a connection or timeout error, 5xx, 408, 429 (Retry-After honoured), an
OAuth token that could not be had. Permanent (dead letter at once): any other 4xx, a redirect
(never followed: a receiver that moved is a configuration change), a body that no longer matches
the schema, an endpoint no longer configured.
"""

from __future__ import annotations

import email.utils
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import httpx
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy.ext.asyncio import AsyncConnection

from reautod import __version__
from reautod.errors import UnavailableError
from reautod.integrations import signing
from reautod.integrations.credentials import Credentials
from reautod.integrations.delivery import Outcome
from reautod.integrations.events import EVENTS, WebhookEvent, body_of
from reautod.integrations.receivers import Receiver
from reautod.integrations.settings import WebhookEndpoint
from reautod.store.enums import OutboxChannel
from reautod.store.repositories import NewMessage, OutboxMessage, OutboxRepository

TRANSIENT_STATUSES = frozenset({408, 429})


class WebhookPublisher:
    """Queues events for every endpoint that wants them (global, per campaign, per event)."""

    def __init__(self, repo: OutboxRepository, endpoints: Sequence[WebhookEndpoint],
                 wake: Callable[[], None] | None = None) -> None:
        self.repo = repo
        self.endpoints = list(endpoints)
        self.wake = wake

    def messages(self, event: WebhookEvent) -> list[NewMessage]:
        campaign = event.campaign.name if event.campaign else None
        contact_id = uuid.UUID(event.lead.contact_id) if event.lead else None
        payload = EVENTS.dump_python(event, mode="json")
        return [
            NewMessage(event.type, endpoint.url, payload, event_id=event.id,
                       channel=OutboxChannel.WEBHOOK, endpoint=endpoint.name,
                       contact_id=contact_id, ordering_key=ordering_key(event))
            for endpoint in self.endpoints
            if endpoint.wants(event.type, campaign)
        ]

    async def publish(self, event: WebhookEvent, *,
                      conn: AsyncConnection | None = None) -> list[uuid.UUID]:
        """Queue `event`; pass `conn` to commit it with the fact it announces."""
        ids = await self.repo.enqueue_many(self.messages(event), conn=conn)
        if ids and self.wake is not None:
            self.wake()
        return ids


def ordering_key(event: WebhookEvent) -> str | None:
    """What orders `event` among the messages to one endpoint: a person's events reach it in the
    order they happened; a call's, when no lead is known (a simulated or unknown caller), in the
    order of the call (`call.completed` before `lead.scored` before `lead.qualified`)."""
    if event.lead is not None:
        return event.lead.contact_id
    call_id: str | None = getattr(event.data, "call_id", None)
    return f"call:{call_id}" if call_id else None


def retry_after(response: httpx.Response) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def classify(response: httpx.Response) -> Outcome:
    status = response.status_code
    if 200 <= status < 300:
        return Outcome.delivered()
    reason = f"HTTP {status} {response.reason_phrase}".strip()
    if status >= 500 or status in TRANSIENT_STATUSES:
        return Outcome.transient(reason, retry_after(response))
    if 300 <= status < 400:
        return Outcome.failed_for_good(f"{reason}: redirects are not followed")
    return Outcome.failed_for_good(reason)


class WebhookDeliverer:
    """POSTs webhook messages to their endpoint, signed with the endpoint's secret."""

    def __init__(self, endpoints: Sequence[WebhookEndpoint], credentials: Credentials, *,
                 transport: httpx.AsyncBaseTransport | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._receivers = {e.name: Receiver(e, credentials, transport) for e in endpoints}
        self._secrets = {e.name: credentials.value(e.secret_credential) for e in endpoints}
        self.clock = clock

    async def deliver(self, message: OutboxMessage) -> Outcome:
        receiver = self._receivers.get(message.endpoint)
        if receiver is None:
            return Outcome.failed_for_good(f"endpoint {message.endpoint!r} is not configured")
        try:
            body = body_of(EVENTS.validate_python(message.payload))
        except PydanticValidationError as err:
            return Outcome.failed_for_good(f"body does not match the event schema: {err}")
        event_id = str(message.event_id or message.id)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"reautod/{__version__}",
            signing.SIGNATURE_HEADER: signing.sign(self._secrets[message.endpoint], body,
                                                   timestamp=int(self.clock())),
            "Idempotency-Key": event_id,
            "Reautod-Event-Id": event_id,
            "Reautod-Event-Type": message.event_type,
            "Reautod-Delivery": str(message.id),
            "Reautod-Attempt": str(message.attempts),
        }
        try:
            response = await receiver.post(body, headers)
        except httpx.TransportError as err:
            return Outcome.transient(f"{type(err).__name__}: {err or 'no detail'}")
        except UnavailableError as err:
            return Outcome.transient(err.message)
        return classify(response)

    async def aclose(self) -> None:
        for receiver in self._receivers.values():
            await receiver.aclose()

"""Twilio as the daemon holds it: the REST client and the signature validator (or why there are
none), and the calls in flight.

Without Twilio settings (account SID, caller ID, public base URL, auth token) the daemon still
runs: no webhooks are served, the media WebSocket takes unsigned simulator calls, and `dial` /
`campaign.start` refuse with an UnavailableError naming what to set. Built before the call
manager: the agent's transfer (`transfers`) needs only this.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from fastapi import WebSocket
from twilio.request_validator import RequestValidator

from reautod.campaigns.dnc import normalize_phone
from reautod.config import Secrets, Settings
from reautod.errors import ConfigError, UnavailableError, ValidationError
from reautod.observability.events import EventBus
from reautod.observability.metrics import Metrics
from reautod.outbound.link import TwilioLink
from reautod.outbound.registry import CallRegistry
from reautod.outbound.transfer import Transfers
from reautod.resilience.service import Resilience
from reautod.store.database import Database
from reautod.telephony.signatures import (
    SIGNATURE_HEADER,
    SignatureResult,
    TwilioSignatureValidator,
    header_value,
)
from reautod.telephony.stream import MEDIA_PATH
from reautod.telephony.twilio_client import TwilioCalls

log = logging.getLogger(__name__)


def missing_twilio_settings(settings: Settings, secrets: Secrets) -> list[str]:
    """The config keys and secrets dialing needs that are not set."""
    missing = []
    if not settings.twilio.account_sid:
        missing.append("twilio.account_sid")
    if not settings.twilio.from_number:
        missing.append("twilio.from_number")
    if not settings.http.public_base_url:
        missing.append("http.public_base_url")
    if not secrets.get("twilio_auth_token"):
        missing.append("the twilio_auth_token secret ([secrets] twilio_auth_token_file, the "
                       "systemd credential, or REAUTOD_SECRET_TWILIO_AUTH_TOKEN)")
    return missing


def _check_caller_id(number: str) -> None:
    try:
        if normalize_phone(number, "US") == number:
            return
    except ValidationError:
        pass
    raise ConfigError("twilio.from_number must be an E.164 number",
                      [("twilio.from_number", f"{number!r} is not like +15551234567")])


class TwilioSide:
    """Twilio's client and validator (None, with `problem`, when not configured) and the call
    registry; one per daemon."""

    def __init__(
        self,
        settings: Settings,
        secrets: Secrets,
        db: Database,
        metrics: Metrics,
        bus: EventBus,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        twilio: TwilioCalls | None = None,
        resilience: Resilience | None = None,
    ) -> None:
        self.metrics = metrics
        self.registry = CallRegistry(db, clock=clock)
        self.link: TwilioLink | None = None
        self.problem: str | None = None  # why dialing is unavailable
        self._signer = RequestValidator(secrets.get("twilio_auth_token") or "-")
        missing = missing_twilio_settings(settings, secrets)
        if missing:
            self.problem = "Twilio is not configured: set " + ", ".join(missing)
            log.info("%s; dialing is off, simulated calls still work", self.problem)
        else:
            try:
                _check_caller_id(settings.twilio.from_number or "")
                validator = TwilioSignatureValidator.from_settings(
                    settings.http, secrets.get("twilio_auth_token"),
                    on_result=self._count_signature)
                client = twilio or TwilioCalls.from_settings(
                    settings.twilio, secrets.get("twilio_auth_token"), resilience=resilience)
            except ConfigError as err:
                details = "; ".join(f"{k}: {v}" for k, v in err.problems)
                self.problem = f"Twilio settings are invalid: {err.message} ({details})"
                log.error("%s; dialing is off", self.problem)
            else:
                self.link = TwilioLink(client, validator, settings.twilio.from_number or "")
        # the pipeline's CallHandoff: the agent's transfer bridges the live call
        self.transfers = Transfers(self.registry, self.link, bus)

    def require(self) -> TwilioLink:
        """The configured Twilio, or UnavailableError saying what to set."""
        if self.link is None:
            raise UnavailableError(self.problem or "Twilio is not configured",
                                   code="twilio_not_configured")
        return self.link

    async def health(self) -> tuple[bool, str]:
        if self.link is not None:
            return True, f"Twilio configured; {len(self.registry.tracked())} call(s) tracked"
        # Not configured is a choice (simulator-only box); configured but invalid is a fault.
        configured = self.problem is not None and self.problem.startswith("Twilio settings are")
        return not configured, self.problem or "Twilio not configured"

    def media_upgrade_validator(self) -> Callable[[WebSocket], bool] | None:
        """The media WebSocket's signature check, or None without Twilio (simulator only)."""
        if self.link is None:
            return None
        validator = self.link.validator

        def check(websocket: WebSocket) -> bool:
            return validator.check_websocket(
                validator.websocket_url(MEDIA_PATH), header_value(websocket.headers)).accepted

        return check

    def sign_media(self, _url: str) -> Mapping[str, str]:
        """Upgrade headers for a local simulated call when signatures are checked (the signature
        covers the public URL the TwiML names, whatever local URL the simulator dials)."""
        if self.link is None:
            return {}
        url = self.link.validator.websocket_url(MEDIA_PATH)
        return {SIGNATURE_HEADER: self._signer.compute_signature(url, {})}

    def _count_signature(self, _path: str, result: SignatureResult) -> None:
        if not result.accepted:
            self.metrics.webhook_signature_failures_total.inc()

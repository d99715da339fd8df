"""Twilio REST calls reautod makes: create a call, hang up, transfer/redirect, start recording.

twilio-python is synchronous (requests), so every call runs in a worker thread; the event loop
never waits on Twilio. `api_base_url` (config `twilio.api_base_url`) points the client at another
host, which the tests use for a local stand-in; twilio-python builds every Api URL from
`client.api.base_url`, so replacing it there is enough.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar
from urllib.parse import urlsplit

from requests import RequestException
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from reautod.config import TwilioSettings
from reautod.errors import ConfigError, ReautodError, UnavailableError
from reautod.observability.logging import mask_phone
from reautod.resilience.service import Resilience, is_transient

log = logging.getLogger(__name__)

STATUS_EVENTS = ("initiated", "ringing", "answered", "completed")
ALREADY_ENDED_CODE = 20404
_T = TypeVar("_T")


class TwilioError(ReautodError):
    """Twilio refused a request; `status` and `twilio_code` are Twilio's."""

    code = "twilio_failed"

    def __init__(self, message: str, *, status: int | None = None,
                 twilio_code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.twilio_code = twilio_code


def _transient(err: BaseException) -> bool:
    """Unreachable, or Twilio answered 429 or 5xx."""
    if isinstance(err, TwilioError):
        return err.status is not None and (err.status == 429 or err.status >= 500)
    return is_transient(err)


def _not_created(err: BaseException) -> bool:
    """A creation is retried only when Twilio said it created nothing (a lost answer may have)."""
    return isinstance(err, TwilioError) and err.status in (429, 503)


class MachineDetection(StrEnum):
    OFF = "off"
    ENABLE = "Enable"  # decide human/machine as soon as possible (hang up on machines)
    DETECT_MESSAGE_END = "DetectMessageEnd"  # wait for the beep (leave a voicemail)


@dataclass(frozen=True)
class OutboundCall:
    """Everything `calls.create` needs; ring timeout and duration cap come from the campaign."""

    to: str
    from_: str
    twiml: str
    status_callback_url: str
    amd_callback_url: str | None = None
    machine_detection: MachineDetection = MachineDetection.ENABLE
    ring_timeout_s: int = 30
    time_limit_s: int = 900

    def validate(self) -> None:
        if not 5 <= self.ring_timeout_s <= 600:
            raise TwilioError(f"ring timeout must be 5..600 s, got {self.ring_timeout_s}")
        if not 1 <= self.time_limit_s <= 14_400:
            raise TwilioError(f"time limit must be 1..14400 s, got {self.time_limit_s}")
        if len(self.twiml) > 4_000:
            raise TwilioError(f"TwiML is {len(self.twiml)} characters; Twilio takes 4,000")
        if self.machine_detection is not MachineDetection.OFF and not self.amd_callback_url:
            raise TwilioError("machine detection needs an AMD callback URL (async AMD)")


@dataclass(frozen=True)
class CreatedCall:
    sid: str
    status: str


class TwilioCalls:
    """Outbound call control over Twilio's REST API, off the event loop."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        api_base_url: str | None = None,
        timeout_s: float = 10.0,
        resilience: Resilience | None = None,
    ) -> None:
        # every request goes through the twilio circuit; updates of a call are retried by the
        # twilio policy, creations only when Twilio said it did not create (429, 503)
        self.resilience = resilience or Resilience()
        if not account_sid or not auth_token:
            raise ConfigError(
                "Twilio account SID and auth token are required to place calls",
                [("twilio.account_sid", "set it"), ("secrets.twilio_auth_token", "provide it")],
            )
        self._client = Client(
            account_sid, auth_token, http_client=TwilioHttpClient(timeout=timeout_s)
        )
        if api_base_url:
            parts = urlsplit(api_base_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(
                    "twilio.api_base_url must be an http(s) URL",
                    [("twilio.api_base_url", f"{api_base_url!r} is not an http(s) URL")],
                )
            self._client.api.base_url = api_base_url.rstrip("/")

    @property
    def rest(self) -> Client:
        """The configured REST client, for other reads of Twilio's API (a call's price)."""
        return self._client

    @classmethod
    def from_settings(cls, twilio: TwilioSettings, auth_token: str | None, *,
                      resilience: Resilience | None = None) -> TwilioCalls:
        """From `settings.twilio` and `secrets.get("twilio_auth_token")`."""
        return cls(twilio.account_sid or "", auth_token or "", api_base_url=twilio.api_base_url,
                   resilience=resilience)

    async def create(self, call: OutboundCall) -> CreatedCall:
        """Place a call; status callbacks for every event, async AMD when enabled."""
        call.validate()
        amd = call.machine_detection is not MachineDetection.OFF

        def create() -> CreatedCall:
            instance = self._client.calls.create(
                to=call.to,
                from_=call.from_,
                twiml=call.twiml,
                status_callback=call.status_callback_url,
                status_callback_event=list(STATUS_EVENTS),
                status_callback_method="POST",
                machine_detection=call.machine_detection.value if amd else None,
                async_amd="true" if amd else None,
                async_amd_status_callback=call.amd_callback_url if amd else None,
                async_amd_status_callback_method="POST" if amd else None,
                timeout=call.ring_timeout_s,
                time_limit=call.time_limit_s,
            )
            return CreatedCall(sid=str(instance.sid), status=str(instance.status or "queued"))

        created = await self._run("create call", create, retry_if=_not_created)
        log.info("created call %s to %s", created.sid, mask_phone(call.to))
        return created

    async def hangup(self, sid: str, *, before_answer: bool = False) -> bool:
        """End a call; True if we ended it, False if it had already ended (not an error)."""
        status = "canceled" if before_answer else "completed"

        def update() -> None:
            self._client.calls(sid).update(status=status)

        try:
            await self._run("hang up", update)
        except TwilioError as err:
            if err.status == 404 or err.twilio_code == ALREADY_ENDED_CODE:
                log.info("call %s had already ended", sid)
                return False
            raise
        return True

    async def redirect(self, sid: str, twiml: str) -> None:
        """Replace what the call is doing with `twiml` (voicemail, goodbye, transfer)."""
        if len(twiml) > 4_000:
            raise TwilioError(f"TwiML is {len(twiml)} characters; Twilio takes 4,000")

        def update() -> None:
            self._client.calls(sid).update(twiml=twiml)

        await self._run("redirect", update)

    async def transfer(self, sid: str, dial_twiml: str) -> None:
        """Hand the call to a human: `dial_twiml` comes from twiml.transfer_twiml."""
        await self.redirect(sid, dial_twiml)

    async def start_recording(
        self, sid: str, *, status_callback_url: str, channels: str = "dual"
    ) -> str:
        """Start recording (only after the consent announcement); returns the RecordingSid."""
        if channels not in ("mono", "dual"):
            raise TwilioError(f"recording channels must be mono or dual, got {channels!r}")

        def create() -> str:
            recording = self._client.calls(sid).recordings.create(
                recording_status_callback=status_callback_url,
                recording_status_callback_event=["in-progress", "completed", "absent"],
                recording_status_callback_method="POST",
                recording_channels=channels,
            )
            return str(recording.sid)

        return await self._run("start recording", create, retry_if=_not_created)

    async def _run(self, what: str, fn: Callable[[], _T], *,
                   retry_if: Callable[[BaseException], bool] | None = None) -> _T:
        return await self.resilience.call(
            "twilio", lambda: self._once(what, fn), transient=_transient, retry_if=retry_if)

    async def _once(self, what: str, fn: Callable[[], _T]) -> _T:
        try:
            return await asyncio.to_thread(fn)
        except TwilioRestException as err:
            raise TwilioError(
                f"Twilio refused to {what}: HTTP {err.status}, code {err.code}: {err.msg}",
                status=err.status, twilio_code=err.code,
            ) from err
        except (RequestException, TwilioException) as err:
            raise UnavailableError(f"cannot reach Twilio to {what}: {err}") from err

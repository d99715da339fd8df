"""Checks X-Twilio-Signature on webhooks and on the media WebSocket upgrade.

The signed URL is always rebuilt from the configured public base URL plus the request path,
never from Host or X-Forwarded-* headers, which a proxy (or an attacker) controls.

Replays: Twilio's signature covers only the URL and the parameters, with no timestamp or nonce,
so a captured request verifies forever and Twilio itself re-delivers callbacks. We do not reject
a repeat; every handler is idempotent (status callbacks are deduplicated by SequenceNumber,
recordings by RecordingSid, AMD results by CallSid), so a replay changes nothing. Repeats are
counted (`SignatureStats.replayed`) by remembering a bounded window of recent signatures.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

from twilio.request_validator import RequestValidator

from reautod.config import HttpSettings
from reautod.errors import ConfigError

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Twilio-Signature"
REPLAY_WINDOW = 10_000


class SignatureResult(StrEnum):
    VALID = "valid"
    REPLAYED = "replayed"  # valid, and seen before: accepted, counted
    MISSING = "missing"
    INVALID = "invalid"

    @property
    def accepted(self) -> bool:
        return self in (SignatureResult.VALID, SignatureResult.REPLAYED)


@dataclass
class SignatureStats:
    """Counters for metrics: the lead exports these (or wires `on_result` to Prometheus)."""

    valid: int = 0
    replayed: int = 0
    missing: int = 0
    invalid: int = 0

    def count(self, result: SignatureResult) -> None:
        setattr(self, result.value, getattr(self, result.value) + 1)


class _MultiParams:
    """Form parameters with repeated names, in the shape RequestValidator reads (`getall`)."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._values: dict[str, list[str]] = {}
        for name, value in pairs:
            self._values.setdefault(name, []).append(value)

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def getall(self, name: str) -> list[str]:
        return self._values[name]


def normalize_base_url(public_base_url: str) -> str:
    """The configured public base URL, checked: http(s), a host, no query or fragment."""
    parts = urlsplit(public_base_url.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(
            "http.public_base_url must be an http(s) URL with a host",
            [("http.public_base_url", f"{public_base_url!r} is not an http(s) URL")],
        )
    if parts.query or parts.fragment:
        raise ConfigError(
            "http.public_base_url must not have a query or fragment",
            [("http.public_base_url", "remove the ?query / #fragment")],
        )
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


class TwilioSignatureValidator:
    """Validates Twilio's signatures against URLs built from the public base URL."""

    def __init__(
        self,
        auth_token: str,
        public_base_url: str,
        *,
        on_result: Callable[[str, SignatureResult], None] | None = None,
        replay_window: int = REPLAY_WINDOW,
    ) -> None:
        if not auth_token:
            raise ConfigError(
                "the Twilio auth token is empty", [("secrets.twilio_auth_token", "empty")]
            )
        self._validator = RequestValidator(auth_token)
        self.base_url = normalize_base_url(public_base_url)
        self.stats = SignatureStats()
        self._on_result = on_result
        self._recent: OrderedDict[bytes, None] = OrderedDict()
        self._replay_window = replay_window

    @classmethod
    def from_settings(
        cls,
        http: HttpSettings,
        auth_token: str | None,
        *,
        on_result: Callable[[str, SignatureResult], None] | None = None,
    ) -> TwilioSignatureValidator:
        """From `settings.http` and `secrets.get("twilio_auth_token")`; both are required."""
        if not http.public_base_url:
            raise ConfigError(
                "http.public_base_url is required to check Twilio signatures",
                [("http.public_base_url", "set it to the https URL Twilio reaches this box at")],
            )
        return cls(auth_token or "", http.public_base_url, on_result=on_result)

    def url_for(self, path: str, query: str = "") -> str:
        """The public http(s) URL Twilio requested for `path` (with its raw query, if any)."""
        url = self.base_url + "/" + path.lstrip("/")
        return f"{url}?{query}" if query else url

    def websocket_url(self, path: str) -> str:
        """The wss:// (or ws://) URL of `path`, exactly as the TwiML names it."""
        url = self.url_for(path)
        return "wss://" + url[len("https://"):] if url.startswith("https://") else (
            "ws://" + url[len("http://"):]
        )

    def check_form(
        self,
        path: str,
        query: str,
        params: Iterable[tuple[str, str]],
        signature: str | None,
    ) -> SignatureResult:
        """Check a form-encoded POST to `path`; `params` are the decoded body pairs."""
        url = self.url_for(path, query)
        return self._check(path, url, _MultiParams(params), signature)

    def check_websocket(self, url: str, signature: str | None) -> SignatureResult:
        """Check a media WebSocket upgrade: the signature covers the wss:// URL, no params."""
        return self._check(urlsplit(url).path, url, _MultiParams(()), signature)

    def _check(
        self, path: str, url: str, params: _MultiParams, signature: str | None
    ) -> SignatureResult:
        if not signature:
            result = SignatureResult.MISSING
        elif self._validator.validate(url, params, signature):
            result = self._remember(url, signature)
        else:
            result = SignatureResult.INVALID
        self.stats.count(result)
        if not result.accepted:
            log.warning("rejected Twilio request to %s: signature %s", path, result)
        if self._on_result is not None:
            self._on_result(path, result)
        return result

    def _remember(self, url: str, signature: str) -> SignatureResult:
        key = hashlib.sha256(f"{url}\n{signature}".encode()).digest()
        if key in self._recent:
            self._recent.move_to_end(key)
            return SignatureResult.REPLAYED
        self._recent[key] = None
        if len(self._recent) > self._replay_window:
            self._recent.popitem(last=False)
        return SignatureResult.VALID


def header_value(headers: Mapping[str, str], name: str = SIGNATURE_HEADER) -> str | None:
    """A header from a case-insensitive mapping (Starlette's Headers) or a plain dict."""
    value = headers.get(name)
    if value is None:
        value = headers.get(name.lower())
    return value

"""Deployment environments (`environment = "dev" | "staging" | "prod"`) and what each refuses.

The same checks run in every environment; what differs is what a finding does:

- `dev`: nothing is checked. The embedded default (SQLite, in-process sessions, no secrets,
  plain http) is exactly what a laptop or a demo wants.
- `staging`: every finding is a warning, printed by `reautod --check-config` and logged at
  start-up and reload, so a staging box shows what would stop it in prod without being stopped.
- `prod`: any finding refuses the configuration (a `ConfigError` listing every finding): the
  daemon does not start, `--check-config` exits 2, and a reload keeps the running config.

A finding is a setting that loses data, exposes calls or makes forged webhooks possible on a
production box: the embedded SQLite database or in-process sessions, no https public URL for
Twilio, plain http on an address other machines can reach (TLS belongs on the port itself or on
a proxy in front of a loopback bind), and secrets that are missing, too short to be keys, or one of the well-known values our
examples and the development compose file ship (they are public, so they are not secrets).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from reautod.errors import ConfigError
from reautod.security.keys import KeyRing

if TYPE_CHECKING:
    from reautod.config import Secrets, Settings

# Secrets every production box needs: webhook signatures, admin API tokens, encryption at rest.
# The ElevenLabs key is optional (the premium TTS tier is off without it).
REQUIRED_SECRETS = ("twilio_auth_token", "jwt_secret", "encryption_key")
# Secrets used as keys (HMAC signing, encryption): shorter than this is guessable.
KEY_SECRETS = ("jwt_secret", "encryption_key")
MIN_KEY_LENGTH = 32
# Values shipped in our examples (docker/compose.yaml, docs) and the usual placeholders. Compared
# case-insensitively after stripping; a password in database_url or redis_url counts too.
KNOWN_DEFAULT_SECRETS = frozenset(
    {
        "changeme", "change-me", "change_me", "secret", "password", "passw0rd", "admin",
        "default", "example", "test", "dev", "reautod", "postgres", "redis",
        "dev-only-jwt-secret-not-for-production-use",
        "dev-only-encryption-key-not-for-production-use",
        "ZGV2LW9ubHktcmVjb3JkaW5ncy1rZXktbm90LXByb2Q=".lower(),  # docker/compose.yaml's key
        "dev-only-twilio-token",
    }
)


@dataclass(frozen=True)
class Finding:
    """One unsafe setting: the config path it concerns and why it is unsafe."""

    field: str
    problem: str


def unsafe_settings(settings: Settings, secrets: Secrets) -> list[Finding]:
    """Every setting that is unsafe for production, in a stable order."""
    findings: list[Finding] = []
    if settings.database_backend != "postgres":
        findings.append(Finding(
            "database_url",
            "prod needs PostgreSQL (postgresql+psycopg://...): the embedded SQLite database "
            "is for one process on a laptop, with no server-side backups or shared dialer",
        ))
    elif _is_default(_url_password(settings.database_url)):
        findings.append(Finding("database_url", "the database password is a well-known default"))
    if settings.session_backend != "redis":
        findings.append(Finding(
            "redis_url",
            "prod needs Redis: with in-process sessions a restart loses every live call's state",
        ))
    elif _is_default(_url_password(settings.redis_url)):
        findings.append(Finding("redis_url", "the Redis password is a well-known default"))
    findings.extend(_public_url_findings(settings.http.public_base_url))
    if not settings.http.tls and not _is_loopback(settings.http.host):
        findings.append(Finding(
            "http.host",
            f"{settings.http.host} is not a loopback address and the port speaks plain http: set "
            "http.tls_cert_file and http.tls_key_file, or bind 127.0.0.1 behind the TLS proxy",
        ))
    for name in REQUIRED_SECRETS:
        value = secrets.get(name)
        field = f"secrets.{name}"
        if not value:
            findings.append(Finding(field, "missing: provide it as a systemd credential or file"))
        elif _is_default(value):
            findings.append(Finding(field, "a well-known default value: generate a random one"))
        elif name == "encryption_key":
            try:
                KeyRing.parse(value)
            except ConfigError as err:
                findings.append(Finding(field, "; ".join(p for _, p in err.problems)))
        elif name in KEY_SECRETS and len(value) < MIN_KEY_LENGTH:
            findings.append(Finding(
                field, f"{len(value)} characters; a key needs at least {MIN_KEY_LENGTH} "
                "(e.g. `openssl rand -hex 32`)",
            ))
    premium = secrets.get("elevenlabs_api_key")
    if premium and _is_default(premium):
        findings.append(Finding(
            "secrets.elevenlabs_api_key", "a well-known default value: use the real key or none",
        ))
    return findings


def check_environment(settings: Settings, secrets: Secrets) -> list[str]:
    """Apply `settings.environment`: raise in prod, return warnings in staging, nothing in dev."""
    if settings.environment == "dev":
        return []
    findings = unsafe_settings(settings, secrets)
    if settings.environment == "prod" and findings:
        raise ConfigError(
            f"environment = \"prod\" refuses {len(findings)} unsafe setting(s)",
            [(f.field, f.problem) for f in findings],
        )
    return [f"{f.field}: {f.problem} (allowed in staging, refused in prod)" for f in findings]


def _public_url_findings(url: str | None) -> list[Finding]:
    field = "http.public_base_url"
    if not url:
        return [Finding(field, "not set: Twilio needs an https URL to reach this box")]
    parts = urlsplit(url)
    if parts.scheme != "https":
        return [Finding(
            field, f"{parts.scheme or 'no'} scheme: Twilio's webhooks and the media stream "
            "must arrive over TLS (https://, and wss:// for the stream)",
        )]
    if not parts.hostname:
        return [Finding(field, "no host name")]
    return []


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def _url_password(url: str | None) -> str | None:
    return urlsplit(url).password if url else None


def _is_default(value: str | None) -> bool:
    return value is not None and value.strip().lower() in KNOWN_DEFAULT_SECRETS

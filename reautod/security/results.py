"""Typed params and results of the security control methods, shared by the daemon and reautoctl
(and the admin API next): a client never guesses a dict's keys."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from reautod.security.principal import Role
from reautod.store.enums import CredentialKind, PrivacyRegime
from reautod.store.repositories._base import E164


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Result(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _aware(value: datetime | None) -> datetime | None:
    """A naive time from a client is read as UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class SubjectParams(_Params):
    number: str = Field(description="The person's phone number in E.164 (+15551234567)")

    @field_validator("number")
    @classmethod
    def _e164(cls, value: str) -> str:
        value = value.strip()
        if not E164.match(value):
            raise ValueError("the number must be in E.164 form, like +15551234567")
        return value


class SubjectRequestParams(SubjectParams):
    regime: PrivacyRegime = Field(PrivacyRegime.GDPR, description="gdpr, uk_gdpr or ccpa")
    received_at: datetime | None = Field(None, description="When the request came in (default "
                                         "now); the legal due dates run from it")

    _received = field_validator("received_at")(_aware)


class EraseParams(SubjectRequestParams):
    confirm: bool = Field(False, description="Must be true: erasure cannot be undone")


class RequestListParams(_Params):
    open_only: bool = False
    limit: int = Field(200, ge=1, le=10_000)


class AuditListParams(_Params):
    since: datetime | None = None
    limit: int = Field(100, ge=1, le=10_000)

    _since = field_validator("since")(_aware)


class Deadline(_Result):
    regime: PrivacyRegime
    received_at: datetime
    acknowledge_by: datetime | None
    due_at: datetime


class ExportResult(_Result):
    request_id: uuid.UUID
    deadline: Deadline
    completed_at: datetime
    path: str = Field(description="The archive (zip of subject.json and recordings/*.wav)")
    size_bytes: int
    sha256: str
    rows: dict[str, int] = Field(description="Rows exported per table")
    recordings: int
    recordings_unreadable: int = Field(description="Recordings listed but not in the archive "
                                       "(file gone, or no key opens it): see subject.json")


class ErasureReceipt(_Result):
    request_id: uuid.UUID
    subject_hash: str = Field(description="What is kept: HMAC-SHA256 of the number under the "
                              "erasure salt; it keeps the number from being dialed or imported")
    deadline: Deadline
    completed_at: datetime
    rows_removed: dict[str, int]
    recording_files_removed: int
    export_archives_removed: int
    other_holders: dict[str, int] = Field(description="Items removed by each other holder "
                                          "(live sessions, caches)")
    processors_to_notify: dict[str, list[str]] = Field(
        description="Processors holding copies, with their references (Twilio call SIDs)")


class PrivacyRequestView(_Result):
    request_id: uuid.UUID
    kind: str
    subject_hash: str
    actor: str
    deadline: Deadline
    status: str
    completed_at: datetime | None
    overdue: bool


class PrivacyRequestList(_Result):
    requests: list[PrivacyRequestView]


class ErasureStatus(_Result):
    erased: bool


class AuditEntryView(_Result):
    id: int
    at: datetime
    actor: str
    origin: str | None
    action: str
    outcome: str
    target_type: str | None
    target_id: str | None
    detail: dict[str, object]


class AuditList(_Result):
    entries: list[AuditEntryView]


class ChainVerdict(_Result):
    ok: bool
    entries: int
    head_hash: str
    starts_after: int | None
    first_bad_id: int | None
    problem: str | None


class KeyStatus(_Result):
    current: str = Field(description="Id of the key new recordings are wrapped with")
    older: list[str] = Field(description="Ids of older keys still accepted")
    files_by_key: dict[str, int] = Field(description="Sealed recording files per wrapping key "
                                         "id (a file being re-wrapped counts under both)")
    unreadable: list[str] = Field(description="Files no key of the ring opens")
    plain_files: int = Field(description="Recordings written without encryption")


class RotationReport(_Result):
    current: str
    rewrapped: int
    already_current: int
    unreadable: list[str]
    older_keys_still_needed: list[str] = Field(description="Older key ids some file still "
                                               "needs; empty: they can leave the credential")


AUDIO_CHUNK_MAX = 512 * 1024  # base64 of it fits one control-socket line with room to spare


class AudioParams(_Params):
    call_id: str = Field(min_length=1, max_length=64)
    direction: Literal["inbound", "outbound"] = "inbound"
    offset: int = Field(0, ge=0)
    length: int = Field(AUDIO_CHUNK_MAX, ge=1, le=AUDIO_CHUNK_MAX)


class AudioChunk(_Result):
    """Bytes [offset, offset + len) of the recording as WAV (decrypted); `size` is the whole."""

    call_id: str
    direction: str
    size: int
    offset: int
    data: str  # base64
    sha256: str  # of the whole WAV, as stored when it was recorded


# -- admin API credentials (reautod.api.credentials): reautoctl token create|list|revoke

MAX_TOKEN_MINUTES = 12 * 60  # a token lives at most this long (api.admin.MAX_TTL)
MAX_KEY_DAYS = 3650
MAX_REFRESH_DAYS = 90  # a refresh token's family (rotations included) lives at most this long
REFRESHED_TOKEN_MINUTES = 15  # the lifetime of a token a refresh token is exchanged for
_SUBJECT = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._@-]+$",
                 description="who it is for (shown in the audit log)")


class TokenParams(_Params):
    subject: str = _SUBJECT
    role: Role
    ttl_minutes: int = Field(15, ge=1, le=MAX_TOKEN_MINUTES)
    refresh_days: int | None = Field(
        None, ge=1, le=MAX_REFRESH_DAYS,
        description="also a refresh token, valid this many days (rotations included)")


class RefreshParams(_Params):
    refresh_token: str = Field(min_length=1, max_length=128,
                               description="the refresh token from token create or the last "
                               "refresh (each is good for one exchange)")


class ApiKeyParams(_Params):
    subject: str = _SUBJECT
    role: Role
    expires_days: int | None = Field(None, ge=1, le=MAX_KEY_DAYS,
                                     description="none: until revoked")


class TokenListParams(_Params):
    all: bool = Field(False, description="also revoked and expired ones")
    limit: int = Field(200, ge=1, le=1000)


class TokenRevokeParams(_Params):
    credential_id: str = Field(min_length=16, max_length=32, pattern=r"^[0-9a-f]+$",
                    description="a token's jti or an API key's id (token list)")


class CredentialInfo(_Result):
    """A credential as `token list` shows it (never its secret)."""

    id: str
    kind: CredentialKind
    subject: str
    role: Role
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None
    family: str | None = Field(None, description="a refresh family: the first refresh token's "
                               "id, shared by its rotations and the tokens they made")
    spent_at: datetime | None = Field(None, description="a refresh token: when it was used")


class TokenResult(_Result):
    """A new token or API key: `token` is the secret, shown this once."""

    token: str
    id: str
    kind: CredentialKind
    subject: str
    role: Role
    expires_at: datetime | None
    refresh_token: str | None = Field(None, description="with a refresh token: its secret, "
                                      "shown this once")
    refresh_id: str | None = None
    refresh_expires_at: datetime | None = None


class CredentialList(_Result):
    credentials: list[CredentialInfo]

"""Legal due dates of subject requests; roles; the audit hook's edges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import BaseModel

from reautod.errors import NotFoundError, PermissionDeniedError, UnavailableError, ValidationError
from reautod.methods import NoParams
from reautod.security.audit import AuditTrail
from reautod.security.deadlines import add_business_days, add_month, deadlines
from reautod.security.principal import (
    Permission,
    Principal,
    Role,
    acting_as,
    current_principal,
    require,
)
from reautod.store.database import Database
from reautod.store.enums import PrivacyRegime
from reautod.store.repositories.audit import AuditRepository


@pytest.mark.parametrize("received,due", [
    (datetime(2026, 1, 31, 9, tzinfo=UTC), datetime(2026, 2, 28, 9, tzinfo=UTC)),
    (datetime(2028, 1, 31, 9, tzinfo=UTC), datetime(2028, 2, 29, 9, tzinfo=UTC)),
    (datetime(2026, 12, 15, 9, tzinfo=UTC), datetime(2027, 1, 15, 9, tzinfo=UTC)),
    (datetime(2026, 3, 10, 9, tzinfo=UTC), datetime(2026, 4, 10, 9, tzinfo=UTC)),
])
def test_gdpr_one_month(received: datetime, due: datetime) -> None:
    for regime in (PrivacyRegime.GDPR, PrivacyRegime.UK_GDPR):
        d = deadlines(regime, received)
        assert d.due_at == due == add_month(received) and d.acknowledge_by is None


def test_ccpa_ten_business_days_and_45_days() -> None:
    # Monday 2026-11-16: 10 business days skip two weekends and Thanksgiving (Thu 26 Nov)
    received = datetime(2026, 11, 16, 14, tzinfo=UTC)
    d = deadlines(PrivacyRegime.CCPA, received)
    assert d.acknowledge_by == datetime(2026, 12, 1, 14, tzinfo=UTC)
    assert d.due_at == received + timedelta(days=45)
    assert add_business_days(datetime(2026, 7, 2, tzinfo=UTC), 1) == datetime(
        2026, 7, 6, tzinfo=UTC)  # Friday 3 July 2026 is Independence Day observed
    with pytest.raises(ValidationError):
        deadlines(PrivacyRegime.CCPA, datetime(2026, 1, 1))


def test_roles() -> None:
    assert current_principal() is None
    with pytest.raises(PermissionDeniedError, match="no caller identity"):
        require(Permission.READ)
    allowed = {
        Role.ADMIN: set(Permission),
        Role.OPERATOR: {Permission.OPERATE, Permission.READ, Permission.RECORDINGS},
        Role.ANALYST: {Permission.READ},
        Role.AUDITOR: {Permission.AUDIT},
        Role.INTEGRATION: {Permission.INTAKE},
    }
    for role, permissions in allowed.items():
        who = Principal("token:t", role, "api")
        with acting_as(who):
            for permission in Permission:
                if permission in permissions:
                    assert require(permission) is who
                else:
                    with pytest.raises(PermissionDeniedError, match=permission.value):
                        require(permission)
    assert current_principal() is None


class Params(BaseModel):
    call_id: str
    note: str | None = None


async def test_the_hook_audits_state_changes_only(db: Database) -> None:
    repo = AuditRepository(db)
    trail = AuditTrail(repo)
    who = Principal("uid:1000", Role.ADMIN, "control socket /run/x pid 7")
    seen: list[Principal | None] = []

    async def handler(_params: BaseModel) -> str:
        seen.append(current_principal())
        return "done"

    async def missing(_params: BaseModel) -> str:
        raise NotFoundError("no such call")

    async def broken(_params: BaseModel) -> str:
        raise RuntimeError("bug")

    params = Params(call_id="CA1", note="+15550001111")
    assert await trail.run_method("status", NoParams(), handler, who, changes_state=False) == "done"
    assert await trail.run_method("call.hangup", params, handler, who, changes_state=True) == "done"
    with pytest.raises(NotFoundError):
        await trail.run_method("call.hangup", params, missing, who, changes_state=True)
    with pytest.raises(RuntimeError):
        await trail.run_method("call.hangup", params, broken, who, changes_state=True)
    assert seen == [who, who]
    rows = await repo.recent()
    assert [(r.action, r.outcome, r.target_type, r.target_id) for r in rows] == [
        ("call.hangup", "internal", "call", "CA1"), ("call.hangup", "not_found", "call", "CA1"),
        ("call.hangup", "ok", "call", "CA1")]
    assert rows[0].detail == {"params": ["call_id", "note"]} and rows[0].actor == "uid:1000"
    assert rows[0].origin == "control socket /run/x pid 7"


async def test_a_lost_audit_entry_does_not_undo_the_operation(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, db: Database
) -> None:
    repo = AuditRepository(db)

    async def down(*_a: object, **_k: object) -> int:
        raise UnavailableError("database is unreachable")

    monkeypatch.setattr(repo, "append", down)

    async def handler(_params: BaseModel) -> str:
        return "hung up"

    who = Principal("uid:0", Role.ADMIN, "test")
    result = await AuditTrail(repo).run_method("call.hangup", Params(call_id="CA2"), handler,
                                               who, changes_state=True)
    assert result == "hung up"
    assert "audit entry for call.hangup by uid:0 (ok) not written" in caplog.text

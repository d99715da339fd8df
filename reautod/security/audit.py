"""The audit trail: every state-changing operation, who by, from where, with what result.

`AuditTrail.record` appends one entry to the hash-chained log (store/repositories/audit.py).
`AuditTrail.run_method` is the hook a transport calls around a state-changing method: it runs the
handler as the caller and records the method, the names of the params given (never their
values: they may hold phone numbers), the target when the params name one, and the outcome (ok,
or the error code). An operation whose audit entry cannot be written still returns its result
(it already happened); the lost entry is logged at ERROR with the operation's name.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel

from reautod.errors import ReautodError
from reautod.security.principal import Principal, acting_as, current_principal
from reautod.store.repositories.audit import AuditRepository

log = logging.getLogger(__name__)

T = TypeVar("T")

# params that name what a method acts on, in the order they are looked for
_TARGET_PARAMS = (("call_id", "call"), ("campaign", "campaign"), ("campaign_id", "campaign"),
                  ("request_id", "privacy_request"), ("revision", "schema"),
                  ("credential_id", "api_credential"))


class AuditTrail:
    def __init__(self, repository: AuditRepository) -> None:
        self.repository = repository

    async def record(
        self,
        action: str,
        *,
        principal: Principal | None = None,
        outcome: str = "ok",
        target_type: str | None = None,
        target_id: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> int:
        """Append one entry for `principal` (default: the caller of the current request)."""
        who = principal or current_principal()
        return await self.repository.append(
            who.subject if who else "unknown", action, target_type=target_type,
            target_id=target_id, detail=dict(detail or {}), origin=who.origin if who else None,
            outcome=outcome)

    async def run_method(
        self,
        name: str,
        params: BaseModel,
        handler: Callable[[BaseModel], Awaitable[T]],
        principal: Principal,
        *,
        changes_state: bool,
    ) -> T:
        """Run a control or API method as `principal`; state-changing ones are audited."""
        with acting_as(principal):
            if not changes_state:
                return await handler(params)
            given = params.model_dump(mode="json", exclude_unset=True)
            target_type, target_id = _target(given)
            detail = {"params": sorted(given)}
            try:
                result = await handler(params)
            except ReautodError as err:
                await self._record_safely(name, principal, err.code, target_type, target_id,
                                          detail)
                raise
            except Exception:
                await self._record_safely(name, principal, "internal", target_type, target_id,
                                          detail)
                raise
            await self._record_safely(name, principal, "ok", target_type, target_id, detail)
            return result

    async def _record_safely(self, name: str, principal: Principal, outcome: str,
                             target_type: str | None, target_id: str | None,
                             detail: dict[str, Any]) -> None:
        try:
            await self.record(name, principal=principal, outcome=outcome,
                              target_type=target_type, target_id=target_id, detail=detail)
        except ReautodError as err:
            log.error("audit entry for %s by %s (%s) not written: %s", name, principal.subject,
                      outcome, err.message)


def _target(given: Mapping[str, Any]) -> tuple[str | None, str | None]:
    for param, kind in _TARGET_PARAMS:
        value = given.get(param)
        if isinstance(value, str | int) and not isinstance(value, bool):
            return kind, str(value)[:64]
    return None, None

"""Who is asking: a principal (subject, role, origin) per request, and what each role may do.

The transport that authenticates a request (the control socket by peer credentials today, the
admin API by token next) sets the principal for the request with `acting_as`; handlers ask
`require(permission)`. With no principal set, everything is refused: a transport that forgets
to say who is calling grants nothing.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

from reautod.errors import PermissionDeniedError


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    ANALYST = "analyst"  # reads calls and figures, never recordings
    AUDITOR = "auditor"  # the audit log only
    INTEGRATION = "integration"  # lead intake and exports


class Permission(StrEnum):
    OPERATE = "operate"  # change campaigns, calls, DNC, budgets
    READ = "read"  # calls, transcripts, stats
    RECORDINGS = "recordings"  # play or export recordings (decrypts them)
    AUDIT = "audit"  # read and verify the audit log
    PRIVACY = "privacy"  # subject requests: export and erase
    KEYS = "keys"  # master-key status and rotation
    INTAKE = "intake"  # lead intake and exports by machine clients
    TOKENS = "tokens"  # make admin API tokens


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.OPERATOR: frozenset({Permission.OPERATE, Permission.READ, Permission.RECORDINGS}),
    Role.ANALYST: frozenset({Permission.READ}),
    Role.AUDITOR: frozenset({Permission.AUDIT}),
    Role.INTEGRATION: frozenset({Permission.INTAKE}),
}


@dataclass(frozen=True)
class Principal:
    """`subject`: "uid:1000", "token:<sub>", "system:retention"; `origin`: where from."""

    subject: str
    role: Role
    origin: str

    def may(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]


SYSTEM = Principal("system", Role.ADMIN, "reautod")


def control_peer(uid: int, pid: int, socket: str) -> Principal:
    """A control-socket peer. The socket admits only root, the daemon's user and the configured
    uids/gids (file mode and SO_PEERCRED), each an administrator of this box."""
    return Principal(f"uid:{uid}", Role.ADMIN, f"control socket {socket} pid {pid}")


_current: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "reautod_principal", default=None)


@contextlib.contextmanager
def acting_as(principal: Principal) -> Iterator[Principal]:
    """Run the enclosed request as `principal` (a context variable: tasks it starts inherit it)."""
    token = _current.set(principal)
    try:
        yield principal
    finally:
        _current.reset(token)


def current_principal() -> Principal | None:
    return _current.get()


def require(permission: Permission) -> Principal:
    """The calling principal, if its role holds `permission`; PermissionDeniedError otherwise."""
    principal = _current.get()
    if principal is None:
        raise PermissionDeniedError("no caller identity: the request's transport did not say "
                                    "who is calling")
    if not principal.may(permission):
        raise PermissionDeniedError(
            f"{principal.subject} ({principal.role}) may not {permission.value}")
    return principal

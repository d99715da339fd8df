"""`reautoctl token create|list|revoke`: the admin API's credentials (/api/v1).

`create --subject S --role R [--ttl-minutes N]` makes a bearer token (a JWT the daemon signs with
the jwt_secret credential), with `--refresh-days N` also a refresh token (exchanged at
`POST /api/v1/token/refresh` for a new token and refresh token, each good for one exchange);
`create --api-key [--expires-days N]` an API key for a machine client (only its hash is kept). The
secrets are printed once. `list [--all]` shows them (never the secrets), `revoke ID` ends one now
(a refresh token with its family). Making and revoking are audited."""

from __future__ import annotations

import argparse

from reautod.control.context import CliContext, key_values, table
from reautod.security.principal import Role
from reautod.security.results import (
    MAX_KEY_DAYS,
    MAX_REFRESH_DAYS,
    CredentialInfo,
    CredentialList,
    TokenResult,
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("token", help="admin API tokens and API keys")
    actions = parser.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="a token or API key for a subject and role "
                                "(printed once)")
    create.add_argument("--subject", required=True, help="who it is for (in the audit log)")
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument("--ttl-minutes", type=int, default=15,
                        help="a token's lifetime in minutes (default 15, at most 720)")
    kind = create.add_mutually_exclusive_group()
    kind.add_argument("--refresh-days", type=int, default=None,
                      help="also a refresh token valid this many days, rotations included "
                      f"(at most {MAX_REFRESH_DAYS})")
    kind.add_argument("--api-key", action="store_true",
                      help="an API key for a machine client instead of a token")
    create.add_argument("--expires-days", type=int, default=None,
                        help=f"an API key's lifetime in days (default: until revoked; at most "
                        f"{MAX_KEY_DAYS})")
    create.set_defaults(func=run_create)
    listing = actions.add_parser("list", help="live tokens and API keys (never their secrets)")
    listing.add_argument("--all", action="store_true", help="also revoked and expired ones")
    listing.set_defaults(func=run_list)
    revoke = actions.add_parser("revoke", help="end a token (by jti) or API key (by id) now")
    revoke.add_argument("id", help="the ID column of token list")
    revoke.set_defaults(func=run_revoke)


def run_create(args: argparse.Namespace, ctx: CliContext) -> int:
    if args.api_key:
        made = ctx.fetch(TokenResult, "token.create_key", {
            "subject": args.subject, "role": args.role, "expires_days": args.expires_days})
    else:
        made = ctx.fetch(TokenResult, "token.create", {
            "subject": args.subject, "role": args.role, "ttl_minutes": args.ttl_minutes,
            "refresh_days": args.refresh_days})
    refresh = ([("refresh id", made.refresh_id or ""),
                ("refresh expires", _when(made.refresh_expires_at)),
                ("refresh secret", made.refresh_token)] if made.refresh_token else [])
    ctx.emit(made.model_dump(mode="json"), lambda _d: key_values([
        ("id", made.id), ("kind", made.kind.value), ("subject", made.subject),
        ("role", made.role.value), ("expires", _when(made.expires_at)), ("secret", made.token),
        *refresh]))
    return 0


def _when(at: object) -> str:
    return "never" if at is None else f"{at:%Y-%m-%d %H:%M:%S} UTC"


def _row(c: CredentialInfo) -> list[str]:
    state = ("revoked" if c.revoked_at is not None
             else "spent" if c.spent_at is not None else "live")
    return [c.id, c.kind.value, c.subject, c.role.value, _when(c.created_at), c.created_by,
            _when(c.expires_at), state]


def run_list(args: argparse.Namespace, ctx: CliContext) -> int:
    found = ctx.fetch(CredentialList, "token.list", {"all": args.all})
    ctx.emit(found.model_dump(mode="json"), lambda _d: table(
        ["ID", "KIND", "SUBJECT", "ROLE", "CREATED", "BY", "EXPIRES", "STATE"],
        [_row(c) for c in found.credentials]))
    return 0


def run_revoke(args: argparse.Namespace, ctx: CliContext) -> int:
    gone = ctx.fetch(CredentialInfo, "token.revoke", {"credential_id": args.id})
    ctx.emit(gone.model_dump(mode="json"), lambda _d: key_values([
        ("id", gone.id), ("kind", gone.kind.value), ("subject", gone.subject),
        ("revoked", _when(gone.revoked_at)), ("by", gone.revoked_by or "")]))
    return 0

"""`reautoctl token create --subject S --role R [--ttl-minutes N]`: a bearer token for the admin
API (/api/v1). The daemon signs it with the jwt_secret credential; the token is printed once and
never stored. Making one is audited."""

from __future__ import annotations

import argparse

from reautod.api.admin import TokenResult
from reautod.control.context import CliContext, key_values
from reautod.security.principal import Role


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("token", help="admin API bearer tokens")
    actions = parser.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="a token for a subject and role (printed once)")
    create.add_argument("--subject", required=True, help="who it is for (in the audit log)")
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument("--ttl-minutes", type=int, default=15,
                        help="lifetime in minutes (default 15, at most 720)")
    create.set_defaults(func=run_create)


def run_create(args: argparse.Namespace, ctx: CliContext) -> int:
    made = TokenResult.model_validate(ctx.call("token.create", {
        "subject": args.subject, "role": args.role, "ttl_minutes": args.ttl_minutes}))
    ctx.emit(made.model_dump(mode="json"), lambda _d: key_values([
        ("subject", made.subject), ("role", made.role.value),
        ("expires", f"{made.expires_at:%Y-%m-%d %H:%M:%S} UTC"), ("token", made.token)]))
    return 0

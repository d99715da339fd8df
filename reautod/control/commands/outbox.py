"""`reautoctl outbox status|list|retry|replay|dead`: the webhook and confirmation outbox."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from reautod.control.context import CliContext, key_values, table
from reautod.errors import ValidationError
from reautod.integrations.control import (
    DeadLettersResult,
    OutboxListResult,
    OutboxStatusResult,
    RequeuedResult,
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("outbox", help="webhook deliveries: state, dead letters, retry")
    actions = parser.add_subparsers(dest="outbox_command", metavar="ACTION", required=True)
    actions.add_parser("status", help="messages by state and endpoint").set_defaults(func=run_status)

    listing = actions.add_parser("list", help="recent messages (no bodies)")
    listing.add_argument("--status", choices=["pending", "delivering", "delivered", "dead"])
    listing.add_argument("--endpoint")
    listing.add_argument("--limit", type=int, default=50)
    listing.set_defaults(func=run_list)

    retry = actions.add_parser("retry", help="put dead letters back in the queue")
    retry.add_argument("ids", nargs="*", help="outbox or dead-letter ids")
    retry.add_argument("--all", action="store_true", help="every dead letter")
    retry.set_defaults(func=run_retry)

    replay = actions.add_parser("replay", help="deliver again what was delivered since a time")
    replay.add_argument("--since", required=True, help="ISO date or time (UTC if no zone)")
    replay.add_argument("--endpoint")
    replay.add_argument("--event-type")
    replay.set_defaults(func=run_replay)

    dead = actions.add_parser("dead", help="the dead letters, newest first")
    dead.add_argument("--limit", type=int, default=50)
    dead.set_defaults(func=run_dead)


def parse_since(text: str) -> datetime:
    """An ISO date or date-time; UTC when it names no zone."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError as err:
        raise ValidationError(f"--since {text!r} is not an ISO date or time") from err
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def run_status(args: argparse.Namespace, ctx: CliContext) -> int:
    result = ctx.fetch(OutboxStatusResult, "outbox.status")

    def render(_: Any) -> str:
        pairs: list[tuple[str, Any]] = list(result.by_status.items())
        pairs += [("dead letters", result.dead_letters),
                  ("oldest undelivered", _when(result.oldest_pending_at)),
                  ("endpoints", ", ".join(result.endpoints) or "none configured")]
        return key_values(pairs)

    ctx.emit(result.model_dump(mode="json"), render)
    return 0


def run_list(args: argparse.Namespace, ctx: CliContext) -> int:
    params: dict[str, Any] = {"limit": args.limit}
    if args.status:
        params["status"] = args.status
    if args.endpoint:
        params["endpoint"] = args.endpoint
    result = ctx.fetch(OutboxListResult, "outbox.list", params)
    ctx.emit(result.model_dump(mode="json"), lambda _: table(
        ["ID", "EVENT", "ENDPOINT", "STATUS", "TRIES", "NEXT", "ERROR"],
        [[str(m.id), m.event_type, m.endpoint, m.status, m.attempts, _when(m.next_attempt_at),
          (m.last_error or "")[:60]] for m in result.messages]))
    return 0


def _requeued(ctx: CliContext, result: RequeuedResult, verb: str) -> int:
    ctx.emit(result.model_dump(mode="json"), lambda _: f"{len(result.queued)} message(s) {verb}")
    return 0


def run_retry(args: argparse.Namespace, ctx: CliContext) -> int:
    params: dict[str, Any] = {"all": True} if args.all else {"ids": args.ids}
    return _requeued(ctx, ctx.fetch(RequeuedResult, "outbox.retry", params),
                     "back in the queue")


def run_replay(args: argparse.Namespace, ctx: CliContext) -> int:
    params: dict[str, Any] = {"since": parse_since(args.since).isoformat()}
    if args.endpoint:
        params["endpoint"] = args.endpoint
    if args.event_type:
        params["event_type"] = args.event_type
    return _requeued(ctx, ctx.fetch(RequeuedResult, "outbox.replay", params),
                     "queued again")


def run_dead(args: argparse.Namespace, ctx: CliContext) -> int:
    result = ctx.fetch(DeadLettersResult, "outbox.dead", {"limit": args.limit})
    ctx.emit(result.model_dump(mode="json"), lambda _: table(
        ["ID", "OUTBOX ID", "EVENT", "ENDPOINT", "TRIES", "DEAD AT", "ERROR"],
        [[str(d.id), str(d.outbox_id or "-"), d.event_type, d.endpoint or "-", d.attempts,
          _when(d.dead_at), (d.last_error or "")[:60]] for d in result.dead_letters]))
    return 0

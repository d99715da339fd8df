"""`reautoctl events`: tail the daemon's event stream (calls, turns, barge-ins, health, log)."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from reautod.control.client import ControlClient
from reautod.control.context import CliContext
from reautod.security.text import terminal_safe


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "events", help="tail live events until interrupted",
        description="Print events as they happen. Topics: call, turn, barge_in, agent, cost, "
        "health, daemon, log (a prefix like `call` matches call.started/state/ended).",
    )
    parser.add_argument("topics", nargs="*", metavar="TOPIC", help="only these (default: all)")
    parser.add_argument("--json", dest="events_json", action="store_true",
                        help="one JSON object per line, exactly as the daemon sent it")
    parser.add_argument("--count", type=int, default=None, metavar="N",
                        help="exit after N events (scripts, tests)")
    parser.set_defaults(func=run)


def _value(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False) if (" " in value or not value) else value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def render_event(message: dict[str, Any]) -> str:
    """`10:00:01.234 call.started call_id=CA1 lead_name="Dana W" ...` (time in UTC as sent)."""
    ts = str(message.get("ts", ""))
    clock = ts[11:23] if len(ts) >= 23 else ts
    data = message.get("data") or {}
    fields = " ".join(f"{k}={_value(v)}" for k, v in data.items() if v not in (None, {}, []))
    return f"{clock} {message.get('event', '?')} {fields}".rstrip()


async def tail(ctx: CliContext, topics: list[str], as_json: bool, count: int | None) -> int:
    seen = 0
    async with ControlClient(ctx.socket_path) as client:
        async for message in client.subscribe(topics or None):
            if as_json:
                # ASCII JSON: no control or bidi character reaches the terminal as itself
                line = json.dumps(message, separators=(",", ":"), default=str)
            else:
                line = terminal_safe(render_event(message))
            ctx.out.write(line + "\n")
            ctx.out.flush()
            seen += 1
            if count is not None and seen >= count:
                break
    return 0


def run(args: argparse.Namespace, ctx: CliContext) -> int:
    return asyncio.run(tail(ctx, list(args.topics), ctx.json or args.events_json, args.count))

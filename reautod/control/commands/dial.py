"""`reautoctl dial NUMBER [--campaign X]`: call one number now (DNC and window checked first)."""

from __future__ import annotations

import argparse
from typing import Any

from reautod.campaigns.results import DialResult
from reautod.control.context import CliContext, key_values
from reautod.observability.logging import mask_phone


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("dial", help="place one outbound call now")
    parser.add_argument("number",
                        help="phone number (E.164, or national for the campaign's region)")
    parser.add_argument("--campaign", help="campaign whose settings the call uses")
    parser.set_defaults(func=run)


def render(dialed: DialResult) -> str:
    return key_values([("call", dialed.call_id), ("twilio sid", dialed.call_sid),
                       ("to", mask_phone(dialed.to)), ("campaign", dialed.campaign)])


def run(args: argparse.Namespace, ctx: CliContext) -> int:
    params: dict[str, Any] = {"number": args.number}
    if args.campaign:
        params["campaign"] = args.campaign
    ctx.emit(ctx.fetch(DialResult, "dial", params), render)
    return 0

"""`reautoctl campaign create|import|start|pause|resume|stop|status|list`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from reautod.campaigns.intake import ImportResult
from reautod.campaigns.results import (
    CampaignInfo,
    CampaignList,
    CampaignStatusResult,
    CampaignTransition,
)
from reautod.control.context import CliContext, key_values, table

# Leads files up to this size travel inside the request (the daemon may not be able to read the
# operator's files); bigger ones are read by the daemon from their path (control lines max 1 MiB).
INLINE_CSV_BYTES = 900 * 1024
DAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
IMPORT_TIMEOUT_S = 300.0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("campaign", help="campaigns: create, import leads, run, status")
    actions = parser.add_subparsers(dest="campaign_command", metavar="ACTION", required=True)

    create = actions.add_parser("create", help="create a campaign")
    create.add_argument("name")
    create.add_argument("--hours", metavar="HH:MM-HH:MM",
                        help="campaign hours in the lead's local time (default 09:00-20:00)")
    create.add_argument("--days", metavar="DAYS",
                        help="days to call: mon-fri, or a list like mon,wed,sat (default mon-fri)")
    create.add_argument("--max-concurrent", type=int, help="live calls of this campaign")
    create.add_argument("--machine-policy", choices=("hang_up", "voicemail"),
                        help="on an answering machine: hang up or leave a voicemail")
    create.add_argument("--transfer-number", help="E.164 number of the human to transfer to")
    create.add_argument("--record", action="store_true",
                        help="record through Twilio after the consent announcement")
    create.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                        help="any other setting (JSON values allowed), e.g. ring_timeout_s=25")
    create.set_defaults(func=run_create)

    imp = actions.add_parser("import", help="import leads from a CSV file (validation report)")
    imp.add_argument("campaign")
    imp.add_argument("file", type=Path)
    imp.add_argument("--daemon-reads", action="store_true",
                     help="let the daemon read FILE from its path instead of sending it")
    imp.set_defaults(func=run_import)

    for action, text in (("start", "start dialing"), ("pause", "stop placing new calls"),
                         ("resume", "resume a paused campaign"),
                         ("stop", "end the campaign (no more calls)"),
                         ("status", "leads, blocked dials and live calls")):
        leaf = actions.add_parser(action, help=text)
        leaf.add_argument("campaign")
        leaf.set_defaults(func=run_status if action == "status" else run_transition,
                          action=action)

    listing = actions.add_parser("list", help="all campaigns")
    listing.set_defaults(func=run_list)


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _days(text: str) -> list[int]:
    days: list[int] = []
    for part in text.lower().replace(" ", "").split(","):
        first, _, last = part.partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise ValueError(f"unknown day in {text!r} (use mon..sun)")
        start, end = DAYS[first], DAYS[last or first]
        if end < start:
            raise ValueError(f"day range {part!r} runs backwards")
        days.extend(range(start, end + 1))
    return sorted(set(days))


def create_params(args: argparse.Namespace) -> dict[str, Any]:
    """The campaign.create params from the command line (ValueError on a malformed option)."""
    params: dict[str, Any] = {"name": args.name}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE")
        params[key.strip()] = _value(value)
    if args.hours:
        start, sep, end = args.hours.partition("-")
        if not sep:
            raise ValueError("--hours: expected HH:MM-HH:MM")
        params["window_start"], params["window_end"] = start.strip(), end.strip()
    if args.days:
        params["window_days"] = _days(args.days)
    if args.max_concurrent is not None:
        params["max_concurrent"] = args.max_concurrent
    if args.machine_policy:
        params["machine_policy"] = args.machine_policy
    if args.transfer_number:
        params["transfer_number"] = args.transfer_number
    if args.record:
        params["record"] = True
    return params


def render_campaign(campaign: CampaignInfo) -> str:
    rows: list[tuple[str, Any]] = [("campaign", campaign.name), ("id", campaign.id),
                                   ("status", campaign.status.value)]
    if campaign.settings is not None:
        rows += list(campaign.settings.model_dump(mode="json").items())
    else:
        rows.append(("settings", f"invalid: {campaign.settings_error}"))
    return key_values(rows)


def run_create(args: argparse.Namespace, ctx: CliContext) -> int:
    try:
        params = create_params(args)
    except ValueError as err:
        print(f"reautoctl: {err}", file=sys.stderr)
        return 2
    ctx.emit(ctx.fetch(CampaignInfo, "campaign.create", params), render_campaign)
    return 0


def render_import(result: ImportResult) -> str:
    lines = [key_values([("campaign", result.campaign), *result.summary.items()])]
    if result.issues:
        rows = [[i.line, i.problem, "yes" if i.imported else "no", i.reason]
                for i in result.issues]
        lines.append(table(["line", "problem", "imported", "reason"], rows))
        if result.issues_truncated:
            lines.append("(more issues not shown)")
    return "\n\n".join(lines)


def run_import(args: argparse.Namespace, ctx: CliContext) -> int:
    path: Path = args.file.resolve()
    if not path.is_file():
        print(f"reautoctl: {path}: no such file", file=sys.stderr)
        return 1
    params: dict[str, Any] = {"campaign": args.campaign}
    if args.daemon_reads or path.stat().st_size > INLINE_CSV_BYTES:
        params["csv_path"] = str(path)
    else:
        data = path.read_bytes()
        try:
            params["csv_text"] = data.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            print(f"reautoctl: {path} is not UTF-8 (bad byte at offset {err.start}); "
                  "save it as UTF-8 CSV", file=sys.stderr)
            return 1
    ctx.emit(ctx.fetch(ImportResult, "campaign.import", params, timeout=IMPORT_TIMEOUT_S),
             render_import)
    return 0


def run_transition(args: argparse.Namespace, ctx: CliContext) -> int:
    moved = ctx.fetch(CampaignTransition, f"campaign.{args.action}",
                      {"campaign": args.campaign})
    ctx.emit(moved, lambda m: f"campaign {m.campaign}: {m.previous.value} -> {m.status.value}")
    return 0


def render_status(status: CampaignStatusResult) -> str:
    parts = [key_values([
        ("campaign", status.name), ("status", status.status.value),
        ("dialing", "yes" if status.dialing else f"no: {status.problem}"),
        ("leads", ", ".join(f"{k.value} {v}" for k, v in sorted(status.leads.items()))
         or "none"),
        ("blocked", ", ".join(f"{k} {v}" for k, v in sorted(status.blocked_by_rule.items()))
         or "none"),
        ("live calls", len(status.live_calls)),
    ])]
    if status.recent_blocks:
        parts.append(table(["at", "lead", "rule", "detail", "retry at"],
                           [[b.at.isoformat(), b.lead_id, b.rule, b.detail,
                             b.retry_at.isoformat() if b.retry_at else None]
                            for b in status.recent_blocks]))
    return "\n\n".join(parts)


def run_status(args: argparse.Namespace, ctx: CliContext) -> int:
    ctx.emit(ctx.fetch(CampaignStatusResult, "campaign.status", {"campaign": args.campaign}),
             render_status)
    return 0


def render_list(listing: CampaignList) -> str:
    campaigns = listing.campaigns
    if not campaigns:
        return "no campaigns"
    rows = [[c.name, c.status.value, c.leads_total,
             ", ".join(f"{k.value} {v}" for k, v in sorted(c.leads.items())),
             c.calls_live, f"${c.spent_micros / 1_000_000:.2f}", c.created_at.isoformat()]
            for c in campaigns]
    return table(["campaign", "status", "leads", "by status", "live", "spent", "created"], rows)


def run_list(args: argparse.Namespace, ctx: CliContext) -> int:
    ctx.emit(ctx.fetch(CampaignList, "campaigns.list"), render_list)
    return 0

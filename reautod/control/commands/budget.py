"""`reautoctl budget status|set|remove|stop|resume`: spending caps and the emergency stop."""

from __future__ import annotations

import argparse
import getpass
from typing import Any

from reautod.control.context import CliContext, table
from reautod.cost.money import format_micros
from reautod.cost.results import (
    BudgetRemoveResult,
    BudgetSetResult,
    BudgetStatus,
    BudgetStatusResult,
    SpendingStopState,
)
from reautod.store.enums import BudgetPeriod

PERIODS = [p.value for p in BudgetPeriod]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("budget", help="spending caps, their forecast, the emergency stop")
    actions = parser.add_subparsers(dest="budget_command", metavar="ACTION", required=True)

    status = actions.add_parser("status", help="spend, burn rate and projection of every budget")
    status.add_argument("--campaign", help="only the budgets that apply to this campaign")
    status.set_defaults(func=run_status)

    set_ = actions.add_parser("set", help="set a cap (replaces the same period's cap)")
    set_.add_argument("period", choices=PERIODS)
    set_.add_argument("limit", help="US dollars, e.g. 50 or 12.50")
    set_.add_argument("--campaign", help="for this campaign (default: site-wide)")
    set_.add_argument("--timezone", help="IANA zone the period starts in (default: cost.timezone)")
    set_.set_defaults(func=run_set)

    remove = actions.add_parser("remove", help="remove a cap")
    remove.add_argument("period", choices=PERIODS)
    remove.add_argument("--campaign", help="the campaign's cap (default: site-wide)")
    remove.set_defaults(func=run_remove)

    stop = actions.add_parser("stop", help="stop all spending now: no dials, no premium voice")
    stop.add_argument("--reason", help="kept in the audit log")
    stop.set_defaults(func=run_stop)

    resume = actions.add_parser("resume", help="lift the emergency stop")
    resume.set_defaults(func=run_resume)


def _actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "operator"


def _with(params: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return params | {k: v for k, v in extra.items() if v is not None}


def _row(b: BudgetStatus) -> list[Any]:
    projected = "-" if b.projected_micros is None else format_micros(b.projected_micros, 2)
    return [
        b.campaign or ("(site-wide)" if b.campaign_id is None else str(b.campaign_id)),
        b.period.value, format_micros(b.limit_micros, 2), format_micros(b.spent_micros, 2),
        f"{b.used_pct:g}%", format_micros(b.premium_micros, 2),
        "-" if b.burn_micros_per_hour is None else format_micros(b.burn_micros_per_hour, 2) + "/h",
        projected + (" OVER" if b.projected_over else ""),
        "refused" if b.at_cap else "ok", "on" if b.premium_allowed else f"off ({b.premium_reason})",
        b.period_end.isoformat(timespec="minutes") if b.period_end else "-",
    ]


def render_status(result: BudgetStatusResult) -> str:
    stop = result.stop
    head = (f"SPENDING STOPPED by {stop.actor} at {stop.changed_at}: {stop.reason or '-'}\n"
            "(no dials, no premium voice; `reautoctl budget resume` lifts it)\n\n"
            if stop.stopped else "")
    if not result.budgets:
        return head + "no budgets set (`reautoctl budget set day 50`)"
    return head + table(
        ["SCOPE", "PERIOD", "LIMIT", "SPENT", "USED", "PREMIUM", "BURN", "PROJECTED", "DIALS",
         "PREMIUM VOICE", "RESETS (UTC)"],
        [_row(b) for b in result.budgets],
    ) + f"\nalerts at {', '.join(f'{t}%' for t in result.thresholds_pct)}; counters: {result.counters}"


def run_status(args: argparse.Namespace, ctx: CliContext) -> int:
    ctx.emit(ctx.fetch(BudgetStatusResult, "budget.status", _with({}, campaign=args.campaign)),
             render_status)
    return 0


def run_set(args: argparse.Namespace, ctx: CliContext) -> int:
    params = _with({"period": args.period, "limit": args.limit, "actor": _actor()},
                   campaign=args.campaign, timezone=args.timezone)

    def render(result: BudgetSetResult) -> str:
        b = result.budget
        return (f"{b.period.value} budget of {b.campaign or 'the site'} set to "
                f"{format_micros(b.limit_micros, 2)} ({b.timezone}); spent "
                f"{format_micros(b.spent_micros, 2)} so far ({b.used_pct:g}%)")

    ctx.emit(ctx.fetch(BudgetSetResult, "budget.set", params), render)
    return 0


def run_remove(args: argparse.Namespace, ctx: CliContext) -> int:
    params = _with({"period": args.period, "actor": _actor()}, campaign=args.campaign)

    def render(r: BudgetRemoveResult) -> str:
        return f"{r.period.value} budget of {r.scope} removed"

    ctx.emit(ctx.fetch(BudgetRemoveResult, "budget.remove", params), render)
    return 0


def render_stop(s: SpendingStopState) -> str:
    if s.stopped:
        return "spending stopped: no new dials, premium voice off (live calls finish)"
    return "spending resumed"


def run_stop(args: argparse.Namespace, ctx: CliContext) -> int:
    ctx.emit(ctx.fetch(SpendingStopState, "budget.stop",
                       _with({"actor": _actor()}, reason=args.reason)), render_stop)
    return 0


def run_resume(args: argparse.Namespace, ctx: CliContext) -> int:
    ctx.emit(ctx.fetch(SpendingStopState, "budget.resume", {"actor": _actor()}), render_stop)
    return 0

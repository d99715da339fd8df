"""`reautoctl stats [--campaign X] [--since DATE] [--json]`: daily aggregates per campaign, and
what a call, a lead, a qualified lead and a booking cost over the same days (by voice tier too).

Read here from the configured database (the daemon need not be running).
"""

from __future__ import annotations

import argparse
import dataclasses
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from reautod.control.commands.db import with_database
from reautod.control.context import CliContext, table
from reautod.errors import UnavailableError, ValidationError
from reautod.store.database import Database
from reautod.store.repositories import CampaignRepository
from reautod.store.repositories.cost_reports import cost_by_tier, cost_per_outcome
from reautod.store.stats import daily_campaign_stats

DEFAULT_DAYS = 7


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("stats", help="daily call statistics per campaign")
    parser.add_argument("--campaign", help="one campaign, by name or id")
    parser.add_argument(
        "--since", help=f"first UTC day, YYYY-MM-DD (default: {DEFAULT_DAYS} days ago)"
    )
    # Also accepted after the subcommand; SUPPRESS keeps a global --json from being reset.
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="JSON output")
    parser.set_defaults(func=run)


def parse_since(value: str | None, today: date) -> datetime:
    if value is None:
        day = today - timedelta(days=DEFAULT_DAYS - 1)
    else:
        try:
            day = date.fromisoformat(value)
        except ValueError as err:
            raise ValidationError(f"--since {value!r} is not a date (YYYY-MM-DD)") from err
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _dollars(micros: int | None) -> str:
    if micros is None:
        return "-"
    return f"${(Decimal(micros) / 1_000_000).quantize(Decimal('0.0001'))}"


def render(data: dict[str, Any]) -> str:
    rows = data["days"]
    if not rows:
        return f"no calls since {data['since']}"
    return render_days(rows) + "\n\n" + render_cost(data["cost"], data["cost_by_tier"])


def render_cost(cost: dict[str, Any], tiers: list[dict[str, Any]]) -> str:
    outcome = table(
        ["COST", "CALLS", "PER CALL", "PER LEAD", "PER QUALIFIED", "PER BOOKING"],
        [[_dollars(cost["total_micros"]), cost["calls"], _dollars(cost["per_call_micros"]),
          _dollars(cost["per_lead_micros"]), _dollars(cost["per_qualified_lead_micros"]),
          _dollars(cost["per_booking_micros"])]])
    by_tier = table(["VOICE", "CALLS", "COST", "PER CALL"],
                    [[t["tier"], t["calls"], _dollars(t["total_micros"]),
                      _dollars(t["per_call_micros"])] for t in tiers])
    return f"{outcome}\n\n{by_tier}"


def render_days(rows: list[dict[str, Any]]) -> str:
    return table(
        ["DAY", "CAMPAIGN", "ATTEMPTS", "CONNECTS", "HUMAN", "QUALIFIED", "BOOKED", "AVG S",
         "COST", "COST/CALL"],
        [
            [
                r["day"],
                r["campaign"] or "(none)",
                r["attempts"],
                r["connects"],
                r["human_answers"],
                r["qualified"],
                r["booked"],
                "-" if r["average_duration_s"] is None else r["average_duration_s"],
                _dollars(r["cost_micros"]),
                _dollars(r["cost_per_call_micros"]),
            ]
            for r in rows
        ],
    )


def run(args: argparse.Namespace, ctx: CliContext) -> int:
    since = parse_since(args.since, datetime.now(UTC).date())

    async def work(db: Database) -> dict[str, Any]:
        status = await db.schema_status()
        if not status.up_to_date:
            raise UnavailableError(
                f"database is at {status.current or 'an empty schema'}, code needs "
                f"{status.head}: run `reautoctl db upgrade`"
            )
        campaign_id = None
        if args.campaign:
            campaign_id = (await CampaignRepository(db).find(args.campaign)).id
        rows = await daily_campaign_stats(db, since, campaign_id)
        cost = await cost_per_outcome(db, since, campaign_id=campaign_id)
        tiers = await cost_by_tier(db, since, campaign_id=campaign_id)
        return {
            "since": since.date().isoformat(),
            "cost": dataclasses.asdict(cost),
            "cost_by_tier": [dataclasses.asdict(t) for t in tiers],
            "days": [
                {
                    "day": r.day,
                    "campaign_id": str(r.campaign_id) if r.campaign_id else None,
                    "campaign": r.campaign,
                    "attempts": r.attempts,
                    "connects": r.connects,
                    "human_answers": r.human_answers,
                    "qualified": r.qualified,
                    "booked": r.booked,
                    "average_duration_s": r.average_duration_s,
                    "cost_micros": r.cost_micros,
                    "cost_per_call_micros": r.cost_per_call_micros,
                }
                for r in rows
            ],
        }

    ctx.emit(with_database(ctx, work), render)
    return 0

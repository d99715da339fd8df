"""`reautoctl seed demo`: an example campaign with sample leads, through the running daemon.

Idempotent: a second run finds the campaign and its leads, changes nothing and says so. The data
and the checks are in `reautod.campaigns.seed`.
"""

from __future__ import annotations

import argparse
from typing import Any

from reautod.campaigns.intake import ImportResult
from reautod.campaigns.results import CampaignInfo, CampaignList
from reautod.campaigns.seed import (
    create_params,
    existing_demo_campaign,
    import_params,
    seed_result,
)
from reautod.control.context import CliContext


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("seed", help="example data for a new install")
    actions = parser.add_subparsers(dest="seed_command", metavar="WHAT", required=True)
    demo = actions.add_parser("demo", help="an example campaign (draft) with sample leads; "
                                           "safe to run again")
    demo.set_defaults(func=run_demo)


def render(data: dict[str, Any]) -> str:
    name = data["campaign"]
    if not data["changed"]:
        return (f"demo campaign {name!r} and its {data['leads_already_there']} sample leads are "
                "already there: nothing changed")
    made = "created" if data["campaign_created"] else "already there"
    lines = [f"demo campaign {name!r}: {made} ({data['status']}); "
             f"{data['leads_added']} sample leads added, {data['leads_already_there']} already "
             "there",
             f"its leads use numbers reserved for fiction (555-01XX); see it with "
             f"`reautoctl campaign status {name}`"]
    return "\n".join(lines)


def run_demo(args: argparse.Namespace, ctx: CliContext) -> int:
    existing = existing_demo_campaign(ctx.fetch(CampaignList, "campaigns.list"))
    if existing is None:
        status = ctx.fetch(CampaignInfo, "campaign.create", create_params()).status
    else:
        status = existing.status
    reply = ctx.fetch(ImportResult, "campaign.import", import_params())
    ctx.emit(seed_result(created=existing is None, status=status, import_reply=reply).wire(),
             render)
    return 0

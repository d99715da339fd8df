"""`reautoctl sheets import CAMPAIGN SPREADSHEET_ID [--range A1]`: contacts from a Google Sheet."""

from __future__ import annotations

import argparse

from reautod.campaigns.intake import ImportResult
from reautod.control.commands.campaign import render_import
from reautod.control.context import CliContext


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("sheets", help="Google Sheets: import contacts into a campaign")
    actions = parser.add_subparsers(dest="sheets_command", metavar="ACTION", required=True)
    imp = actions.add_parser("import", help="validate and add a sheet's contacts as leads")
    imp.add_argument("campaign")
    imp.add_argument("spreadsheet_id", help="the id in the sheet's URL (/d/<id>/edit)")
    imp.add_argument("--range", default="A1:Z", help="A1 range, header row first (Sheet1!A1:Z)")
    imp.set_defaults(func=run_import)


def run_import(args: argparse.Namespace, ctx: CliContext) -> int:
    result = ctx.fetch(ImportResult, "sheets.import",
                       {"campaign": args.campaign, "spreadsheet_id": args.spreadsheet_id,
                        "range": args.range}, timeout=300)
    ctx.emit(result, render_import)  # reported like a CSV import
    return 0

"""`reautoctl export leads|calls|transcripts|appointments --format json|csv|xml [--campaign X]
[--since DATE] [--output FILE]`: streamed exports.

Like `reautoctl db`, this reads the configured database directly (the daemon need not run) and
writes page by page, so a table of any size streams through in constant memory.
"""

from __future__ import annotations

import argparse
import sys
from typing import BinaryIO

from reautod.control.commands.db import with_database
from reautod.control.commands.outbox import parse_since
from reautod.control.context import CliContext
from reautod.integrations.exports import Dataset, Format, stream_export
from reautod.store.database import Database


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("export", help="export leads, calls, transcripts or appointments")
    parser.add_argument("dataset", choices=[d.value for d in Dataset])
    parser.add_argument("--format", dest="fmt", choices=[f.value for f in Format], default="csv")
    parser.add_argument("--campaign", help="only this campaign (name or id)")
    parser.add_argument("--since", help="only rows created at or after this ISO date or time (UTC)")
    parser.add_argument("--output", "-o", help="write here instead of standard output")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: CliContext) -> int:
    since = parse_since(args.since) if args.since else None

    def write_to(out: BinaryIO) -> None:
        # Blocking writes are fine here: this is the CLI's own loop, not the daemon's.
        async def work(db: Database) -> None:
            async for chunk in stream_export(db, Dataset(args.dataset), Format(args.fmt),
                                             campaign=args.campaign, since=since):
                out.write(chunk)

        with_database(ctx, work)
        out.flush()

    if args.output:
        with open(args.output, "wb") as file:
            write_to(file)
    else:
        write_to(sys.stdout.buffer)
    return 0

"""`reautoctl db upgrade [REV] | downgrade REV | current | history`: schema migrations.

These run here, against the configured database (`database_url`, or the embedded SQLite file
under the state directory); the daemon need not be running.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from reautod.control.context import CliContext, key_values, table
from reautod.store.database import Database
from reautod.store.schema import SchemaStatus

T = TypeVar("T")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("db", help="database schema: migrate, inspect")
    leaves = parser.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    up = leaves.add_parser("upgrade", help="migrate the schema up (default: to the newest)")
    up.add_argument("revision", nargs="?", default="head", help="target revision (default: head)")
    up.set_defaults(func=run_upgrade)
    down = leaves.add_parser("downgrade", help="migrate the schema down to REV (base = empty)")
    down.add_argument("revision", help="target revision, or 'base'")
    down.set_defaults(func=run_downgrade)
    current = leaves.add_parser("current", help="the database's revision and the code's")
    current.set_defaults(func=run_current)
    history = leaves.add_parser("history", help="every revision the code knows")
    history.set_defaults(func=run_history)


def with_database(ctx: CliContext, work: Callable[[Database], Awaitable[T]]) -> T:
    """Open the configured database, run `work`, close it."""

    async def main() -> T:
        db = Database(ctx.settings.effective_database_url(), ctx.settings.database)
        await db.open()
        try:
            return await work(db)
        finally:
            await db.close()

    return asyncio.run(main())


def _render_status(data: dict[str, Any]) -> str:
    return key_values([(k.replace("_", " "), v) for k, v in data.items()])


def _migrate(ctx: CliContext, step: Callable[[Database], Awaitable[SchemaStatus]]) -> int:
    async def work(db: Database) -> dict[str, Any]:
        before = await db.schema_status()
        after = await step(db)
        return {
            "database": db.display_url(),
            "from": before.current,
            "to": after.current,
            "head": after.head,
        }

    ctx.emit(with_database(ctx, work), _render_status)
    return 0


def run_upgrade(args: argparse.Namespace, ctx: CliContext) -> int:
    return _migrate(ctx, lambda db: db.upgrade(args.revision))


def run_downgrade(args: argparse.Namespace, ctx: CliContext) -> int:
    return _migrate(ctx, lambda db: db.downgrade(args.revision))


def run_current(args: argparse.Namespace, ctx: CliContext) -> int:
    async def work(db: Database) -> dict[str, Any]:
        status = await db.schema_status()
        return {
            "database": db.display_url(),
            "current": status.current,
            "head": status.head,
            "up_to_date": status.up_to_date,
        }

    data = with_database(ctx, work)
    ctx.emit(data, _render_status)
    return 0


def run_history(args: argparse.Namespace, ctx: CliContext) -> int:
    async def work(db: Database) -> list[dict[str, Any]]:
        return [
            {
                "revision": r.revision,
                "down_revision": r.down_revision,
                "message": r.message,
                "head": r.is_head,
                "current": r.is_current,
            }
            for r in await db.history()
        ]

    def render(rows: list[dict[str, Any]]) -> str:
        return table(
            ["REVISION", "DOWN", "", "MESSAGE"],
            [
                [
                    r["revision"],
                    r["down_revision"] or "base",
                    ("current " if r["current"] else "") + ("head" if r["head"] else ""),
                    r["message"],
                ]
                for r in rows
            ],
        )

    ctx.emit(with_database(ctx, work), render)
    return 0

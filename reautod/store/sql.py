"""Dialect-aware SQL pieces shared by repositories and the record writer."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, case, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import String

from reautod.store.enums import CallStatus

Upsert = postgresql.Insert | sqlite.Insert


def upsert(conn: AsyncConnection, table: Table | Any) -> Upsert:
    """`INSERT` with ON CONFLICT support for the connection's dialect (Postgres or SQLite)."""
    target = table.__table__ if hasattr(table, "__table__") else table
    if conn.dialect.name == "postgresql":
        return postgresql.insert(target)
    return sqlite.insert(target)


class utc_day(FunctionElement[str]):
    """The UTC calendar day of a timestamp column, as 'YYYY-MM-DD' text on both backends."""

    type = String()
    inherit_cache = True


@compiles(utc_day, "postgresql")
def _utc_day_pg(element: utc_day, compiler: Any, **kw: Any) -> str:
    (arg,) = list(element.clauses)
    return f"to_char({compiler.process(arg, **kw)} AT TIME ZONE 'UTC', 'YYYY-MM-DD')"


@compiles(utc_day, "sqlite")
def _utc_day_sqlite(element: utc_day, compiler: Any, **kw: Any) -> str:
    (arg,) = list(element.clauses)
    return f"date({compiler.process(arg, **kw)})"


def count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    """SQL `SUM(CASE WHEN condition THEN 1 ELSE 0 END)`: rows meeting a condition, in a group."""
    return func.sum(case((condition, 1), else_=0))


def status_rank(column: ColumnElement[Any]) -> ColumnElement[int]:
    """SQL for CallStatus.rank, so 'status only moves forward' is decided inside the database."""
    return case({s.value: s.rank for s in CallStatus}, value=column, else_=-1)


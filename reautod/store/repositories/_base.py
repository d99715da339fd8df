"""Shared pieces of the repositories: table handles and row -> dataclass conversion."""

from __future__ import annotations

import dataclasses
import re
from typing import Any, TypeVar, cast

from sqlalchemy import Row, Table

from reautod.errors import ValidationError
from reautod.store import models as m

T = TypeVar("T")

E164 = re.compile(r"^\+[1-9]\d{1,14}$")


def table(model: type[m.Base]) -> Table:
    return cast(Table, model.__table__)


def to_dataclass(cls: type[T], row: Row[Any]) -> T:
    """Build a frozen row dataclass from a result row (fields picked by name)."""
    mapping = row._mapping
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    return cls(**{name: mapping[name] for name in names})


def check_e164(phone: str) -> str:
    if not isinstance(phone, str) or not E164.match(phone):
        raise ValidationError("phone number must be in E.164 form (+15551234567)")
    return phone


def check_limit(limit: int, maximum: int = 10_000) -> int:
    if not 1 <= limit <= maximum:
        raise ValidationError(f"limit must be between 1 and {maximum}")
    return limit

"""Fakes the cost tests share."""

from __future__ import annotations

from reautod.store.records import CostRecorded, Record


class Collect:
    """A write-behind queue that keeps every record it is given (`submit` never refuses)."""

    def __init__(self) -> None:
        self.records: list[Record] = []

    def submit(self, record: Record) -> bool:
        self.records.append(record)
        return True

    def costs(self) -> list[CostRecorded]:
        return [r for r in self.records if isinstance(r, CostRecorded)]

"""The local append-only spool: where writes wait, in order, while the database is unreachable.

Files under <state_dir>/spool/: `writes.jsonl` (one record per line, replayed in order and then
truncated), `journal.jsonl` (the write-ahead log: every batch the write-behind takes, appended
before it is written, truncated once everything in it is settled) and `dead.jsonl` (records the
database rejected outright, kept for an operator).
Methods are synchronous and meant for `asyncio.to_thread`; one owner (the write-behind task)
calls them, so no locking is needed.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from reautod.errors import StoreError, ValidationError
from reautod.store.records import Record, from_wire, to_wire

log = logging.getLogger(__name__)


class Spool:
    def __init__(self, directory: Path, name: str = "writes.jsonl") -> None:
        self.directory = directory
        self.path = directory / name
        self.dead_path = directory / "dead.jsonl"

    def append(self, records: Sequence[Record]) -> None:
        """Append and fsync: once this returns the records survive a crash."""
        if not records:
            return
        data = "".join(json.dumps(to_wire(r), separators=(",", ":")) + "\n" for r in records)
        if not self._ends_with_newline(self.path):
            data = "\n" + data  # a crash tore the last line: never glue a record onto it
        self._append_text(self.path, data)

    def dead_letter(self, record: Record, error: str) -> None:
        line = {"at": datetime.now(UTC).isoformat(), "error": error, "record": to_wire(record)}
        self._append_text(self.dead_path, json.dumps(line, separators=(",", ":")) + "\n")

    @staticmethod
    def _ends_with_newline(path: Path) -> bool:
        try:
            with path.open("rb") as f:
                if f.seek(0, os.SEEK_END) == 0:
                    return True
                f.seek(-1, os.SEEK_END)
                return f.read(1) == b"\n"
        except FileNotFoundError:
            return True
        except OSError as err:
            raise StoreError(f"cannot read the spool {path}: {err.strerror}") from err

    def _append_text(self, path: Path, data: str) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except OSError as err:
            raise StoreError(f"cannot write the spool {path}: {err.strerror}") from err

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def read(self, offset: int, limit: int) -> tuple[list[Record], int]:
        """Up to `limit` records from byte `offset`, and the offset after them.

        A line that does not parse (a write torn by a crash or a full disk) is skipped and
        logged; it can only be the tail of one append, whose records were never acknowledged.
        """
        records: list[Record] = []
        try:
            with self.path.open("rb") as f:
                f.seek(offset)
                while len(records) < limit:
                    line = f.readline()
                    if not line:
                        break
                    if not line.endswith(b"\n"):  # a torn tail: nothing follows it yet
                        log.warning("spool %s ends in a partial line; skipping it", self.path)
                        offset = f.tell()
                        break
                    offset = f.tell()
                    if not line.strip():
                        continue
                    try:
                        records.append(from_wire(json.loads(line)))
                    except (ValueError, ValidationError) as err:
                        log.error("spool %s: skipping unreadable line: %s", self.path, err)
        except FileNotFoundError:
            return [], offset
        except OSError as err:
            raise StoreError(f"cannot read the spool {self.path}: {err.strerror}") from err
        return records, offset

    def read_all(self) -> list[Record]:
        """Every readable record, in order (torn or unreadable lines skipped, as `read`)."""
        records: list[Record] = []
        offset = 0
        while True:
            chunk, after = self.read(offset, 10_000)
            records.extend(chunk)
            if after == offset:
                return records
            offset = after

    def replace(self, records: Sequence[Record]) -> None:
        """Make the file hold exactly `records` (written aside, fsynced, then renamed over it)."""
        data = "".join(json.dumps(to_wire(r), separators=(",", ":")) + "\n" for r in records)
        aside = self.path.with_name(self.path.name + ".new")
        aside.unlink(missing_ok=True)
        self._append_text(aside, data)
        try:
            os.replace(aside, self.path)
        except OSError as err:
            raise StoreError(f"cannot replace the spool {self.path}: {err.strerror}") from err

    def clear(self) -> None:
        try:
            self.path.unlink(missing_ok=True)
        except OSError as err:
            raise StoreError(f"cannot remove the replayed spool {self.path}: {err.strerror}") from err

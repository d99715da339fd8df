"""The playbooks a site has: one YAML file per playbook in a directory, loaded on demand.

A file is re-read only when its size or modification time changes; a broken file is listed
with its line-numbered problems, and `get` raises them.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from reautod.dialogue.playbook_file import LoadedPlaybook, PlaybookError, load_playbook_file
from reautod.errors import NotFoundError

SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class PlaybookFile:
    file: Path
    loaded: LoadedPlaybook | None
    error: PlaybookError | None


class PlaybookLibrary:
    """Playbook files in `directory` (blocking file reads: call from a thread). `models`: the
    language model names the daemon has; a playbook naming another is broken (None: names are
    not checked)."""

    def __init__(self, directory: Path, models: Collection[str] | None = None) -> None:
        self.directory = directory
        self.models = None if models is None else frozenset(models)
        self._lock = threading.Lock()
        self._cache: dict[Path, tuple[tuple[int, int], PlaybookFile]] = {}

    def entries(self) -> list[PlaybookFile]:
        if not self.directory.is_dir():
            return []
        files = sorted(p for p in self.directory.iterdir() if p.suffix in SUFFIXES and p.is_file())
        return [self._entry(p) for p in files]

    def get(self, name: str) -> LoadedPlaybook:
        """The valid playbook named `name` (NotFoundError if none; PlaybookError if broken)."""
        broken: PlaybookError | None = None
        for entry in self.entries():
            if entry.loaded is not None and entry.loaded.name == name:
                return entry.loaded
            if entry.error is not None and entry.file.stem == name:
                broken = entry.error
        if broken is not None:
            raise broken
        raise NotFoundError(f"no playbook {name!r} in {self.directory}")

    def _entry(self, path: Path) -> PlaybookFile:
        stat = path.stat()
        key = (stat.st_size, stat.st_mtime_ns)
        with self._lock:
            cached = self._cache.get(path)
            if cached is not None and cached[0] == key:
                return cached[1]
        try:
            entry = PlaybookFile(path, load_playbook_file(path, self.models), None)
        except PlaybookError as err:
            entry = PlaybookFile(path, None, err)
        with self._lock:
            self._cache[path] = (key, entry)
        return entry

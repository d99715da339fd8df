"""What every way of installing models shares: errors, the per-file result, progress display,
checksums, and the atomic move into place.

Invariant of every installer (`hub`, `wheels`, the test builder): a model file at its final path
is complete and verified. Bytes are written to `<file>.part` (or a staging directory), checked,
fsynced, and only then renamed into place; a crash leaves at most a `.part` that the next pull
resumes or overwrites.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, TextIO

from reautod.errors import ReautodError

CHUNK_BYTES = 1 << 20


class PullError(ReautodError):
    """A model file could not be fetched or installed; the message names the file and why."""

    code = "pull_failed"


class ChecksumError(PullError):
    """A fetched file does not match its expected checksum; it was deleted."""

    code = "checksum_mismatch"


@dataclass(frozen=True)
class PulledFile:
    """The outcome for one file."""

    dest: str  # relative to the models directory
    status: Literal["downloaded", "present", "built"]
    size: int
    verified_by: str  # e.g. "sha256 from hub X-Linked-Etag"
    digest: str | None = None
    resumed_from: int = 0


class Progress(Protocol):
    """Shows one file's transfer: `start`, `advance` with the bytes done so far, `finish`."""

    def start(self, name: str, total: int | None, done: int, action: str = "downloading"
              ) -> None: ...

    def advance(self, done: int) -> None: ...

    def finish(self, message: str) -> None: ...


class TerminalProgress:
    """A progress bar on a terminal; on anything else (a log, a pipe), plain lines now and then."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self._name = ""
        self._total: int | None = None
        self._started = 0.0
        self._first = 0
        self._last_draw = 0.0
        self._last_step = -1

    def start(self, name: str, total: int | None, done: int, action: str = "downloading"
              ) -> None:
        self._name, self._total, self._first = name, total, done
        self._started = time.monotonic()
        self._last_step = -1
        if not self.tty:
            resumed = f", resuming at {size_text(done)}" if done else ""
            size = size_text(total) if total is not None else "unknown size"
            self.stream.write(f"{action} {name} ({size}{resumed})\n")
            self.stream.flush()
        self.advance(done)

    def advance(self, done: int) -> None:
        now = time.monotonic()
        if self.tty:
            if now - self._last_draw < 0.1 and done != self._total:
                return
            self._last_draw = now
            self.stream.write("\r" + self._bar(done, now))
            self.stream.flush()
            return
        if self._total:  # plain lines at each quarter
            step = min(4, done * 4 // self._total)
            if step > self._last_step and 0 < step < 4:
                self.stream.write(f"  {self._name}: {step * 25}% ({size_text(done)})\n")
                self.stream.flush()
            self._last_step = max(self._last_step, step)

    def finish(self, message: str) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K")
        self.stream.write(f"{message}\n")
        self.stream.flush()

    def _bar(self, done: int, now: float) -> str:
        rate = (done - self._first) / max(now - self._started, 1e-6)
        if self._total:
            frac = min(1.0, done / self._total)
            filled = int(frac * 30)
            return (f"{self._name[-40:]:<40} [{'#' * filled}{'.' * (30 - filled)}] "
                    f"{frac * 100:5.1f}% {size_text(done)}/{size_text(self._total)} "
                    f"{size_text(int(rate))}/s\x1b[K")
        return f"{self._name[-40:]:<40} {size_text(done)} {size_text(int(rate))}/s\x1b[K"


class SilentProgress:
    def start(self, name: str, total: int | None, done: int, action: str = "downloading"
              ) -> None:
        return None

    def advance(self, done: int) -> None:
        return None

    def finish(self, message: str) -> None:
        return None


def size_text(n: int | None) -> str:
    """Bytes for people: "2 KB", "75.5 MB", "4.92 GB"; "?" when unknown."""
    if n is None:
        return "?"
    if n >= 1e9:
        return f"{n / 1e9:.2f} GB"
    if n >= 1e6:
        return f"{n / 1e6:.1f} MB"
    return f"{n / 1e3:.0f} KB"


def hash_file(path: Path, hasher: hashlib._Hash) -> int:
    """Feed the file's bytes to `hasher`; the number of bytes."""
    size = 0
    with path.open("rb") as f:
        while block := f.read(CHUNK_BYTES):
            hasher.update(block)
            size += len(block)
    return size


def sha256_of(path: Path) -> str:
    hasher = hashlib.sha256()
    hash_file(path, hasher)
    return hasher.hexdigest()


def install(part: Path, dest: Path) -> None:
    """Make a verified `part` the file at `dest`: fsync, atomic rename, fsync the directory."""
    fsync(part)
    os.replace(part, dest)
    with contextlib.suppress(OSError):  # some filesystems refuse fsync on a directory
        fsync(dest.parent)


def fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

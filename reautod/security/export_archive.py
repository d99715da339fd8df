"""The subject-access archive: one zip holding `subject.json` (every row, per table, plus what
other holders keep) and each recording as a decrypted WAV under `recordings/<call>/<dir>.wav`.

Written to `<name>.zip.partial` and renamed when complete, mode 0640 (the daemon's group can
read it: operators in that group copy it out). Each recording's WAV is checked against the
sha256 stored when it was recorded; the manifest says which matched, which could not be read
and why. Blocking: run it in a thread.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reautod.errors import ReautodError, StoreError
from reautod.store.enums import RecordingStatus
from reautod.store.recording_files import WavStream
from reautod.store.repositories.recordings import RecordingRow

FORMAT = "reautod-subject-export/1"
ARCHIVE_MODE = 0o640


@dataclass(frozen=True)
class ArchiveSummary:
    size_bytes: int
    sha256: str
    recordings_included: int
    recordings_unreadable: int


def write_archive(
    path: Path,
    manifest: dict[str, Any],
    recordings: Sequence[RecordingRow],
    open_recording: Callable[[RecordingRow], WavStream],
) -> ArchiveSummary:
    """Write the archive at `path`; `manifest` becomes subject.json with a `recordings` list."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    partial = path.with_name(path.name + ".partial")
    listed: list[dict[str, Any]] = []
    included = unreadable = 0
    try:
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for row in recordings:
                entry: dict[str, Any] = {"recording_id": str(row.id), "call_id": str(row.call_id),
                                         "direction": row.direction, "sha256": row.sha256,
                                         "duration_ms": row.duration_ms}
                if row.status != RecordingStatus.FINAL.value:
                    entry["file"] = None
                    entry["problem"] = f"recording {row.status} (retention)"
                else:
                    entry.update(_add_recording(archive, row, open_recording))
                included += entry["file"] is not None
                unreadable += entry["file"] is None and row.status == RecordingStatus.FINAL.value
                listed.append(entry)
            body = dict(manifest, format=FORMAT, recordings=listed)
            archive.writestr("subject.json", json.dumps(body, indent=2, sort_keys=True,
                                                        ensure_ascii=False))
        os.chmod(partial, ARCHIVE_MODE)
        digest = hashlib.sha256()
        with partial.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
            os.fsync(f.fileno())
        os.replace(partial, path)
    except OSError as err:
        partial.unlink(missing_ok=True)
        raise StoreError(f"cannot write the export archive {path}: {err.strerror}") from err
    return ArchiveSummary(path.stat().st_size, digest.hexdigest(), included, unreadable)


def _add_recording(archive: zipfile.ZipFile, row: RecordingRow,
                   open_recording: Callable[[RecordingRow], WavStream]) -> dict[str, Any]:
    name = f"recordings/{row.call_id}/{row.direction}.wav"
    digest = hashlib.sha256()
    try:
        stream = open_recording(row)
        with archive.open(name, "w") as out:
            for chunk in stream.chunks:
                digest.update(chunk)
                out.write(chunk)
    except FileNotFoundError:
        return {"file": None, "problem": "the file is missing"}
    except ReautodError as err:
        return {"file": None, "problem": f"{err.code}: {err.message}"}
    return {"file": name, "matches_stored_sha256": digest.hexdigest() == row.sha256}

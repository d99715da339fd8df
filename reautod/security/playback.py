"""Playing or exporting a recording: decrypted only for callers whose role may hear recordings."""

from __future__ import annotations

from pathlib import Path

from reautod.security.keys import KeyRing
from reautod.security.principal import Permission, require
from reautod.store.recording_files import WavStream, open_wav
from reautod.store.repositories.recordings import RecordingRow


def open_recording(row: RecordingRow, keys: KeyRing | None) -> WavStream:
    """The recording as a WAV stream (decrypted as it is read) for the current caller;
    PermissionDeniedError for roles without the recordings permission (analyst, auditor)."""
    require(Permission.RECORDINGS)
    return open_wav(Path(row.path), keys)

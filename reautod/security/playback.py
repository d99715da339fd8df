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


def read_range(stream: WavStream, offset: int, length: int) -> bytes:
    """Bytes [offset, offset + length) of the WAV stream (a sealed file is decrypted from its
    start: chunks are authenticated in order, so none may be skipped unread)."""
    out = bytearray()
    position = 0
    for chunk in stream.chunks:
        end = position + len(chunk)
        if end > offset:
            out += chunk[max(0, offset - position):offset + length - position]
        position = end
        if position >= offset + length:
            break
    return bytes(out)

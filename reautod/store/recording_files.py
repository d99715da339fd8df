"""Finished recording files: read as the WAV playback hands out (a plain file as it is, a sealed
one decrypted as it is read), and removed with their emptied directories."""

from __future__ import annotations

import contextlib
import struct
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from reautod.security import sealed_audio
from reautod.security.keys import KeyRing, KeyUnavailableError

PARTIAL_SUFFIX = ".partial"
SEALED_SUFFIX = ".sealed"


@dataclass(frozen=True)
class WavStream:
    """A recording as the WAV bytes playback and export hand out, decrypted as they are read."""

    sealed: bool
    sample_rate: int
    channels: int
    frames: int
    size: int
    chunks: Iterator[bytes]


def open_wav(path: Path, keys: KeyRing | None) -> WavStream:
    """The recording at `path` as a WAV stream. A sealed file needs the key ring (and fails with
    SealedFileError if it was altered or cut short); a plain file is read as it is."""
    if is_sealed(path):
        if keys is None:
            raise KeyUnavailableError(f"{path.name} is encrypted and no key ring is loaded")
        audio, length, body = sealed_audio.open_chunks(path, keys)
        header = wav_header(length, audio.sample_rate, audio.channels, audio.sample_width)
        frames = length // audio.block_align

        def sealed_chunks() -> Iterator[bytes]:
            yield header
            yield from body

        return WavStream(True, audio.sample_rate, audio.channels, frames,
                         len(header) + length, sealed_chunks())
    with wave.open(str(path), "rb") as r:
        frames, rate, channels = r.getnframes(), r.getframerate(), r.getnchannels()

    def plain_chunks() -> Iterator[bytes]:
        with path.open("rb") as f:
            yield from iter(lambda: f.read(1 << 20), b"")

    return WavStream(False, rate, channels, frames, path.stat().st_size, plain_chunks())


def wav_header(data_bytes: int, sample_rate: int, channels: int, sample_width: int) -> bytes:
    """The 44-byte header of a PCM WAV holding `data_bytes` of audio."""
    block = channels * sample_width
    return b"".join((
        b"RIFF", struct.pack("<I", 36 + data_bytes), b"WAVE",
        b"fmt ", struct.pack("<IHHIIHH", 16, 1, channels, sample_rate, sample_rate * block,
                             block, sample_width * 8),
        b"data", struct.pack("<I", data_bytes),
    ))


def is_sealed(path: Path) -> bool:
    """A sealed file's name (partial or not)."""
    return path.name.removesuffix(PARTIAL_SUFFIX).endswith(SEALED_SUFFIX)



def remove_recording_file(recordings_dir: Path, path: Path) -> None:
    """Delete a recording file and, once empty, its call directory (never above `recordings_dir`)."""
    path.unlink(missing_ok=True)
    for parent in (path.parent, path.parent.parent):
        if parent == recordings_dir or recordings_dir not in parent.parents:
            return
        with contextlib.suppress(OSError):
            parent.rmdir()

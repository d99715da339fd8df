"""Sealed audio files: encrypted as written, authenticated chunk by chunk, repairable after a
crash, re-wrappable under a new master key without touching the audio."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import numpy as np
import pytest

from reautod.errors import ConfigError
from reautod.security import sealed_audio
from reautod.security.keys import KeyRing, KeyUnavailableError, generate_key_text, load_key_ring
from reautod.security.sealed_audio import (
    HEADER_BYTES,
    AudioFormat,
    Rewrap,
    SealedFileError,
    SealedWriter,
)

FORMAT = AudioFormat(8000)


def ring(*texts: str) -> KeyRing:
    return KeyRing.parse("\n".join(texts))


def pcm(seconds: float, seed: int = 1) -> bytes:
    rng = np.random.default_rng(seed)
    return rng.integers(-20000, 20000, int(seconds * 8000), dtype=np.int16).tobytes()


def seal(path: Path, keys: KeyRing, *pieces: bytes, close: bool = True) -> SealedWriter:
    writer = SealedWriter(path, keys, FORMAT)
    for piece in pieces:
        writer.write(piece)
    if close:
        writer.close()
    return writer


def read_all(path: Path, keys: KeyRing) -> bytes:
    _audio, length, chunks = sealed_audio.open_chunks(path, keys)
    data = b"".join(chunks)
    assert len(data) == length
    return data


def test_audio_round_trips_and_no_plaintext_reaches_the_disk(tmp_path: Path) -> None:
    keys = ring(generate_key_text())
    audio = [pcm(0.5, 1), pcm(0.02, 2), pcm(1.0, 3)]
    path = tmp_path / "a.sealed"
    seal(path, keys, *audio)
    assert read_all(path, keys) == b"".join(audio)
    raw = path.read_bytes()
    for piece in audio:  # not even a 64-byte run of any written sample block is on disk
        for start in range(0, len(piece) - 64, 997):
            assert piece[start:start + 64] not in raw
    assert sealed_audio.read_header(path).audio == FORMAT


def test_large_writes_are_split_into_bounded_chunks(tmp_path: Path) -> None:
    keys = ring(generate_key_text())
    big = os.urandom(sealed_audio.MAX_CHUNK * 2 + 10)
    seal(tmp_path / "big", keys, big)
    assert read_all(tmp_path / "big", keys) == big


@pytest.mark.parametrize("where", ["chunk", "fixed_header", "slot"])
def test_any_altered_byte_is_refused(tmp_path: Path, where: str) -> None:
    keys = ring(generate_key_text())
    path = tmp_path / "a.sealed"
    seal(path, keys, pcm(0.3))
    raw = bytearray(path.read_bytes())
    offset = {"chunk": HEADER_BYTES + 40, "fixed_header": 9, "slot": sealed_audio.FIXED_BYTES + 30}
    raw[offset[where]] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises((SealedFileError, KeyUnavailableError)):
        read_all(path, keys)


def test_a_file_cut_at_a_chunk_boundary_is_refused(tmp_path: Path) -> None:
    keys = ring(generate_key_text())
    path = tmp_path / "a.sealed"
    seal(path, keys, pcm(0.2, 1), pcm(0.2, 2))
    whole = path.read_bytes()
    # drop the end marker (4-byte length + 16-byte tag): every remaining chunk is intact
    path.write_bytes(whole[:-20])
    with pytest.raises(SealedFileError, match="cut short"):
        read_all(path, keys)


def test_wrong_key_cannot_open(tmp_path: Path) -> None:
    path = tmp_path / "a.sealed"
    seal(path, ring(generate_key_text()), pcm(0.1))
    with pytest.raises(KeyUnavailableError, match="no master key"):
        read_all(path, ring(generate_key_text()))


def test_repair_keeps_whole_chunks_and_cuts_a_torn_tail(tmp_path: Path) -> None:
    keys = ring(generate_key_text())
    path = tmp_path / "a.sealed.partial"
    first, second = pcm(0.3, 1), pcm(0.3, 2)
    writer = seal(path, keys, first, second, close=False)
    writer.abandon()  # the daemon died: no end marker
    with path.open("ab") as f:
        f.write(b"\x00\x00\x10\x00" + b"torn")  # a chunk whose write never finished
    assert sealed_audio.repair(path, keys) == len(first) + len(second)
    assert read_all(path, keys) == first + second
    assert sealed_audio.repair(path, keys) == len(first) + len(second)  # idempotent

    empty = tmp_path / "b.sealed.partial"
    seal(empty, keys, close=False).abandon()
    assert sealed_audio.repair(empty, keys) is None  # header only: nothing to keep
    junk = tmp_path / "c.sealed.partial"
    junk.write_bytes(b"RDSEAL")
    assert sealed_audio.repair(junk, keys) is None


def test_rewrap_changes_only_the_key_slots(tmp_path: Path) -> None:
    old, new = generate_key_text(), generate_key_text()
    path = tmp_path / "a.sealed"
    audio = pcm(0.5)
    seal(path, ring(old), audio)
    before = path.read_bytes()
    assert sealed_audio.rewrap(path, ring(new, old)) is Rewrap.REWRAPPED
    after = path.read_bytes()
    assert after[HEADER_BYTES:] == before[HEADER_BYTES:]  # the audio was not re-encrypted
    assert after[:sealed_audio.FIXED_BYTES] == before[:sealed_audio.FIXED_BYTES]
    assert sealed_audio.read_header(path).key_ids() == [ring(new).current.key_id]
    assert read_all(path, ring(new)) == audio
    with pytest.raises(KeyUnavailableError):
        read_all(path, ring(old))  # the old wrap is gone
    assert sealed_audio.rewrap(path, ring(new, old)) is Rewrap.CURRENT


def test_a_crash_during_rewrap_leaves_a_file_that_opens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = generate_key_text(), generate_key_text()
    path = tmp_path / "a.sealed"
    audio = pcm(0.2)
    seal(path, ring(old), audio)
    writes = 0
    real = sealed_audio._pwrite_synced

    def crash_on_second(f: object, offset: int, data: bytes) -> None:
        nonlocal writes
        writes += 1
        if writes == 2:
            raise OSError("power cut")
        real(f, offset, data)  # type: ignore[arg-type]

    monkeypatch.setattr(sealed_audio, "_pwrite_synced", crash_on_second)
    with pytest.raises(OSError):
        sealed_audio.rewrap(path, ring(new, old))
    monkeypatch.undo()
    assert read_all(path, ring(old)) == audio  # both wraps are there
    assert read_all(path, ring(new)) == audio
    assert sealed_audio.rewrap(path, ring(new, old)) is Rewrap.REWRAPPED  # finishing the job
    assert sealed_audio.read_header(path).key_ids() == [ring(new).current.key_id]


def test_key_ring_parsing() -> None:
    a, b = generate_key_text(), generate_key_text()
    keys = KeyRing.parse(f"\n{a}\n  {b}  \n")
    assert keys.current.key_id != keys.older[0].key_id
    assert keys.ids() == [keys.current.id_hex, keys.older[0].id_hex]
    assert a not in repr(keys)
    assert load_key_ring(None) is None and load_key_ring(" \n") is None
    ring_ = load_key_ring(a)
    assert ring_ is not None and ring_.current.key_id == keys.current.key_id
    for bad in ("", "not base64!", base64.b64encode(b"short").decode(), f"{a}\n{a}"):
        with pytest.raises(ConfigError):
            KeyRing.parse(bad)


def test_header_checks(tmp_path: Path) -> None:
    path = tmp_path / "x"
    path.write_bytes(b"RIFF" + bytes(300))
    with pytest.raises(SealedFileError, match="not a sealed"):
        sealed_audio.read_header(path)
    keys = ring(generate_key_text())
    seal(path := tmp_path / "y", keys, b"\x00\x01")
    raw = bytearray(path.read_bytes())
    raw[8:12] = bytes(4)  # sample rate 0
    path.write_bytes(bytes(raw))
    with pytest.raises(SealedFileError, match="impossible"):
        sealed_audio.read_header(path)

"""Sealed audio files: PCM encrypted as it is written, in AES-256-GCM chunks under a data key of
its own, wrapped by a master key (`reautod.security.keys`). No plaintext ever reaches the disk.

Layout (integers big-endian):

    header  "RDSEAL01" | sample_rate u32 | channels u16 | sample_width u16 | nonce prefix (7)
            | reserved (1)                         24 bytes, never rewritten
    slots   2 x (key id (8) | wrap nonce (12) | wrapped data key (48))        68 bytes each
    chunks  length u32 | AES-GCM(data key, nonce = prefix | counter u32 | last u8, pcm)  ...

The header is the associated data of every chunk and of each wrapped key, so changing the audio
parameters, reordering, dropping or moving chunks between files all fail authentication. The
writer ends a file with a chunk marked `last` (possibly empty): a file without one was cut short.
A crash leaves whole chunks followed at most by one torn chunk: `repair` keeps the whole ones
and appends the `last` marker.

Why two key slots: rotating the master key re-wraps only the data key (68 bytes, in place, the
audio untouched). The new wrap goes into the free slot and is synced before the old slot is
zeroed, so a crash at any moment leaves at least one slot that opens.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from reautod.errors import StoreError
from reautod.security.keys import (
    KEY_ID_BYTES,
    NONCE_BYTES,
    WRAPPED_BYTES,
    KeyRing,
    KeyUnavailableError,
    MasterKey,
    new_data_key,
)

MAGIC = b"RDSEAL01"
_FIXED = struct.Struct(">8sIHH7sx")
_SLOT = struct.Struct(f">{KEY_ID_BYTES}s{NONCE_BYTES}s{WRAPPED_BYTES}s")
_LEN = struct.Struct(">I")
FIXED_BYTES = _FIXED.size
HEADER_BYTES = FIXED_BYTES + 2 * _SLOT.size
PREFIX_BYTES = 7
TAG_BYTES = 16
MAX_CHUNK = 1 << 20  # plaintext bytes per chunk; larger writes are split
_EMPTY_SLOT = bytes(_SLOT.size)


class SealedFileError(StoreError):
    """A sealed file is not one, was altered, or was cut short."""

    code = "sealed_file_invalid"


@dataclass(frozen=True)
class AudioFormat:
    sample_rate: int
    channels: int = 1
    sample_width: int = 2

    @property
    def block_align(self) -> int:
        return self.channels * self.sample_width


@dataclass(frozen=True)
class _Slot:
    key_id: bytes
    nonce: bytes
    wrapped: bytes

    @property
    def empty(self) -> bool:
        return self.key_id == bytes(KEY_ID_BYTES)


@dataclass(frozen=True)
class SealedHeader:
    fixed: bytes
    audio: AudioFormat
    prefix: bytes
    slots: tuple[_Slot, _Slot]

    @classmethod
    def parse(cls, data: bytes) -> SealedHeader:
        if len(data) < HEADER_BYTES or not data.startswith(MAGIC):
            raise SealedFileError("not a sealed audio file (bad or short header)")
        _magic, rate, channels, width, prefix = _FIXED.unpack_from(data)
        if rate <= 0 or channels <= 0 or width <= 0:
            raise SealedFileError("sealed audio header holds an impossible format")
        slots = tuple(_Slot(*_SLOT.unpack_from(data, FIXED_BYTES + i * _SLOT.size))
                      for i in range(2))
        return cls(data[:FIXED_BYTES], AudioFormat(rate, channels, width), prefix,
                   (slots[0], slots[1]))

    def key_ids(self) -> list[bytes]:
        return [s.key_id for s in self.slots if not s.empty]

    def data_key(self, keys: KeyRing) -> bytes:
        """Unwrap the data key with whichever master key of the ring fits a slot."""
        for slot in self.slots:
            master = None if slot.empty else keys.find(slot.key_id)
            if master is not None:
                return master.unwrap(slot.nonce, slot.wrapped, self.fixed)
        held = ", ".join(s.key_id.hex() for s in self.slots if not s.empty) or "none"
        raise KeyUnavailableError(f"no master key of the ring opens this file (its keys: {held})")


def _slot_offset(index: int) -> int:
    return FIXED_BYTES + index * _SLOT.size


def _wrap_slot(master: MasterKey, data_key: bytes, fixed: bytes) -> bytes:
    nonce, wrapped = master.wrap(data_key, fixed)
    return _SLOT.pack(master.key_id, nonce, wrapped)


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    return prefix + struct.pack(">IB", counter, 1 if last else 0)


class SealedWriter:
    """Appends sealed chunks to a new file; `close` marks the end. Not thread-safe: one writer."""

    def __init__(self, path: Path, keys: KeyRing, audio: AudioFormat) -> None:
        self.path = path
        self.audio = audio
        prefix = os.urandom(PREFIX_BYTES)
        self._fixed = _FIXED.pack(MAGIC, audio.sample_rate, audio.channels, audio.sample_width,
                                  prefix)
        data_key = new_data_key()
        self._aead = AESGCM(data_key)
        self._prefix = prefix
        self._counter = 0
        self.plaintext_bytes = 0
        header = self._fixed + _wrap_slot(keys.current, data_key, self._fixed) + _EMPTY_SLOT
        self._file: BinaryIO | None = path.open("xb")
        self._file.write(header)
        self._file.flush()

    def write(self, data: bytes) -> None:
        """Seal `data` as one chunk (or several, over MAX_CHUNK) and push it to the OS."""
        if self._file is None:
            raise SealedFileError(f"{self.path} is closed")
        for start in range(0, len(data), MAX_CHUNK):
            self._chunk(data[start:start + MAX_CHUNK], last=False)
        self._file.flush()

    def _chunk(self, data: bytes, *, last: bool) -> None:
        assert self._file is not None
        sealed = self._aead.encrypt(_nonce(self._prefix, self._counter, last), data, self._fixed)
        self._file.write(_LEN.pack(len(sealed)) + sealed)
        self._counter += 1
        self.plaintext_bytes += len(data)

    def close(self) -> None:
        """Write the end marker and sync the file to disk."""
        if self._file is None:
            return
        self._chunk(b"", last=True)
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None

    def abandon(self) -> None:
        """Close without the end marker (the file is about to be deleted)."""
        if self._file is not None:
            self._file.close()
            self._file = None


@dataclass(frozen=True)
class _ChunkRef:
    offset: int  # of the length prefix
    sealed_len: int
    last: bool


def _scan(f: BinaryIO, header: SealedHeader, aead: AESGCM | None) -> Iterator[
        tuple[_ChunkRef, bytes | None]]:
    """Walk the chunks; with `aead`, open each (yields its plaintext). Stops at the end of the
    file or at the first chunk that is torn or does not open (the caller decides what that
    means)."""
    offset = HEADER_BYTES
    counter = 0
    while True:
        f.seek(offset)
        raw_len = f.read(_LEN.size)
        if len(raw_len) < _LEN.size:
            return
        (length,) = _LEN.unpack(raw_len)
        if not TAG_BYTES <= length <= MAX_CHUNK + TAG_BYTES:
            return
        sealed = f.read(length)
        if len(sealed) < length:
            return
        plain: bytes | None = None
        last = False
        if aead is not None:
            for candidate in (False, True):
                try:
                    plain = aead.decrypt(_nonce(header.prefix, counter, candidate), sealed,
                                         header.fixed)
                except InvalidTag:
                    continue
                last = candidate
                break
            else:
                return
        yield _ChunkRef(offset, length, last), plain
        if last:
            return
        offset += _LEN.size + length
        counter += 1


def _read_header(f: BinaryIO) -> SealedHeader:
    return SealedHeader.parse(f.read(HEADER_BYTES))


def read_header(path: Path) -> SealedHeader:
    with path.open("rb") as f:
        return _read_header(f)


def open_chunks(path: Path, keys: KeyRing) -> tuple[AudioFormat, int, Iterator[bytes]]:
    """The file's audio format, its plaintext length and an iterator over its plaintext chunks.

    The length comes from authenticated chunks, so a WAV header can be written before the audio
    is streamed. Raises SealedFileError when the file was altered or cut short."""
    with path.open("rb") as f:
        header = _read_header(f)
        aead = AESGCM(header.data_key(keys))
        total = 0
        complete = False
        for ref, plain in _scan(f, header, aead):
            assert plain is not None
            total += len(plain)
            complete = ref.last
        if not complete:
            raise SealedFileError(f"{path.name}: altered or cut short (no intact end marker)")

    def chunks() -> Iterator[bytes]:
        with path.open("rb") as f:
            ended = False
            for ref, plain in _scan(f, header, aead):
                assert plain is not None
                ended = ref.last
                if plain:
                    yield plain
            if not ended:
                raise SealedFileError(f"{path.name}: changed while it was read")

    return header.audio, total, chunks()


def repair(path: Path, keys: KeyRing) -> int | None:
    """Finish a file a crash left open: keep the whole chunks, cut a torn tail, add the end
    marker. Returns the plaintext bytes kept, or None when there is no audio (or no header).
    KeyUnavailableError when no key of the ring opens it (the file is left as it is)."""
    with path.open("r+b") as f:
        try:
            header = _read_header(f)
        except SealedFileError:
            return None
        aead = AESGCM(header.data_key(keys))
        end, total, counter = HEADER_BYTES, 0, 0
        for ref, plain in _scan(f, header, aead):
            assert plain is not None
            total += len(plain)
            end = ref.offset + _LEN.size + ref.sealed_len
            counter += 1
            if ref.last:
                f.truncate(end)
                return total or None
        if total == 0:
            return None
        f.truncate(end)
        f.seek(end)
        sealed = aead.encrypt(_nonce(header.prefix, counter, True), b"", header.fixed)
        f.write(_LEN.pack(len(sealed)) + sealed)
        f.flush()
        os.fsync(f.fileno())
    return total


class Rewrap(StrEnum):
    CURRENT = "current"  # already wrapped by the current key only
    REWRAPPED = "rewrapped"


def rewrap(path: Path, keys: KeyRing) -> Rewrap:
    """Wrap the file's data key with the ring's current key and drop older wraps.

    Only the key slots change; each step is synced, so a crash leaves a file that opens.
    KeyUnavailableError when no key of the ring opens the file."""
    current = keys.current
    with path.open("r+b") as f:
        header = _read_header(f)
        ids = header.key_ids()
        if ids == [current.key_id]:
            return Rewrap.CURRENT
        data_key = header.data_key(keys)
        keep = next((i for i, s in enumerate(header.slots) if s.key_id == current.key_id), None)
        if keep is None:
            # the new wrap goes where the old one is not: the empty slot, else the one that
            # does not hold the key we just opened
            opened = next(i for i, s in enumerate(header.slots)
                          if not s.empty and keys.find(s.key_id) is not None)
            keep = 1 - opened
            _pwrite_synced(f, _slot_offset(keep), _wrap_slot(current, data_key, header.fixed))
            # what was written must open before the old wrap goes
            check = SealedHeader.parse(_pread(f, 0, HEADER_BYTES))
            if check.data_key(KeyRing(current)) != data_key:
                raise SealedFileError(f"{path.name}: re-wrapped key does not verify")
        _pwrite_synced(f, _slot_offset(1 - keep), _EMPTY_SLOT)
    return Rewrap.REWRAPPED


def _pwrite_synced(f: BinaryIO, offset: int, data: bytes) -> None:
    f.seek(offset)
    f.write(data)
    f.flush()
    os.fsync(f.fileno())


def _pread(f: BinaryIO, offset: int, size: int) -> bytes:
    f.seek(offset)
    return f.read(size)

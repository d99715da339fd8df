"""Master keys from the `encryption_key` credential, and the data keys they wrap.

The credential holds one or more keys, one per line, each 32 random bytes in base64 (make one
with `reautoctl keys generate`). The first line is the current key: new data keys are wrapped
with it. Later lines are older keys, still accepted for unwrapping until `reautoctl keys
rotate` has re-wrapped every data key under the current one; then they can be removed.

A master key is never used directly: HKDF-SHA256 derives from it the key-wrapping key and a
short public key id (which key wrapped a data key, without revealing anything about it).
Wrapping is AES-256-GCM with a random nonce and the caller's associated data, so a wrapped key
only opens in the context it was made for.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from reautod.errors import ConfigError, ReautodError

KEY_BYTES = 32
KEY_ID_BYTES = 8
NONCE_BYTES = 12
WRAPPED_BYTES = KEY_BYTES + 16  # AES-GCM ciphertext of a data key plus its tag
SECRET_NAME = "encryption_key"

_WRAP_INFO = b"reautod data-key wrapping v1"
_ID_INFO = b"reautod key id v1"


class KeyUnavailableError(ReautodError):
    """A data key cannot be unwrapped: its master key is not in the key ring, or it was altered."""

    code = "key_unavailable"


def _derive(master: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(master)


@dataclass(frozen=True, repr=False)
class MasterKey:
    """One master key: its public id and the derived wrapping key (the raw key is not kept)."""

    key_id: bytes
    _wrap: AESGCM = field(compare=False)

    @classmethod
    def from_bytes(cls, raw: bytes) -> MasterKey:
        if len(raw) != KEY_BYTES:
            raise ValueError(f"a master key is {KEY_BYTES} bytes, got {len(raw)}")
        return cls(_derive(raw, _ID_INFO, KEY_ID_BYTES), AESGCM(_derive(raw, _WRAP_INFO, 32)))

    @property
    def id_hex(self) -> str:
        return self.key_id.hex()

    def wrap(self, data_key: bytes, context: bytes) -> tuple[bytes, bytes]:
        """(nonce, wrapped) of `data_key`, bound to `context`."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce, self._wrap.encrypt(nonce, data_key, context + self.key_id)

    def unwrap(self, nonce: bytes, wrapped: bytes, context: bytes) -> bytes:
        try:
            return self._wrap.decrypt(nonce, wrapped, context + self.key_id)
        except InvalidTag as err:
            raise KeyUnavailableError(f"data key wrapped by {self.id_hex} does not open: altered, or "
                            "made for another file") from err

    def __repr__(self) -> str:
        return f"MasterKey({self.id_hex})"


@dataclass(frozen=True)
class KeyRing:
    """The current master key and older ones still accepted for unwrapping."""

    current: MasterKey
    older: tuple[MasterKey, ...] = ()

    @classmethod
    def parse(cls, text: str) -> KeyRing:
        """Keys from the credential's text: one base64 key per line, the current one first."""
        keys: list[MasterKey] = []
        problems: list[tuple[str, str]] = []
        lines = [line.strip() for line in text.splitlines()]
        for number, line in enumerate(lines, 1):
            if not line:
                continue
            try:
                keys.append(MasterKey.from_bytes(base64.b64decode(line, validate=True)))
            except (binascii.Error, ValueError):
                problems.append((f"{SECRET_NAME} line {number}",
                                 f"not a base64 {KEY_BYTES}-byte key (make one with "
                                 "`reautoctl keys generate`)"))
        if problems:
            raise ConfigError(f"the {SECRET_NAME} credential is invalid", problems)
        if not keys:
            raise ConfigError(f"the {SECRET_NAME} credential holds no key",
                              [(SECRET_NAME, "empty")])
        ids = [k.key_id for k in keys]
        if len(set(ids)) != len(ids):
            raise ConfigError(f"the {SECRET_NAME} credential lists a key twice",
                              [(SECRET_NAME, "duplicate key")])
        return cls(keys[0], tuple(keys[1:]))

    @property
    def all(self) -> tuple[MasterKey, ...]:
        return (self.current, *self.older)

    def find(self, key_id: bytes) -> MasterKey | None:
        return next((k for k in self.all if k.key_id == key_id), None)

    def ids(self) -> list[str]:
        return [k.id_hex for k in self.all]


def load_key_ring(credential: str | None) -> KeyRing | None:
    """The key ring of the `encryption_key` credential's text; None when there is none."""
    return KeyRing.parse(credential) if credential and credential.strip() else None


def generate_key_text() -> str:
    """A new random master key, as a credential line."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)

"""Master-key status and rotation over the sealed recordings on disk.

Rotation, as an operator does it:
  1. `reautoctl keys generate` prints a new key; put it on the FIRST line of the `encryption_key`
     credential, keeping the old key on the next line; restart the daemon (new recordings are
     now wrapped with the new key, old ones still open with the old);
  2. `reautoctl keys rotate` re-wraps every recording's data key under the new key (68 bytes of
     each file change, never the audio), and names the older keys some file still needs;
  3. when none is needed, remove the old line from the credential and restart.
Every sealed file under the recordings directory is visited, partial ones of live calls
included (their writer only appends; rotation only rewrites the key slots in the header).
Blocking: run these in a thread.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from reautod.errors import StoreError
from reautod.security import sealed_audio
from reautod.security.keys import KeyRing, KeyUnavailableError
from reautod.security.results import KeyStatus, RotationReport
from reautod.store.recording_files import PARTIAL_SUFFIX, SEALED_SUFFIX

log = logging.getLogger(__name__)


def _sealed_files(recordings_dir: Path) -> list[Path]:
    if not recordings_dir.is_dir():
        return []
    return sorted(p for p in recordings_dir.glob("*/*/*")
                  if p.name.removesuffix(PARTIAL_SUFFIX).endswith(SEALED_SUFFIX))


def _plain_files(recordings_dir: Path) -> int:
    if not recordings_dir.is_dir():
        return 0
    return sum(1 for p in recordings_dir.glob("*/*/*")
               if p.name.removesuffix(PARTIAL_SUFFIX).endswith(".wav"))


def key_status(recordings_dir: Path, keys: KeyRing) -> KeyStatus:
    by_key: Counter[str] = Counter()
    unreadable: list[str] = []
    for path in _sealed_files(recordings_dir):
        try:
            ids = sealed_audio.read_header(path).key_ids()
        except (FileNotFoundError, StoreError):
            continue  # finalised or removed meanwhile, or not one of ours
        by_key.update(i.hex() for i in ids)
        if not any(keys.find(i) for i in ids):
            unreadable.append(str(path.relative_to(recordings_dir)))
    return KeyStatus(current=keys.current.id_hex, older=[k.id_hex for k in keys.older],
                     files_by_key=dict(by_key), unreadable=unreadable,
                     plain_files=_plain_files(recordings_dir))


def rotate(recordings_dir: Path, keys: KeyRing) -> RotationReport:
    counts: Counter[sealed_audio.Rewrap] = Counter()
    unreadable: list[str] = []
    for path in _sealed_files(recordings_dir):
        name = str(path.relative_to(recordings_dir))
        try:
            counts[sealed_audio.rewrap(path, keys)] += 1
        except FileNotFoundError:
            # a partial file finalised (renamed) meanwhile: its final name is handled below
            final = path.with_name(path.name.removesuffix(PARTIAL_SUFFIX))
            if final != path and final.exists():
                counts[sealed_audio.rewrap(final, keys)] += 1
        except (KeyUnavailableError, StoreError) as err:
            log.warning("key rotation: %s: %s", name, err.message)
            unreadable.append(name)
    still = sorted(set(key_status(recordings_dir, keys).files_by_key) - {keys.current.id_hex})
    log.info("key rotation to %s: %d re-wrapped, %d already current, %d unreadable",
             keys.current.id_hex, counts[sealed_audio.Rewrap.REWRAPPED],
             counts[sealed_audio.Rewrap.CURRENT], len(unreadable))
    return RotationReport(current=keys.current.id_hex,
                          rewrapped=counts[sealed_audio.Rewrap.REWRAPPED],
                          already_current=counts[sealed_audio.Rewrap.CURRENT],
                          unreadable=unreadable, older_keys_still_needed=still)

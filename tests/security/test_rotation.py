"""Key status and rotation over a recordings directory holding files of several keys, a file no
key opens and a plain WAV from before encryption."""

from __future__ import annotations

import uuid
from pathlib import Path

from reautod.security.keys import KeyRing, generate_key_text
from reautod.security.rotation import key_status, rotate
from reautod.security.sealed_audio import AudioFormat, SealedWriter


def sealed(root: Path, keys: KeyRing, name: str = "inbound.wav.sealed") -> Path:
    path = root / "2026-12-01" / str(uuid.uuid4()) / name
    path.parent.mkdir(parents=True)
    writer = SealedWriter(path, keys, AudioFormat(8000))
    writer.write(b"\x01\x00" * 800)
    if not name.endswith(".partial"):
        writer.close()
    else:
        writer.abandon()
    return path


def test_rotation_reports_what_it_could_not_open(tmp_path: Path) -> None:
    old, new, lost = (KeyRing.parse(generate_key_text()) for _ in range(3))
    ring = KeyRing(new.current, (old.current,))
    sealed(tmp_path, old)
    sealed(tmp_path, old, "outbound.wav.sealed.partial")  # a live call's file
    sealed(tmp_path, new)
    orphan = sealed(tmp_path, lost)
    plain = tmp_path / "2026-11-01" / str(uuid.uuid4()) / "inbound.wav"
    plain.parent.mkdir(parents=True)
    plain.write_bytes(b"RIFF")
    (tmp_path / "README").write_text("not a recording")

    status = key_status(tmp_path, ring)
    assert status.files_by_key == {old.current.id_hex: 2, new.current.id_hex: 1,
                                   lost.current.id_hex: 1}
    assert status.unreadable == [str(orphan.relative_to(tmp_path))]
    assert status.plain_files == 1 and status.older == [old.current.id_hex]

    report = rotate(tmp_path, ring)
    assert (report.rewrapped, report.already_current) == (2, 1)
    assert report.unreadable == [str(orphan.relative_to(tmp_path))]
    assert report.older_keys_still_needed == [lost.current.id_hex]
    assert key_status(tmp_path, ring).files_by_key == {new.current.id_hex: 3,
                                                        lost.current.id_hex: 1}
    assert key_status(tmp_path / "absent", ring).files_by_key == {}

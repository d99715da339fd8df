"""`models pull` from the hub (profiles gpu, cpu) against a real local HTTP server that answers
like the hub, and the pull lock every profile's pull takes."""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reautod.engines.catalog import PROFILES, RemoteFile
from reautod.engines.fetch import ChecksumError, PullError, TerminalProgress
from reautod.engines.hub import Downloader
from reautod.engines.pull import profile_files, pull_profile
from tests.engines.hubserver import HostedFile, Hub, running_hub

REPO = "acme/weights"
BLOB = os.urandom(3 * 1024 * 1024 + 123)  # several download chunks


@pytest.fixture
def hub() -> Iterator[Hub]:
    with running_hub() as server:
        yield server


def file_(path: str = "model.bin", dest: str = "m/model.bin", sha256: str | None = None
          ) -> RemoteFile:
    return RemoteFile(REPO, path, dest, sha256=sha256)


def downloader(hub: Hub, models_dir: Path, retries: int = 3) -> Downloader:
    return Downloader(models_dir, hub_url=hub.url, retries=retries)


def gets_with_range(hub: Hub) -> list[str | None]:
    return [rng for method, path, rng in hub.requests if method == "GET" and "/cdn/" in path]


def test_downloads_and_verifies_lfs_file(hub: Hub, tmp_path: Path) -> None:
    hub.add(REPO, "model.bin", HostedFile(BLOB))
    with downloader(hub, tmp_path) as d:
        result = d.pull(file_())
    dest = tmp_path / "m/model.bin"
    assert dest.read_bytes() == BLOB
    assert not (tmp_path / "m/model.bin.part").exists()
    assert result.status == "downloaded"
    assert result.digest == hashlib.sha256(BLOB).hexdigest()
    assert "X-Linked-Etag" in result.verified_by
    with downloader(hub, tmp_path) as d:  # present: no network at all
        before = len(hub.requests)
        assert d.pull(file_()).status == "present"
        assert len(hub.requests) == before


def test_small_file_verified_by_git_blob_sha1(hub: Hub, tmp_path: Path) -> None:
    hub.add(REPO, "config.json", HostedFile(b'{"a": 1}\n', lfs=False))
    with downloader(hub, tmp_path) as d:
        result = d.pull(file_("config.json", "m/config.json"))
    assert (tmp_path / "m/config.json").read_bytes() == b'{"a": 1}\n'
    assert "git blob" in result.verified_by


def test_interrupted_download_resumes_with_range(hub: Hub, tmp_path: Path) -> None:
    hub.add(REPO, "model.bin", HostedFile(BLOB, cut_after=1_000_000))
    with downloader(hub, tmp_path) as d:
        result = d.pull(file_())
    assert (tmp_path / "m/model.bin").read_bytes() == BLOB
    ranges = gets_with_range(hub)
    assert ranges[0] is None
    assert len(ranges) == 2 and ranges[1] is not None
    resumed_at = int(ranges[1].removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at <= 1_000_000
    assert result.digest == hashlib.sha256(BLOB).hexdigest()


def test_part_left_by_an_earlier_run_is_resumed(hub: Hub, tmp_path: Path) -> None:
    hub.add(REPO, "model.bin", HostedFile(BLOB, cut_after=500_000))
    with downloader(hub, tmp_path, retries=0) as d, pytest.raises(PullError, match="resume"):
        d.pull(file_())
    part = tmp_path / "m/model.bin.part"
    assert 0 < part.stat().st_size <= 500_000
    assert not (tmp_path / "m/model.bin").exists()
    kept = part.stat().st_size
    with downloader(hub, tmp_path) as d:
        result = d.pull(file_())
    assert result.resumed_from == kept
    assert gets_with_range(hub)[-1] == f"bytes={kept}-"
    assert (tmp_path / "m/model.bin").read_bytes() == BLOB


def test_server_ignoring_range_restarts_cleanly(hub: Hub, tmp_path: Path) -> None:
    hub.add(REPO, "model.bin", HostedFile(BLOB, cut_after=700_000, honour_range=False))
    with downloader(hub, tmp_path) as d:
        d.pull(file_())
    assert (tmp_path / "m/model.bin").read_bytes() == BLOB


def test_checksum_mismatch_installs_nothing(hub: Hub, tmp_path: Path) -> None:
    hub.add(REPO, "model.bin", HostedFile(BLOB, wrong_sha256=True))
    with downloader(hub, tmp_path) as d, pytest.raises(ChecksumError) as info:
        d.pull(file_())
    assert "checksum mismatch" in info.value.message and "m/model.bin" in info.value.message
    assert info.value.code == "checksum_mismatch"
    assert not (tmp_path / "m/model.bin").exists()
    assert not (tmp_path / "m/model.bin.part").exists()


def test_pinned_sha256_wins_over_the_hub(hub: Hub, tmp_path: Path) -> None:
    hub.add(REPO, "model.bin", HostedFile(BLOB))
    with downloader(hub, tmp_path) as d, pytest.raises(ChecksumError, match="catalog pin"):
        d.pull(file_(sha256="ab" * 32))
    with downloader(hub, tmp_path) as d:
        result = d.pull(file_(sha256=hashlib.sha256(BLOB).hexdigest()))
    assert result.verified_by == "sha256 from catalog pin"


def test_missing_file_and_unreachable_hub_are_clear(hub: Hub, tmp_path: Path) -> None:
    with downloader(hub, tmp_path) as d, pytest.raises(PullError, match="not found"):
        d.pull(file_("nope.bin", "m/nope.bin"))
    with Downloader(tmp_path, hub_url="http://127.0.0.1:9") as d, \
            pytest.raises(PullError, match="cannot reach"):
        d.pull(file_())


def test_progress_plain_lines_when_not_a_tty(hub: Hub, tmp_path: Path) -> None:
    hub.add(REPO, "model.bin", HostedFile(BLOB))
    out = io.StringIO()
    with Downloader(tmp_path, hub_url=hub.url, progress=TerminalProgress(out)) as d:
        d.pull(file_())
    text = out.getvalue()
    assert "\r" not in text and "\x1b" not in text
    assert "downloading m/model.bin" in text and "m/model.bin: ok" in text


def test_pull_profile_downloads_every_catalog_file_once(hub: Hub, tmp_path: Path) -> None:
    files = list(profile_files("cpu"))
    assert len({f.dest for f in files}) == len(files)
    for f in files:
        lfs = f.path.endswith((".bin", ".gguf", ".onnx"))
        hub.add(f.repo, f.path, HostedFile(f"{f.repo}/{f.path}".encode() * 10, lfs=lfs))
    results = pull_profile(tmp_path, "cpu", hub_url=hub.url)
    assert {r.dest for r in results} == {f.dest for f in files}
    for spec in PROFILES["cpu"].values():
        assert spec.path_in(tmp_path).exists()


def test_pull_test_profile_builds_models(tmp_path: Path) -> None:
    results = pull_profile(tmp_path, "test")
    assert {r.status for r in results} == {"built"}
    for spec in PROFILES["test"].values():
        assert spec.path_in(tmp_path).exists()


def test_bad_hub_url_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PullError, match="http"):
        Downloader(tmp_path, hub_url="ftp://example.org")


def test_not_enough_disk_space_is_refused_before_downloading(
    hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    hub.add(REPO, "model.bin", HostedFile(BLOB))
    real = shutil.disk_usage

    def tiny_disk(path: object) -> object:
        usage = real(path)  # type: ignore[arg-type]
        return usage._replace(free=1000)

    monkeypatch.setattr(shutil, "disk_usage", tiny_disk)
    with downloader(hub, tmp_path) as d, pytest.raises(PullError, match="only"):
        d.pull(file_())
    assert gets_with_range(hub) == []  # nothing was fetched


def test_a_second_pull_waits_for_the_one_holding_the_directory(tmp_path: Path) -> None:
    out = io.StringIO()
    done: list[object] = []
    with (tmp_path / ".pull.lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another pull is running
        second = threading.Thread(target=lambda: done.append(
            pull_profile(tmp_path, "test", progress=TerminalProgress(out))))
        second.start()
        deadline = time.monotonic() + 10
        while "waiting for another" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert "waiting for another `reautoctl models pull`" in out.getvalue()
        assert second.is_alive() and not (tmp_path / "test").exists()
        fcntl.flock(held, fcntl.LOCK_UN)
    second.join(30)
    assert done and all(spec.path_in(tmp_path).exists() for spec in PROFILES["test"].values())

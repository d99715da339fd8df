"""Session fixtures shared by tests/packaging and tests/ansible: the .deb, built once per run.

`packaging/build-deb --fast` (gzip -1 instead of xz: the same package, compressed in seconds) into
the run's temp dir (xdist workers share it). The build reuses uv's cache of every wheel and the
llama-cpp-python wheel `make venv` compiled (packaging/build-venv --wheel-only): nothing compiles.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.packaging.debroot import missing_tools

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT_S = 1800
BUILD_TOOLS = ("dpkg-buildpackage", "dh", "git")


def require_packaging_host() -> None:
    """Skip unless this host can build packages and chroot (root with Debian's tools)."""
    if os.geteuid() != 0:
        pytest.skip("building and installing the .deb into a chroot needs root")
    missing = [t for t in BUILD_TOOLS if shutil.which(t) is None] + missing_tools()
    if missing:
        pytest.skip(f"missing {', '.join(missing)}: `make system-deps` as root installs them")


def build_deb(out: Path, *extra: str) -> Path:
    result = subprocess.run(
        [str(REPO_ROOT / "packaging" / "build-deb"), "--out", str(out), "--fast", *extra],
        capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"build-deb failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    debs = sorted(out.glob("*.deb"))
    assert len(debs) == 1, debs
    return debs[0]


@pytest.fixture(scope="session")
def built_deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CPU .deb of this working tree (or $REAUTOD_TEST_DEB, a .deb built already)."""
    require_packaging_host()
    prebuilt = os.environ.get("REAUTOD_TEST_DEB")
    if prebuilt:
        return Path(prebuilt)
    # `make test` runs two xdist workers, each with its own session: the first to need the
    # package builds it under a lock in the run's shared temp dir, the other reuses it.
    run_dir = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):  # a worker's temp dir sits in the run's
        run_dir = run_dir.parent
    shared = run_dir / "deb"
    shared.mkdir(exist_ok=True)
    with (shared / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        debs = sorted(shared.glob("*.deb"))
        return debs[0] if debs else build_deb(shared)


@pytest.fixture(scope="session")
def previous_deb(built_deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same package as an older version (`<version>~previous`), for the upgrade path.

    Repacked with dpkg-deb rather than built twice: what an upgrade exercises is dpkg's and the
    maintainer scripts' handling of an installed older version, its conffile and its data.
    """
    work = tmp_path_factory.mktemp("previous")
    tree = work / "tree"
    subprocess.run(["dpkg-deb", "-R", str(built_deb), str(tree)], check=True, timeout=600)
    control = tree / "DEBIAN" / "control"
    lines = control.read_text().splitlines()
    version = next(line.split(": ", 1)[1] for line in lines if line.startswith("Version: "))
    control.write_text("\n".join(
        f"Version: {version}~previous" if line.startswith("Version: ") else line for line in lines
    ) + "\n")
    out = work / f"reautod_{version}~previous.deb"
    subprocess.run(["dpkg-deb", "-Znone", "-b", str(tree), str(out)], check=True, timeout=600,
                   capture_output=True)
    shutil.rmtree(tree)
    return out

"""Throwaway Debian 12 roots for the package and playbook tests, from a cached debootstrap base.

A minimal bookworm base (debootstrap --variant=minbase plus what reautod's .deb depends on) is
built once and kept outside the repository in `~/.cache/reautod/debootstrap/` (or
`$REAUTOD_TEST_CACHE`), keyed by its package list, so later runs and sessions copy it in about a
second instead of bootstrapping again (about a minute, from Debian's mirror). Each test gets its
own copy. Commands run chrooted in a private mount namespace (`unshare --mount`) with /proc
mounted there, so nothing mounted for a test outlives it or shows on the host.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SUITE = "bookworm"
MIRROR = os.environ.get("REAUTOD_TEST_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# Always in the base: what dpkg's maintainer scripts and the playbook's apply need.
BASE_PACKAGES = ("systemd", "python3", "python3-apt", "ca-certificates")
DEBOOTSTRAP_TIMEOUT_S = 900
# Room for the base, the installed package (~1.1 GB) and what the playbook installs (~0.6 GB);
# a tmpfs takes memory only for what it holds.
TMPFS_SIZE = "6g"


def cache_dir() -> Path:
    root = os.environ.get("REAUTOD_TEST_CACHE") or str(Path.home() / ".cache" / "reautod")
    return Path(root)


def missing_tools() -> list[str]:
    """Host tools these roots need; empty when all are there (the tests need root too)."""
    tools = ("debootstrap", "dpkg-deb", "unshare", "chroot")
    return [t for t in tools if shutil.which(t) is None]


def base_root(packages: Sequence[str] = ()) -> Path:
    """The cached base with BASE_PACKAGES and `packages`, bootstrapped if absent."""
    include = sorted({*BASE_PACKAGES, *packages})
    key = hashlib.sha256(f"{SUITE} {MIRROR} {' '.join(include)}".encode()).hexdigest()[:12]
    root = cache_dir() / "debootstrap" / f"{SUITE}-{key}"
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel sessions share one cache
        if (root / ".complete").exists():
            return root
        partial = root.with_name(root.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        result = subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(include)}", SUITE,
             str(partial), MIRROR],
            capture_output=True, text=True, timeout=DEBOOTSTRAP_TIMEOUT_S, check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"debootstrap failed: {result.stdout[-2000:]}{result.stderr[-2000:]}")
        # Like a container: services are never started by maintainer scripts in here.
        policy = partial / "usr/sbin/policy-rc.d"
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        (partial / ".complete").touch()
        shutil.rmtree(root, ignore_errors=True)
        partial.rename(root)
    return root


@dataclass
class Root:
    """A private copy of the base; `run` executes a command chrooted into it."""

    path: Path
    on_tmpfs: bool = False

    @classmethod
    def copy_of(cls, base: Path, dest: Path) -> Root:
        """A copy of `base` at `dest`, on a tmpfs when one can be mounted there.

        In memory, dpkg's per-file fsyncs cost nothing and removing the root is an unmount:
        on the shared 2-core box that took a test from minutes to seconds. Without the mount
        (no privilege for it) the copy lands on disk and works the same, only slower.
        """
        dest.mkdir(parents=True)
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0755",
                                  "tmpfs", str(dest)], capture_output=True, timeout=60,
                                 check=False).returncode == 0
        subprocess.run(["cp", "-a", "--reflink=auto", f"{base}/.", str(dest)], check=True,
                       timeout=600)
        (dest / ".complete").unlink(missing_ok=True)
        shutil.copy("/etc/resolv.conf", dest / "etc" / "resolv.conf")  # today's resolver
        return cls(dest, mounted)

    def run(
        self, *args: str, check: bool = True, env: dict[str, str] | None = None,
        timeout: float = 600, binds: Sequence[tuple[Path, str]] = (),
    ) -> subprocess.CompletedProcess[str]:
        """Run `args` inside the root (as root, PATH of a Debian system); output captured."""
        mounts = [f"mount -t proc proc {self.path}/proc"]
        for source, target in binds:
            inside = self.path / target.lstrip("/")
            inside.mkdir(parents=True, exist_ok=True)
            mounts.append(f"mount --bind {source} {inside}")
        script = " && ".join([*mounts, 'exec chroot "$ROOT" "$@"'])
        environment = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8", "HOME": "/root", "DEBIAN_FRONTEND": "noninteractive",
            "ROOT": str(self.path), **(env or {}),
        }
        result = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *args],
            capture_output=True, text=True, timeout=timeout, env=environment, check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)} exited {result.returncode}\n{result.stdout[-3000:]}\n"
                f"{result.stderr[-3000:]}"
            )
        return result

    def file(self, path: str) -> Path:
        return self.path / path.lstrip("/")

    def remove(self) -> None:
        if self.on_tmpfs:
            subprocess.run(["umount", "--lazy", str(self.path)], check=False, timeout=60)
        shutil.rmtree(self.path, ignore_errors=True)


def deb_field(deb: Path, field: str) -> str:
    return subprocess.run(["dpkg-deb", "--field", str(deb), field], capture_output=True, text=True,
                          check=True, timeout=60).stdout.strip()


def depends_names(deb: Path) -> list[str]:
    """The package names in the .deb's Depends (first of each alternative, versions dropped)."""
    names = []
    for clause in deb_field(deb, "Depends").split(","):
        first = clause.split("|")[0].strip()
        if first:
            names.append(first.split()[0].split(":")[0])
    return names

"""The deployment check tools (ansible-core, ansible-lint, hadolint, check-jsonschema) in a venv
of their own, cached outside the repository.

They are pinned with hashes in ansible/requirements-dev.txt but kept out of the project's venv
and uv.lock: ansible-lint alone brings about 60 packages that no part of reautod imports, and
every engineer's `make venv` would carry them. The venv is made on Debian's /usr/bin/python3.11
so the same venv also runs inside the Debian 12 test chroots (bind-mounted at the same path). It
is created once per version of the requirements file (~20 s from uv's cache) and reused.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.packaging.debroot import cache_dir

REPO_ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = REPO_ROOT / "ansible" / "requirements-dev.txt"
PYTHON = Path("/usr/bin/python3.11")


def find_uv() -> str | None:
    return shutil.which("uv") or next(
        (str(p) for p in [Path.home() / ".local" / "bin" / "uv"] if p.exists()), None)


def deploy_tools() -> Path:
    """The tools venv's bin directory, created if needed; skips when it cannot be made here."""
    uv = find_uv()
    if uv is None or not PYTHON.exists():
        pytest.skip("the deployment tools need uv and Debian's /usr/bin/python3.11")
    key = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:12]
    venv = cache_dir() / "tools" / f"deploy-{key}"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (venv / ".complete").exists():
            shutil.rmtree(venv, ignore_errors=True)
            env = {**os.environ, "VIRTUAL_ENV": str(venv)}
            for args in ([uv, "venv", "-q", "--python", str(PYTHON), str(venv)],
                         [uv, "pip", "install", "-q", "--require-hashes", "-r", str(REQUIREMENTS)]):
                result = subprocess.run(args, env=env, capture_output=True, text=True,
                                        timeout=900, check=False)
                if result.returncode != 0:
                    raise AssertionError(f"{' '.join(args)} failed: {result.stderr[-3000:]}")
            (venv / ".complete").touch()
    return venv / "bin"

"""Suite-wide set-up: fixture plugins, and an isolated environment for every test."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["tests.fixtures.services", "tests.fixtures.daemon", "tests.fixtures.models",
                  "tests.packaging.fixtures"]

# The longest modules, measured in full runs (`make test` prints the slowest tests), start first:
# with `--dist loadscope --no-loadscope-reorder` the workers take modules in collection order,
# so a long module left to the end would run alone while the others idle. The .deb's two users
# are apart: test_deb builds it (under a lock, 5 to 7 min on 2 cores) while the other workers go
# through the modules after it, so test_playbook waits for the build for a few minutes at most.
# (A worker takes its next module when it has two tests or fewer left.)
SLOW_MODULES_FIRST = (
    "tests/packaging/test_deb.py",
    "tests/dialogue/test_phone_personas.py",
    "tests/conversation/test_phone_path.py",
    "tests/conversation/test_without_twilio.py",
    "tests/recovery/test_daemon_crash.py",
    "tests/ansible/test_playbook.py",
    "tests/api/test_admin_schema.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Move the modules of SLOW_MODULES_FIRST to the front, in that order; the rest keep theirs."""
    rank = {path: index for index, path in enumerate(SLOW_MODULES_FIRST)}
    last = len(rank)
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], last))

# Variables a developer's shell or a systemd unit may carry that would change what reautod reads.
# REAUTOD_TEST_* stay: they point the service fixtures at the test Postgres and Redis.
_LEAKY_VARS = ("STATE_DIRECTORY", "RUNTIME_DIRECTORY", "CREDENTIALS_DIRECTORY", "NOTIFY_SOCKET",
               "WATCHDOG_USEC", "WATCHDOG_PID", "INVOCATION_ID", "JOURNAL_STREAM")


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Keep every test away from the real home, state and runtime directories and the network."""
    for name in list(os.environ):
        ours = name.startswith("REAUTOD_") and not name.startswith("REAUTOD_TEST_")
        if ours or name in _LEAKY_VARS:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    # A Unix socket path must fit in 108 bytes, and tmp_path grows with the test's name, so the
    # runtime directory (where control.sock lives) is a short directory of its own.
    runtime = tempfile.mkdtemp(prefix="rt-", dir="/tmp")
    monkeypatch.setenv("XDG_RUNTIME_DIR", runtime)
    try:
        yield
    finally:
        shutil.rmtree(runtime, ignore_errors=True)

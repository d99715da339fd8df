from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from textual.pilot import Pilot

from tests.tui.fake_daemon import FakeDaemon


@pytest.fixture
def socket_path() -> Iterator[Path]:
    # Unix socket paths are limited to 108 bytes: keep it short and outside tmp_path.
    directory = Path(tempfile.mkdtemp(prefix="tui-", dir="/tmp"))
    yield directory / "control.sock"
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
async def daemon(socket_path: Path) -> AsyncIterator[FakeDaemon]:
    fake = FakeDaemon(socket_path)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


async def wait_until(
    pilot: Pilot[None], condition: Callable[[], bool], what: str, *, timeout_s: float = 30.0
) -> None:
    """Let the app run until `condition` holds; a generous bound (wall time: the suite shares two
    cores with daemons and models) so a broken app fails, not hangs."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        await pilot.pause(0.02)
    raise AssertionError(f"timed out waiting for: {what}")

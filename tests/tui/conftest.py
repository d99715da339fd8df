from __future__ import annotations

import shutil
import tempfile
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
    pilot: Pilot[None], condition: Callable[[], bool], what: str, *, tries: int = 500
) -> None:
    """Let the app run until `condition` holds; a generous bound so a broken app fails, not hangs."""
    for _ in range(tries):
        if condition():
            return
        await pilot.pause(0.02)
    raise AssertionError(f"timed out waiting for: {what}")

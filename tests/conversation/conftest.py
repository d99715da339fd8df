"""One reautod subprocess on the real small models for the conversation tests of a module, and
what they need around it: where its media WebSocket is, and the turns its store kept."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from reautod.config import DatabaseSettings
from reautod.engines.stt import WhisperSTT
from reautod.store.database import Database
from reautod.store.models import Call, Turn
from tests.fixtures.daemon import DaemonProcess

# Short replies keep the tests lean: the agent's audio plays in real time whatever the caller's
# speed, and SmolLM2 ignores the prompt's "one or two short sentences".
REPLY_TOKENS = 12


def daemon_config(workdir: Path, runtime: str, models_dir: Path, extra: str = "") -> str:
    return (
        f'state_dir = "{workdir / "state"}"\n'
        f'runtime_dir = "{runtime}"\n'
        "shutdown_grace_s = 5\n"
        "[http]\nport = 0\n[metrics]\nport = 0\n"
        f'[models]\ndir = "{models_dir}"\nprofile = "small"\ndevice = "cpu"\n'
        # a 19 s clip on a busy CI box can take longer to transcribe than the 5 s default
        # greedy replies: what the round trip measures is the same text on every run
        f"[engines]\nllm_max_tokens = {REPLY_TOKENS}\nllm_temperature = 0\nstt_timeout_s = 30\n"
        # a short greeting: it plays in real time before every call's first line
        '[agent]\ngreeting = "Hi {lead_name}, this is {agent_name}. Do you have a minute?"\n'
        # a slow reply on a busy box must not look like the caller going quiet
        "[calls]\nreprompt_after_silence_s = 60\nhangup_after_silence_s = 120\n"
    ) + extra


@pytest.fixture(scope="module")
def small_daemon(small_models_dir: Path, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[DaemonProcess]:
    """reautod on the small models (SQLite store), ready; stopped after the module's tests."""
    yield from running_daemon(small_models_dir, tmp_path_factory)


def running_daemon(models_dir: Path, tmp_path_factory: pytest.TempPathFactory,
                   extra_config: str = "") -> Iterator[DaemonProcess]:
    """A ready reautod on the small models in `models_dir`, with `extra_config` (TOML tables)
    after the tests' own; stopped when the generator is closed."""
    workdir = tmp_path_factory.mktemp("conversation")
    runtime = tempfile.mkdtemp(prefix="rt-", dir="/tmp")  # the socket path must stay short
    daemon = DaemonProcess(workdir, daemon_config(workdir, runtime, models_dir, extra_config),
                           env={"HF_HUB_OFFLINE": "1"})
    for name in [n for n in daemon.env if n.startswith("REAUTOD_")]:
        del daemon.env[name]  # a developer's shell must not reconfigure it
    daemon.start()
    try:
        daemon.wait_ready(timeout=240)
        yield daemon
    finally:
        daemon.stop()
        shutil.rmtree(runtime, ignore_errors=True)


def media_url(daemon: DaemonProcess) -> str:
    status = daemon.ctl("--json", "status")
    assert status.returncode == 0, status.stderr
    return f"ws://127.0.0.1:{json.loads(status.stdout)['http_port']}/twilio/media"


@dataclass(frozen=True)
class StoredTurn:
    seq: int
    speaker: str
    text: str
    interrupted: bool
    started_at: datetime


async def stored_turns(daemon: DaemonProcess, stream_sid: str, timeout_s: float = 60.0
                       ) -> list[StoredTurn]:
    """The call's turns as the store has them, once the call's end is written (the write-behind
    queue keeps order, so the turns before it are in too)."""
    db = Database(f"sqlite+aiosqlite:///{daemon.workdir / 'state' / 'reautod.db'}",
                  DatabaseSettings())
    await db.open()
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            async with AsyncSession(db.engine) as session:
                call = (await session.execute(
                    select(Call).where(Call.stream_sid == stream_sid))).scalar_one_or_none()
                if call is not None and call.ended_at is not None:
                    rows = (await session.execute(
                        select(Turn).where(Turn.call_id == call.id).order_by(Turn.seq))).scalars()
                    return [StoredTurn(t.seq, t.speaker, t.text, t.interrupted, t.started_at)
                            for t in rows]
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"call {stream_sid} not stored as ended in {timeout_s}s; "
                                     f"log: {daemon.log()[-3000:]}")
            await asyncio.sleep(0.25)
    finally:
        await db.close()


@pytest.fixture(scope="module")
def judge_stt(small_models_dir: Path) -> Iterator[WhisperSTT]:
    """The same tiny.en, in the test process, to transcribe what the phone heard."""
    stt = WhisperSTT.load(small_models_dir / "faster-whisper-tiny.en", device="cpu",
                          queue_size=4, timeout_s=60.0, warm_up=False)
    yield stt
    asyncio.run(stt.close())


"""kill -9 with live calls, measured: a reautod subprocess (test models, the embedded SQLite
store, Twilio configured against the local stand-in), `calls` simulated phone calls on it, the
daemon killed with SIGKILL once each call has had three turns (greeting, a caller turn, a
reply), and started again on the same port and state; each phone, playing Twilio, requests its
`<Connect action>` URL until the new daemon answers, and talks on on the stream it gets.

Shared by tests/recovery/test_daemon_crash.py (one call) and bench/bench_faults.py (five).
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text
from twilio.request_validator import RequestValidator

from reautod.recovery.checkpoint import DirectoryCheckpoints
from reautod.store.call_observer import call_uuid
from reautod.store.database import Database
from reautod.telephony.sim_resume import ActionOptions, ResumedCallResult, run_call_resuming
from reautod.telephony.simulator import CallOptions, Hangup, Pause, Utterance, WaitForAgent
from reautod.telephony.stream import Direction, StreamParameters
from tests.fixtures.daemon import DaemonProcess, wait_until
from tests.fixtures.services import free_port
from tests.speech import SPEECH_DIR
from tests.store.conftest import TEST_DB_SETTINGS
from tests.telephony.twilio_standin import TwilioStandIn

ACCOUNT = "AC" + "3" * 32
TOKEN = "crash-auth-token"
LEAD_AUDIO = SPEECH_DIR / "dg_testing-websocket_8k_mulaw.wav"
RESUME_LINE_START = "Sorry, we got cut off."

MakeDaemon = Callable[[str, dict[str, str], str], DaemonProcess]


@dataclass
class CrashRun:
    """What one kill -9 did to its calls."""

    call_ids: list[str]
    before: dict[str, set[int]]  # turn indexes each call had finished at the kill
    results: list[ResumedCallResult | BaseException]
    calls: list[tuple[Any, ...]] = field(default_factory=list)  # (id, status, error_code)
    turns: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)  # (seq, speaker, text)
    second: DaemonProcess | None = None

    @property
    def resumed(self) -> int:
        return sum(1 for r in self.results if isinstance(r, ResumedCallResult) and r.resumed)

    @property
    def turns_before(self) -> int:
        return sum(len(b) for b in self.before.values())

    @property
    def turns_lost(self) -> int:
        return sum(len(self.before[c] - {t[0] for t in self.turns.get(c, [])})
                   for c in self.call_ids)

    @property
    def resume_s(self) -> list[float]:
        return [r.reconnect_s[0] for r in self.results
                if isinstance(r, ResumedCallResult) and r.reconnect_s]


def config(state: Path, port: int, models_dir: Path, standin: TwilioStandIn) -> str:
    return (
        f'state_dir = "{state}"\nshutdown_grace_s = 2\n'
        f'[http]\nport = {port}\npublic_base_url = "http://127.0.0.1:{port}"\n'
        "[metrics]\nport = 0\n"
        f'[models]\ndir = "{models_dir}"\nprofile = "test"\ndevice = "cpu"\n'
        "[calls]\nreprompt_after_silence_s = 60\nhangup_after_silence_s = 120\n"
        f'[twilio]\naccount_sid = "{ACCOUNT}"\nfrom_number = "+15005550006"\n'
        f'api_base_url = "{standin.base_url}"\n'
    )


async def stored(db_path: Path, call_ids: list[str]
                 ) -> tuple[list[tuple[Any, ...]], dict[str, list[tuple[Any, ...]]]]:
    db = Database(f"sqlite+aiosqlite:///{db_path}", TEST_DB_SETTINGS)
    await db.open()
    try:
        async with db.engine.connect() as conn:
            calls = (await conn.execute(text("SELECT id, status, error_code FROM calls"))).all()
            turns = {c: [tuple(t) for t in (await conn.execute(text(
                "SELECT seq, speaker, text FROM turns WHERE call_id = :c ORDER BY seq"),
                {"c": call_uuid(c).hex})).all()] for c in call_ids}
        return [tuple(c) for c in calls], turns
    finally:
        await db.close()


def kill_9_mid_calls(workdir: Path, models_dir: Path, make_daemon: MakeDaemon, *,
                     calls: int = 1) -> CrashRun:
    """Run the scenario of the module docstring; the daemons are `make_daemon`'s to stop."""
    hello = Utterance.from_file(LEAD_AUDIO)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    state = workdir / "state"
    call_ids = [uuid.uuid4().hex for _ in range(calls)]
    ws_url = f"ws://127.0.0.1:{port}/twilio/media"
    signature = RequestValidator(TOKEN).compute_signature(ws_url, {})
    env = {"REAUTOD_SECRET_TWILIO_AUTH_TOKEN": TOKEN}
    with TwilioStandIn(ACCOUNT, TOKEN) as standin:
        toml = config(state, port, models_dir, standin)
        first = make_daemon(toml, env, "first")
        first.start()
        first.wait_ready(timeout=240)
        results: list[ResumedCallResult | BaseException] = []

        async def one(call_id: str) -> ResumedCallResult:
            params = StreamParameters(call_id=call_id, lead_name="Ann", campaign="crash",
                                      direction=Direction.OUTBOUND).custom_parameters()
            return await run_call_resuming(
                CallOptions(url=ws_url, custom_parameters=params, account_sid=ACCOUNT,
                            record_audio=False, headers={"X-Twilio-Signature": signature}),
                # greeting, a turn, its reply; then silence until the daemon dies
                [WaitForAgent(timeout_s=90), hello, WaitForAgent(timeout_s=90), Pause(300)],
                ActionOptions(url=f"{base}/twilio/stream-ended", auth_token=TOKEN,
                              timeout_s=300),
                then=[WaitForAgent(timeout_s=90), hello, WaitForAgent(timeout_s=90), Hangup()])

        async def phones() -> None:
            done = await asyncio.gather(*(one(c) for c in call_ids), return_exceptions=True)
            results.extend(done)

        caller = threading.Thread(target=lambda: asyncio.run(phones()), name="phones")
        caller.start()

        checkpoints = DirectoryCheckpoints(state / "checkpoints")

        def finished() -> dict[str, set[int]] | None:
            found = asyncio.run(checkpoints.all())
            by_call = {c.call_id: {s.index for s in c.transcript} for c in found}
            ready = all(len(by_call.get(c, ())) >= 3 for c in call_ids)
            return by_call if ready else None

        before = wait_until("three turns in every call", finished, timeout=300)
        time.sleep(0.15)
        first.signal(signal.SIGKILL)
        first.wait(30)

        second = make_daemon(toml, env, "second")
        second.start()
        second.wait_ready(timeout=240)
        caller.join(timeout=600)
        run = CrashRun(call_ids, {c: before[c] for c in call_ids}, results, second=second)

        def all_done() -> bool:
            run.calls, run.turns = asyncio.run(stored(state / "reautod.db", call_ids))
            return len(run.calls) == calls and all(c[1] != "in_progress" for c in run.calls)

        wait_until("every call ended", all_done, timeout=60)
    return run

"""kill -9 mid-call: the call survives the daemon.

A real reautod (test models, the embedded SQLite store, Twilio configured against the local
stand-in so its webhooks are served and signed), the simulator as Twilio on the media stream.
After the agent's first reply the daemon is killed with SIGKILL and started again on the same
port and state; the simulator, playing Twilio, requests the `<Connect action>` URL until the new
daemon answers with a resuming stream, opens it, hears the resume line and talks on. The store
then holds the call once, its turns from before and after the crash in one numbering, every
turn finished before the kill among them, and the call completed (not closed as interrupted).
"""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from twilio.request_validator import RequestValidator

from reautod.recovery.checkpoint import DirectoryCheckpoints
from reautod.store.call_observer import call_uuid
from reautod.store.database import Database
from reautod.telephony.sim_resume import ActionOptions, ResumedCallResult, run_call_resuming
from reautod.telephony.simulator import CallOptions, Hangup, Pause, Utterance, WaitForAgent
from reautod.telephony.stream import Direction, StreamParameters
from tests.fixtures.daemon import wait_until
from tests.fixtures.services import free_port
from tests.speech import SPEECH_DIR
from tests.store.conftest import TEST_DB_SETTINGS
from tests.telephony.twilio_standin import TwilioStandIn

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]

ACCOUNT = "AC" + "3" * 32
TOKEN = "crash-auth-token"


async def stored(db_path: Path, call_id: str) -> tuple[list[tuple[Any, ...]], list[Any]]:
    db = Database(f"sqlite+aiosqlite:///{db_path}", TEST_DB_SETTINGS)
    await db.open()
    try:
        async with db.engine.connect() as conn:
            calls = (await conn.execute(text(
                "SELECT id, status, error_code FROM calls"))).all()
            turns = (await conn.execute(text(
                "SELECT seq, speaker, text FROM turns WHERE call_id = :c ORDER BY seq"),
                {"c": call_uuid(call_id).hex})).all()
        return [tuple(c) for c in calls], [tuple(t) for t in turns]
    finally:
        await db.close()


def test_kill_9_mid_call_resumes_on_a_new_stream(daemon_factory: Any, test_models_dir: Path,
                                                 tmp_path: Path) -> None:
    lead = SPEECH_DIR / "dg_testing-websocket_8k_mulaw.wav"
    if not lead.exists():
        pytest.skip(f"speech fixture {lead} not present")
    hello = Utterance.from_file(lead)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    state = tmp_path / "state"
    call_id, call_sid = uuid.uuid4().hex, "CA" + uuid.uuid4().hex
    with TwilioStandIn(ACCOUNT, TOKEN) as standin:
        config = (
            f'state_dir = "{state}"\nshutdown_grace_s = 2\n'
            f'[http]\nport = {port}\npublic_base_url = "{base}"\n[metrics]\nport = 0\n'
            f'[models]\ndir = "{test_models_dir}"\nprofile = "test"\ndevice = "cpu"\n'
            "[calls]\nreprompt_after_silence_s = 60\nhangup_after_silence_s = 120\n"
            f'[twilio]\naccount_sid = "{ACCOUNT}"\nfrom_number = "+15005550006"\n'
            f'api_base_url = "{standin.base_url}"\n'
        )
        env = {"REAUTOD_SECRET_TWILIO_AUTH_TOKEN": TOKEN}
        first = daemon_factory(config, env=env, name="first")
        first.start()
        first.wait_ready(timeout=240)

        ws_url = f"ws://127.0.0.1:{port}/twilio/media"
        params = StreamParameters(call_id=call_id, lead_name="Ann", campaign="crash",
                                  direction=Direction.OUTBOUND).custom_parameters()
        options = CallOptions(url=ws_url, custom_parameters=params, call_sid=call_sid,
                              account_sid=ACCOUNT, record_audio=False, headers={
                                  "X-Twilio-Signature":
                                      RequestValidator(TOKEN).compute_signature(ws_url, {})})
        outcome: list[ResumedCallResult | BaseException] = []

        def phone() -> None:
            try:
                outcome.append(asyncio.run(run_call_resuming(
                    options,
                    # greeting, a turn, its reply; then silence until the daemon dies
                    [WaitForAgent(timeout_s=90), hello, WaitForAgent(timeout_s=90), Pause(300)],
                    ActionOptions(url=f"{base}/twilio/stream-ended", auth_token=TOKEN,
                                  timeout_s=300),
                    then=[WaitForAgent(timeout_s=90), hello, WaitForAgent(timeout_s=90),
                          Hangup()])))
            except BaseException as err:  # surfaced in the test thread
                outcome.append(err)

        caller = threading.Thread(target=phone, name="phone")
        caller.start()

        # Three turns finished (greeting, caller, reply): kill -9 a moment after the last.
        checkpoints = DirectoryCheckpoints(state / "checkpoints")

        def turns_checkpointed() -> int:
            found = asyncio.run(checkpoints.load(call_id))
            return len(found.transcript) if found is not None and \
                len(found.transcript) >= 3 else 0

        finished = wait_until("three turns", turns_checkpointed, timeout=240)
        time.sleep(0.15)
        first.signal(signal.SIGKILL)
        first.wait(30)

        second = daemon_factory(config, env=env, name="second")
        second.start()
        second.wait_ready(timeout=240)
        caller.join(timeout=400)
        assert outcome, "the simulated phone did not finish"
        result = outcome[0]
        if isinstance(result, BaseException):
            raise result

        assert result.resumed == 1, (result.answers, second.log()[-3000:])
        assert "<Connect" in result.answers[0] and 'name="resume" value="1"' in result.answers[0]
        assert result.legs[1].agent_bytes_received > 0  # the resume line was heard

        listed = second.ctl("--json", "call", "recover")
        assert listed.returncode == 0, listed.stderr
        assert json.loads(listed.stdout)["calls"] == []  # resumed and then ended: none left

        def call_done() -> Any:
            calls, turns = asyncio.run(stored(state / "reautod.db", call_id))
            return (calls, turns) if calls and calls[0][1] == "completed" else None

        calls, turns = wait_until("the call completed", call_done, timeout=60)
        assert len(calls) == 1 and calls[0][2] is None, calls  # not closed as interrupted
        seqs = [t[0] for t in turns]
        assert seqs == sorted(set(seqs)), turns  # one numbering, nothing overwritten
        assert len(turns) >= finished + 2, turns  # before the kill, then resume line + reply
        resume_turns = [t for t in turns if t[1] == "agent" and t[2].startswith(
            "Sorry, we got cut off.")]
        assert len(resume_turns) == 1 and resume_turns[0][0] > finished, turns
        assert seqs[:finished] == list(range(1, finished + 1))  # none lost before the kill

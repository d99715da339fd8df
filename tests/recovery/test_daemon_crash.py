"""kill -9 mid-call: the call survives the daemon (the scenario: tests/recovery/crash_rig.py).

The simulator, playing Twilio, gets a resuming stream from the restarted daemon and hears the
resume line; the store then holds the call once, its turns from before and after the crash in
one numbering, every turn finished before the kill among them, and the call completed (not
closed as interrupted); nothing is left for `reautoctl call recover`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reautod.telephony.sim_resume import ResumedCallResult
from tests.recovery.crash_rig import LEAD_AUDIO, RESUME_LINE_START, kill_9_mid_calls

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]


def test_kill_9_mid_call_resumes_on_a_new_stream(daemon_factory: Any, test_models_dir: Path,
                                                 tmp_path: Path) -> None:
    if not LEAD_AUDIO.exists():
        pytest.skip(f"speech fixture {LEAD_AUDIO} not present")
    run = kill_9_mid_calls(
        tmp_path, test_models_dir,
        lambda toml, env, name: daemon_factory(toml, env=env, name=name))
    (result,) = run.results
    if isinstance(result, BaseException):
        raise result
    assert isinstance(result, ResumedCallResult)
    second = run.second
    assert second is not None
    assert result.resumed == 1, (result.answers, second.log()[-3000:])
    assert "<Connect" in result.answers[0] and 'name="resume" value="1"' in result.answers[0]
    assert result.legs[1].agent_bytes_received > 0  # the resume line was heard

    listed = second.ctl("--json", "call", "recover")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["calls"] == []  # resumed and then ended: none left

    (call_id,) = run.call_ids
    (call,) = run.calls
    assert call[1] == "completed" and call[2] is None, call  # not closed as interrupted
    turns = run.turns[call_id]
    seqs = [t[0] for t in turns]
    finished = max(run.before[call_id])
    assert run.turns_lost == 0, (run.before, turns)  # nothing finished before the kill is lost
    assert seqs == sorted(set(seqs)) and seqs[:finished] == list(range(1, finished + 1)), turns
    resume_turns = [t for t in turns if t[1] == "agent" and t[2].startswith(RESUME_LINE_START)]
    assert len(resume_turns) == 1 and resume_turns[0][0] > finished, turns
    assert len(turns) >= finished + 3, turns  # the resume line, the caller, the reply

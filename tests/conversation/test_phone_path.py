"""Real conversations on the real small models, through the whole phone path: the Twilio
simulator -> the daemon's media WebSocket -> the pipeline (VAD, Smart Turn, STT, LLM, TTS) ->
the store. Words are asserted here (the random-weight models could not pass), as WER with the
normalisation stated in tests/wer.py.

- What the caller said comes back as the stored caller turns: total WER over the reference clips
  at most 5 points above the same model transcribing the same mu-law clips offline, measured in
  the same test (offline 3.0 %, 6 errors in 201 words; through the phone path 4.5 % to 6.5 % on
  this 2-core box: turns end at the speaker's pauses, and Whisper hears each piece without the
  words around it). A lost or cut-off clip costs more than the margin.
- What the agent said is English text, and its audio as the phone received it, transcribed again
  by the same tiny.en, matches the stored text: round-trip WER <= 10 %.
- `reautoctl call simulate` without audio files: the lead's lines are spoken by the real voice and
  come back as the caller's turns.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from reautod.engines.stt import WhisperSTT
from reautod.pipeline.control import GENERATED_LEAD_LINES
from reautod.telephony.sim_script import Step, Utterance
from reautod.telephony.simulator import CallOptions, CallResult, Hangup, WaitForAgent, run_call
from tests.conversation.conftest import StoredTurn, media_url, stored_turns
from tests.fixtures.daemon import DaemonProcess
from tests.speech import AgentLine, agent_spurts, phone_audio_16k, reference_clips, round_trip
from tests.wer import looks_english, word_errors

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

# How many WER points the phone path (VAD, turn-taking, 8 kHz pieces) may add to offline STT.
PHONE_PATH_WER_MARGIN = 0.05
SPEED = 2.0  # the caller's side at twice real time (the agent's audio still plays in real time)
# Patient enough for a busy box, where a reply's next sentence can come a second late.
WAIT = WaitForAgent(quiet_ms=1500, timeout_s=120)


@dataclass(frozen=True)
class Conversation:
    result: CallResult
    turns: list[StoredTurn]
    connected_at: datetime

    def texts(self, speaker: str) -> list[str]:
        return [t.text for t in self.turns if t.speaker == speaker]

    def agent_spurts(self) -> list[tuple[str, bytes]]:
        """The agent's lines that played out whole with the audio the phone received."""
        return agent_spurts(self.result, [
            AgentLine((t.started_at - self.connected_at).total_seconds() * SPEED, t.text,
                      t.interrupted) for t in self.turns if t.speaker == "agent"])


async def converse(daemon: DaemonProcess, utterances: list[Utterance]) -> Conversation:
    """Greeting, then each utterance answered by the agent, then hang up; as stored."""
    url = await asyncio.to_thread(media_url, daemon)
    steps: list[Step] = [WAIT]
    for utterance in utterances:
        steps += [utterance, WAIT]
    steps.append(Hangup())
    connected_at = datetime.now(UTC)
    result = await run_call(
        CallOptions(url=url, speed=SPEED, custom_parameters={
            "lead_name": "Jordan", "campaign": "simulate", "direction": "outbound"}),
        steps)
    assert not result.timeouts, result.timeouts
    return Conversation(result, await stored_turns(daemon, result.stream_sid), connected_at)


async def test_reference_clips_come_back_as_caller_turns_and_replies_round_trip(
    small_daemon: DaemonProcess, judge_stt: WhisperSTT
) -> None:
    clips = reference_clips()
    if not clips:
        pytest.skip("no reference clips in ../shared/data/speech")
    utterances = await asyncio.to_thread(lambda: [clip.utterance() for clip in clips])
    call = await converse(small_daemon, utterances)

    said = " ".join(c.text for c in clips)
    heard = word_errors(said, " ".join(call.texts("caller")))
    offline = [await judge_stt.transcribe(phone_audio_16k(u.ulaw), call_id="offline")
               for u in utterances]
    alone = word_errors(said, " ".join(t.text for t in offline))
    assert heard.rate <= alone.rate + PHONE_PATH_WER_MARGIN, (
        f"caller WER {heard} (offline {alone}): {call.texts('caller')}")

    replies = call.agent_spurts()[1:]  # the first is the greeting
    assert len(replies) >= len(clips) // 2, call.turns  # most replies played out whole
    assert all(text.strip() for text, _ in replies)
    assert looks_english(" ".join(text for text, _ in replies)), replies
    spoken = await round_trip(judge_stt, replies)
    assert spoken.words >= 30
    assert spoken.rate <= 0.10, f"round-trip WER {spoken}: {replies}"


def test_simulate_without_audio_files_speaks_the_leads_lines(small_daemon: DaemonProcess) -> None:
    out = small_daemon.ctl("--json", "call", "simulate", "--fast", timeout=600)
    assert out.returncode == 0, out.stderr + small_daemon.log()[-3000:]
    turns = json.loads(out.stdout)["turns"]
    callers = [t["text"] for t in turns if t["speaker"] == "caller"]
    errors = word_errors(" ".join(GENERATED_LEAD_LINES), " ".join(callers))
    assert errors.rate <= 0.10, f"{errors}: {callers}"
    # the replies that played out whole (a lead's next line may cut one before its first word)
    replies = [t["text"] for t in turns if t["speaker"] == "agent" and not t["interrupted"]][1:]
    assert replies and all(r.strip() for r in replies), turns
    assert looks_english(" ".join(replies)), replies


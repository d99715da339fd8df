"""Where the suite finds real speech: `../shared/data/speech` beside the repository (read in
place, never copied into the project), or `$REAUTOD_TEST_SPEECH_DIR`; and the reference clips
there (each `NAME.ref.txt` is what `NAME.wav` / `NAME.flac` says)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np
import numpy.typing as npt

from reautod.engines.base import SpeechToText
from reautod.telephony.audio import TELEPHONY_RATE, resample, ulaw_to_float
from reautod.telephony.sim_result import CallResult
from reautod.telephony.sim_script import Utterance
from tests.wer import WordErrors, word_errors

SPEECH_DIR = Path(
    os.environ.get("REAUTOD_TEST_SPEECH_DIR")
    or Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "speech"
)
STT_RATE = 16_000


@dataclass(frozen=True)
class ReferenceClip:
    """A recording and the words it says."""

    name: str
    audio: Path
    text: str

    def utterance(self) -> Utterance:
        """As the phone sends it: 8 kHz mu-law (blocking: reads and resamples the file)."""
        return Utterance.from_file(self.audio, label=self.name)


def reference_clips(directory: Path = SPEECH_DIR) -> list[ReferenceClip]:
    """Every clip with a reference transcript, by name; empty when the directory is absent."""
    clips = []
    for ref in sorted(directory.glob("*.ref.txt")):
        name = ref.name.removesuffix(".ref.txt")
        audio = [p for p in (directory / f"{name}.wav", directory / f"{name}.flac") if p.exists()]
        if audio:
            clips.append(ReferenceClip(name, audio[0], ref.read_text().strip()))
    return clips


def phone_audio_16k(ulaw: bytes) -> npt.NDArray[np.float32]:
    """8 kHz mu-law (what crosses the phone line) as the 16 kHz float audio STT takes."""
    return resample(ulaw_to_float(ulaw), TELEPHONY_RATE, STT_RATE).astype(np.float32)


@dataclass(frozen=True)
class AgentLine:
    """One agent turn as the pipeline recorded it, placed on the simulator's call clock."""

    at: float  # call-clock seconds since the stream connected
    text: str
    interrupted: bool


def agent_spurts(result: CallResult, lines: Sequence[AgentLine]) -> list[tuple[str, bytes]]:
    """What the agent said between two caller utterances (the first: before the first one) and
    the mu-law audio the phone received meanwhile; only where every line played out whole."""
    bounds = [0.0]
    for utterance in result.utterances:
        bounds += [utterance.started_at, utterance.ended_at]
    bounds.append(float("inf"))
    gaps = list(pairwise(bounds))[::2]  # (0, 1st start), (1st end, 2nd start), ..., (end, inf)
    arrivals = []
    offset = 0
    for media in result.agent_media:
        arrivals.append((media.at, offset, offset + media.nbytes))
        offset += media.nbytes
    spurts = []
    for start, end in gaps:
        said = [line for line in lines if start <= line.at < end]
        if not said or any(line.interrupted for line in said):
            continue
        audio = b"".join(result.agent_audio_received[a:b] for at, a, b in arrivals
                         if start <= at < end)
        spurts.append((" ".join(line.text for line in said), audio))
    return spurts


async def round_trip(stt: SpeechToText, spurts: Sequence[tuple[str, bytes]]) -> WordErrors:
    """How far what the phone received is from the text it was made from, heard by `stt`."""
    total = WordErrors()
    for text, ulaw in spurts:
        heard = await stt.transcribe(phone_audio_16k(ulaw), call_id="judge")
        total += word_errors(text, heard.text)
    return total

"""Where the suite finds real speech: `../shared/data/speech` beside the repository (read in
place, never copied into the project), or `$REAUTOD_TEST_SPEECH_DIR`; and the reference clips
there (each `NAME.ref.txt` is what `NAME.wav` / `NAME.flac` says)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from reautod.telephony.audio import TELEPHONY_RATE, resample, ulaw_to_float
from reautod.telephony.sim_script import Utterance

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

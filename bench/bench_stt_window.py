"""The STT's encoder window fitted to the turn against Whisper's own 30 s, on the real tiny.en.

Every turn is transcribed both ways by the same engine in the same run (`WhisperSTT._decode`:
the fitted window, decoded again over 30 s when the transcript looks looped; and
`WhisperSTT._decode_full`: faster-whisper over 30 s, what it did before), after the phone line's
8 kHz mu-law round trip: the lead's lines of a call (spoken by the engines' Piper voice) and the
reference clips of ../shared/data/speech. Prints the latency percentiles of each, their ratio,
the WER of each against the words said, and how many fitted transcripts looked looped.

    PYTHONPATH=. .venv/bin/python bench/bench_stt_window.py [--models-dir DIR] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests' speech helpers

from bench_engines import pct

from reautod.config import Settings
from reautod.engines.catalog import models_cache_dir
from reautod.engines.pull import pull_profile
from reautod.engines.registry import EngineSet
from reautod.engines.stt import WhisperSTT
from reautod.telephony.audio import float_to_ulaw, resample
from tests.speech import phone_audio_16k, reference_clips
from tests.wer import word_errors

LEAD_LINES = [
    "Hi, yes, I have a minute.", "How much does it cost?", "Okay, thanks. Bye.", "Yes.",
    "No thanks.", "Okay.", "Sure, go ahead.", "Who is this?", "I'm not interested.",
    "Yes, I'm the owner.", "The first one works for me.", "Yes, please book it.",
    "Stop calling me.", "Yeah, that sounds good.", "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.", "It's easy to tell the depth of a well.",
]
EDGE_S = 0.3  # the quiet the pipeline keeps around a turn (its pre-roll, the VAD's stop)

Turn = tuple[str, npt.NDArray[np.float32]]


async def spoken(engines: EngineSet) -> list[Turn]:
    """The lead's lines in the engines' voice, and the reference clips, after the phone line."""
    turns: list[Turn] = []
    for text in LEAD_LINES:
        chunks = [c async for c in engines.tts.synthesize(text, call_id="bench")]
        pcm = np.frombuffer(b"".join(c.pcm for c in chunks), np.int16).astype(np.float32)
        ulaw = float_to_ulaw(resample(pcm / 32768.0, chunks[0].sample_rate, 8000))
        turns.append((text, phone_audio_16k(ulaw)))
    for clip in reference_clips():
        utterance = await asyncio.to_thread(clip.utterance)
        turns.append((clip.text, phone_audio_16k(utterance.ulaw)))
    edge = np.zeros(int(EDGE_S * 16_000), np.float32)
    return [(text, np.concatenate([edge, audio, edge])) for text, audio in turns]


def measure(stt: WhisperSTT, turns: list[Turn], rounds: int) -> None:
    ways = {"fitted window": stt._decode, "30 s window": stt._decode_full}
    times: dict[str, list[float]] = {way: [] for way in ways}
    heard: dict[str, list[str]] = {way: [] for way in ways}
    for r in range(rounds):
        for _text, audio in turns:
            for way, decode in ways.items():
                started = time.perf_counter()
                transcript = decode(audio, None)
                times[way].append(time.perf_counter() - started)
                if r == 0:
                    heard[way].append(transcript.text)
    said = " ".join(text for text, _ in turns)
    print(f"tiny.en, {len(turns)} turns ({len(LEAD_LINES)} lead lines in the Piper voice, "
          f"{len(turns) - len(LEAD_LINES)} reference clips) after mu-law, x{rounds}; ms per turn")
    for way in ways:
        t = times[way]
        print(f"  {way:14s} p50 {pct(t, 50) * 1000:6.0f}  p95 {pct(t, 95) * 1000:6.0f}  "
              f"max {max(t) * 1000:6.0f}  WER {word_errors(said, ' '.join(heard[way]))}")
    print(f"  ratio fitted / 30 s: p50 {pct(times['fitted window'], 50) / pct(times['30 s window'], 50):.2f}x"
          f"  p95 {pct(times['fitted window'], 95) / pct(times['30 s window'], 95):.2f}x")
    print(f"  fitted transcripts that looked looped (decoded again over 30 s): "
          f"{stt.looped_windows} of {stt.looped_windows + stt.windowed_decodes}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=None,
                        help="a models directory holding the small profile (default: the "
                             "per-user cache, pulled if needed)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    models_dir = args.models_dir or models_cache_dir(os.environ)
    if args.models_dir is None:
        await asyncio.to_thread(pull_profile, models_dir, "small")
    settings = Settings(models={"dir": str(models_dir), "profile": "small", "device": "cpu"})
    engines = await EngineSet.load(settings)
    engines.require_ready()
    try:
        turns = await spoken(engines)
        assert isinstance(engines.stt, WhisperSTT)
        await asyncio.to_thread(measure, engines.stt, turns, args.rounds)
    finally:
        await engines.close()


if __name__ == "__main__":
    asyncio.run(main())

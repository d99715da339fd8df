"""Voice quality on the real small models (seed FR-007.4), printed as tables.

1. Hearing: every reference clip in ../shared/data/speech (`NAME.ref.txt` says what it says),
   side by side: WER through the phone path (one call per clip: the Twilio simulator sends it as
   8 kHz mu-law over the media WebSocket; VAD, Smart Turn and STT cut and transcribe it; the
   caller turns the pipeline reports are the hypothesis) and offline with the same model (the
   clip after the same mu-law round trip, transcribed whole by the same engine). The difference
   is what the pipeline's segmentation costs; the target is at most 1 point in total.
2. Speaking: the TTS voice on typical agent lines: real-time factor (synthesis time / audio
   time), first-audio latency, clipping (samples at int16 full scale), silence ratio (20 ms frames
   under -40 dBFS), and round-trip WER (voice -> 8 kHz mu-law -> the same STT -> text).
3. The agent's replies in those calls, as the phone received them, transcribed again: round-trip
   WER against the text the agent generated.

WER and its text normalisation: tests/wer.py. Models: the `small` profile, pulled into the
per-user cache if needed (`reautoctl models pull --profile small`), or `--models-dir`.

    .venv/bin/python bench/bench_voice_quality.py [--models-dir DIR] [--speed 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests' speech helpers

from bench_pipeline_overhead import Collector, quiet_pipecat, serve

from reautod.config import Settings
from reautod.engines.catalog import models_cache_dir
from reautod.engines.pull import pull_profile
from reautod.engines.registry import EngineSet
from reautod.telephony.audio import float_to_ulaw, resample
from reautod.telephony.simulator import CallOptions, Hangup, WaitForAgent, run_call
from tests.speech import (
    AgentLine,
    ReferenceClip,
    agent_spurts,
    phone_audio_16k,
    reference_clips,
    round_trip,
)
from tests.wer import WordErrors, word_errors

SEGMENTATION_BUDGET = 0.01  # the phone path may add at most 1 point of WER over offline
REPLY_TOKENS = 24
AGENT_LINES = (
    "Hi Sam, this is Alex from Acme Solar. Do you have a minute?",
    "Thanks for taking my call.",
    "We install solar panels for homes in your area, and the first consultation is free.",
    "Would Tuesday afternoon or Thursday morning work better for you?",
    "I understand. I will make a note not to call you again.",
    "Great, you are booked for Thursday morning. Have a wonderful day!",
)
CLIP_LEVEL = 32767  # int16 full scale
SILENCE_DBFS = -40.0


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


async def offline_wer(engines: EngineSet, clip: ReferenceClip) -> tuple[WordErrors, str]:
    utterance = await asyncio.to_thread(clip.utterance)
    heard = await engines.stt.transcribe(phone_audio_16k(utterance.ulaw), call_id="offline")
    return word_errors(clip.text, heard.text), heard.text


async def phone_call(url: str, observer: Collector, clip: ReferenceClip, index: int, speed: float
                     ) -> tuple[WordErrors, str, list[tuple[str, bytes]]]:
    """One call: the greeting, the clip, the agent's answer. WER of the caller turns, and the
    agent's replies as text + the audio the phone received."""
    call_id = f"vq{index}"
    utterance = await asyncio.to_thread(clip.utterance)
    wait = WaitForAgent(quiet_ms=1500, timeout_s=120)
    connected = datetime.now(UTC)
    result = await run_call(
        CallOptions(url=url, speed=speed, record_audio=True,
                    custom_parameters={"call_id": call_id, "lead_name": "Sam"}),
        [wait, utterance, wait, Hangup()])
    turns = [t for t in observer.turns if t.call_id == call_id]
    heard = " ".join(t.text for t in turns if t.speaker == "caller")
    lines = [AgentLine((t.started_at - connected).total_seconds() * speed, t.text, t.interrupted)
             for t in turns if t.speaker == "agent"]
    return word_errors(clip.text, heard), heard, agent_spurts(result, lines)[1:]


async def hearing(engines: EngineSet, settings: Settings, speed: float
                  ) -> list[tuple[str, bytes]]:
    clips = reference_clips()
    if not clips:
        raise SystemExit("no reference clips in ../shared/data/speech")
    rows = []
    offline_total, phone_total = WordErrors(), WordErrors()
    heard_lines = []
    replies: list[tuple[str, bytes]] = []
    observer = Collector()
    async with serve(engines, settings, observer) as (url, _manager):
        for i, clip in enumerate(clips):
            offline, offline_text = await offline_wer(engines, clip)
            phone, phone_text, spurts = await phone_call(url, observer, clip, i, speed)
            replies += spurts
            offline_total += offline
            phone_total += phone
            rows.append([clip.name, str(offline.words), f"{offline.rate:.1%}",
                         f"{phone.rate:.1%}", f"{(phone.rate - offline.rate) * 100:+.1f}"])
            heard_lines.append(f"{clip.name}\n  offline: {offline_text}\n  phone:   {phone_text}")
    rows.append(["TOTAL", str(offline_total.words), f"{offline_total.rate:.1%}",
                 f"{phone_total.rate:.1%}", f"{(phone_total.rate - offline_total.rate) * 100:+.1f}"])
    print("Hearing: WER per reference clip, offline vs through the phone path (same tiny.en)\n")
    print(table(["clip", "words", "offline WER", "phone WER", "points"], rows))
    print(f"\noffline {offline_total}\nphone   {phone_total}")
    added = phone_total.rate - offline_total.rate
    verdict = "met" if added <= SEGMENTATION_BUDGET else "NOT met"
    print(f"segmentation adds {added * 100:+.1f} points (target <= +1.0): {verdict}\n")
    print("\n".join(heard_lines) + "\n")
    return replies


async def speaking(engines: EngineSet) -> None:
    rows = []
    rtfs, firsts = [], []
    total = WordErrors()
    for text in AGENT_LINES:
        started = time.perf_counter()
        first: float | None = None
        pcm = bytearray()
        rate = engines.tts.sample_rate
        async for chunk in engines.tts.synthesize(text, call_id="bench"):
            first = first if first is not None else time.perf_counter() - started
            pcm += chunk.pcm
            rate = chunk.sample_rate
        elapsed = time.perf_counter() - started
        samples = np.frombuffer(bytes(pcm), dtype=np.int16)
        seconds = samples.size / rate
        clipped = float(np.mean(np.abs(samples.astype(np.int32)) >= CLIP_LEVEL))
        frame = rate // 50
        frames = samples[: samples.size // frame * frame].astype(np.float64).reshape(-1, frame)
        rms = np.sqrt(np.mean(frames**2, axis=1)) / 32768.0
        silent = float(np.mean(20 * np.log10(np.maximum(rms, 1e-9)) < SILENCE_DBFS))
        phone = float_to_ulaw(resample(samples.astype(np.float32) / 32768.0, rate, 8000))
        heard = await engines.stt.transcribe(phone_audio_16k(phone), call_id="bench")
        errors = word_errors(text, heard.text)
        total += errors
        rtfs.append(elapsed / seconds)
        firsts.append(first or elapsed)
        rows.append([text[:44], f"{seconds:.2f}", f"{elapsed / seconds:.3f}",
                     f"{(first or elapsed) * 1000:.0f}", f"{clipped:.3%}", f"{silent:.0%}",
                     f"{errors.rate:.0%}"])
    print(f"Speaking: the TTS voice ({engines.tts.health().model}), sample rate "
          f"{engines.tts.sample_rate} Hz\n")
    print(table(["line", "audio s", "RTF", "1st audio ms", "clipped", "silence", "round trip"],
                rows))
    print(f"\nRTF median {np.median(rtfs):.3f}, first audio median {np.median(firsts) * 1000:.0f} "
          f"ms; round-trip WER {total}\n")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models-dir", type=Path,
                        help="a models directory holding the small profile (default: the "
                             "per-user cache, pulled if needed)")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="the caller's clock against the wall clock (2 halves the time)")
    args = parser.parse_args()
    quiet_pipecat()
    models_dir = args.models_dir or models_cache_dir(os.environ)
    if args.models_dir is None:
        await asyncio.to_thread(pull_profile, models_dir, "small")
    settings = Settings(
        models={"dir": str(models_dir), "profile": "small", "device": "cpu"},
        engines={"llm_max_tokens": REPLY_TOKENS, "stt_timeout_s": 60.0},
        calls={"reprompt_after_silence_s": 60.0, "hangup_after_silence_s": 120.0},
    )
    engines = await EngineSet.load(settings)
    engines.require_ready()
    try:
        replies = await hearing(engines, settings, args.speed)
        await speaking(engines)
        spoken = await round_trip(engines.stt, replies)
        print(f"Agent replies ({len(replies)} played out whole, up to {REPLY_TOKENS} tokens each) "
              f"as the phone received them, transcribed again: round-trip WER {spoken}")
    finally:
        await engines.close()


if __name__ == "__main__":
    asyncio.run(main())

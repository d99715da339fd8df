"""Per-engine latency of the shared engines, printed as percentiles.

By default it builds the random-weight test models in a temporary directory and measures them
on the CPU; `--models-dir DIR --profile gpu|cpu|test [--device cuda]` measures installed models.

    STT   wall time of one utterance (speech from ../shared/data/speech if present, else noise)
    LLM   first token (the prompt prefix is cached after the first run, as within a call), whole
          reply (--tokens), and tokens/s on the worker's clock
    TTS   first sentence audio of a typical agent reply, and real-time factor
    queue queue wait with 4 callers at once on one STT worker
    sched the scheduler's own cost: a no-op job through it vs `asyncio.to_thread` (ratio)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from reautod.config import Settings
from reautod.engines import EngineSet
from reautod.engines.base import ChatMessage
from reautod.engines.catalog import build_test_models
from reautod.engines.scheduler import EngineScheduler

SPEECH_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "speech"
CHAT = [
    ChatMessage("system", "You are Alex, a friendly phone agent for Acme Solar. Keep replies "
                "to one or two short sentences."),
    ChatMessage("assistant", "Hi Sam, this is Alex from Acme Solar. Do you have a minute?"),
    ChatMessage("user", "Sure, what is this about?"),
]
REPLY = "Great, thanks for your time. We are offering free solar consultations this month."


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def row(name: str, values: list[float], unit: str = "ms", scale: float = 1000.0,
        digits: int = 2) -> str:
    if not values:
        return f"{name:<34} no samples"
    scaled = [v * scale for v in values]
    return (f"{name:<34} n={len(values):<4} p50={pct(scaled, 50):9.{digits}f} {unit}  "
            f"p95={pct(scaled, 95):9.{digits}f} {unit}  "
            f"mean={statistics.fmean(scaled):9.{digits}f} {unit}")


def utterance(seconds: float = 3.0) -> npt.NDArray[np.float32]:
    for path in sorted(SPEECH_DIR.glob("*.wav")):
        import soundfile
        import soxr

        data, rate = soundfile.read(path, dtype="float32", always_2d=True)
        audio = np.asarray(soxr.resample(data.mean(axis=1), rate, 16000), dtype=np.float32)
        return audio[: int(seconds * 16000)]
    return (np.random.default_rng(0).standard_normal(int(seconds * 16000)) * 0.1).astype(
        np.float32)


async def timed(fn: Callable[[], Awaitable[object]], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        await fn()
        out.append(time.perf_counter() - start)
    return out


async def bench(args: argparse.Namespace) -> None:
    settings = Settings(models={"dir": str(args.models_dir), "profile": args.profile,
                                "device": args.device})
    start = time.perf_counter()
    engines = await EngineSet.load(settings)
    print(f"loaded in {time.perf_counter() - start:.2f} s on {engines.device}; "
          + ", ".join(f"{h.name}={h.state}" for h in engines.health()))
    engines.require_ready()
    try:
        audio = utterance()
        stt_wall = await timed(lambda: engines.stt.transcribe(audio, call_id="b"), args.runs)
        print(row(f"stt {audio.size / 16000:.1f} s utterance", stt_wall))

        first_token: list[float] = []
        whole: list[float] = []
        rates: list[float] = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            first: float | None = None
            tokens = 0
            async for chunk in engines.llm.stream_chat(CHAT, call_id="b", max_tokens=args.tokens):
                if chunk.text:
                    tokens += 1
                    if first is None:
                        first = time.perf_counter() - t0
                if chunk.timing is not None and chunk.timing.compute_s > 0:
                    # the worker's own clock: tokens reach the loop in bursts
                    rates.append(tokens / chunk.timing.compute_s)
            whole.append(time.perf_counter() - t0)
            if first is not None:
                first_token.append(first)
        print(row("llm first token", first_token))
        print(row(f"llm whole reply (<= {args.tokens} tokens)", whole))
        print(row("llm tokens/s incl. prompt", rates, unit="tok/s", scale=1.0))

        tts_first: list[float] = []
        rtf: list[float] = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            first_audio: float | None = None
            samples = 0
            async for piece in engines.tts.synthesize(REPLY, call_id="b"):
                if first_audio is None:
                    first_audio = time.perf_counter() - t0
                samples += len(piece.pcm) // 2
            total = time.perf_counter() - t0
            if first_audio is not None:
                tts_first.append(first_audio)
            if samples:
                rtf.append(total / (samples / engines.tts.sample_rate))
        print(row("tts first sentence", tts_first))
        print(row("tts real-time factor", rtf, unit="x", scale=1.0, digits=4))

        waits: list[float] = []
        for _ in range(max(1, args.runs // 4)):
            results = await asyncio.gather(
                *(engines.stt.transcribe(audio, call_id=f"q{i}") for i in range(4)))
            waits.extend(r.timing.queue_wait_s for r in results)
        print(row("stt queue wait, 4 callers at once", waits))
    finally:
        await engines.close()

    sched = EngineScheduler("bench", queue_size=8)
    try:
        ours = await timed(lambda: sched.run(lambda ctx: None, call_id="b", timeout_s=5),
                           args.runs * 10)
        base = await timed(lambda: asyncio.to_thread(lambda: None), args.runs * 10)
    finally:
        await sched.close()
    print(row("scheduler no-op round trip", ours))
    print(row("asyncio.to_thread no-op (baseline)", base))
    print(f"{'scheduler / to_thread, p50':<34} {pct(ours, 50) / pct(base, 50):.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, help="installed models (default: build test)")
    parser.add_argument("--profile", default="test", choices=("gpu", "cpu", "test"))
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=32)
    args = parser.parse_args()
    if args.runs < 1 or args.tokens < 1:
        parser.error("--runs and --tokens must be positive")
    with tempfile.TemporaryDirectory(prefix="bench-models-") as tmp:
        if args.models_dir is None:
            if args.profile != "test":
                parser.error("--profile gpu|cpu needs --models-dir with the models installed")
            args.models_dir = Path(tmp)
            build_test_models(args.models_dir)
        asyncio.run(bench(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())

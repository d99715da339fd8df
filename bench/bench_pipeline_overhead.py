"""Our pipeline's added latency per turn, with the engines replaced by fixed-delay stand-ins.

Runs real calls (uvicorn, the media WebSocket, pipecat, the Twilio simulator at real-time
cadence, real speech from shared/data/speech) whose STT, LLM and TTS wait a fixed time and return
canned results. Per agent reply:

  overhead = (first audio byte sent - transcript ready) - injected LLM delay - injected TTS delay

i.e. what our code (agent context, LLM streaming, sentence split, TTS, resample, marks, pipecat
output transport, serializer) adds between the transcript and the first byte on the socket.
Endpointing (end of caller speech -> transcript, minus injected STT) is printed separately: it
is mostly the deliberate VAD stop wait (0.2 s) plus the Smart Turn model.

    .venv/bin/python bench/bench_pipeline_overhead.py [--calls 1] [--turns 12]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from loguru import logger

from reautod.api.app import HttpServer, create_app
from reautod.api.media import MEDIA_PATH, media_router
from reautod.call_events import CallInfo, CallState, TurnRecord
from reautod.config import Settings
from reautod.engines.base import (
    AudioChunk,
    ChatMessage,
    EngineHealth,
    EngineState,
    RequestTiming,
    TokenChunk,
    Transcript,
)
from reautod.engines.catalog import build_test_models
from reautod.engines.registry import EngineSet
from reautod.pipeline.calls import CallManager
from reautod.telephony.audio import ulaw_to_float
from reautod.telephony.simulator import (
    CallOptions,
    Hangup,
    Pause,
    Step,
    Utterance,
    WaitForAgent,
    run_call,
)

SPEECH = Path("/work/shared/data/speech")
# Utterances Smart Turn v3 judges complete (so turns end by the model, not the silence fallback).
SPEECH_FILES = ("ps_librivox_sense_and_sensibility_0890.wav",
                "dg_testing-websocket_8k_mulaw.wav",
                "ps_librivox_sense_and_sensibility_0920.wav")
_T = RequestTiming(0.0, 0.0)


@dataclass
class StandInEngines:
    """Fixed-delay engines: STT waits stt_s, the LLM waits llm_s before its first sentence, TTS
    waits tts_s before its first chunk; audio is a tone `reply_audio_s` long per sentence."""

    stt_s: float = 0.05
    llm_s: float = 0.08
    tts_s: float = 0.04
    reply: str = "Okay. Tell me more."
    sentence_audio_s: float = 0.6
    sample_rate: int = 22050
    # Per call, in order: ("llm" | "tts", the delay actually slept). A busy loop oversleeps;
    # that is the box's, not the pipeline's, so the overhead subtracts what was really slept.
    slept: dict[str, list[tuple[str, float]]] = field(default_factory=dict)

    async def _sleep(self, kind: str, call_id: str, seconds: float) -> None:
        t0 = time.perf_counter()
        await asyncio.sleep(seconds)
        self.slept.setdefault(call_id, []).append((kind, time.perf_counter() - t0))

    def injected(self, call_id: str) -> list[float]:
        """Per LLM request of the call: LLM delay + its first sentence's TTS delay, as slept."""
        out: list[float] = []
        pending: float | None = None
        for kind, seconds in self.slept.get(call_id, []):
            if kind == "llm":
                pending = seconds
            elif pending is not None:
                out.append(pending + seconds)
                pending = None
        return out

    @property
    def stt(self) -> StandInEngines:
        return self

    @property
    def llm(self) -> StandInEngines:
        return self

    @property
    def tts(self) -> StandInEngines:
        return self

    def require_ready(self) -> None:
        return None

    def health(self) -> EngineHealth:
        return EngineHealth("stt", EngineState.READY, "stand-in")

    async def transcribe(self, audio: npt.NDArray[np.float32], *, call_id: str) -> Transcript:
        await self._sleep("stt", call_id, self.stt_s)
        return Transcript("tell me about the offer", 0.9, len(audio) / 16000, _T)

    async def stream_chat(self, messages: list[ChatMessage], *, call_id: str,
                          max_tokens: int | None = None,
                          model: str | None = None) -> AsyncIterator[TokenChunk]:
        await self._sleep("llm", call_id, self.llm_s)
        for word in self.reply.split(" "):
            yield TokenChunk(word + " ")

    async def synthesize(self, text: str, *, call_id: str) -> AsyncIterator[AudioChunk]:
        await self._sleep("tts", call_id, self.tts_s)
        n = int(self.sentence_audio_s * self.sample_rate)
        t = np.arange(n) / self.sample_rate
        pcm = (np.sin(2 * math.pi * 300 * t) * 6000).astype(np.int16).tobytes()
        step = self.sample_rate // 5 * 2
        for i in range(0, len(pcm), step):
            yield AudioChunk(pcm[i:i + step], self.sample_rate)


@dataclass
class Collector:
    turns: list[TurnRecord] = field(default_factory=list)
    ended: list[tuple[str, str]] = field(default_factory=list)

    def on_call_started(self, info: CallInfo) -> None:
        pass

    def on_turn(self, turn: TurnRecord) -> None:
        self.turns.append(turn)

    def on_barge_in(self, call_id: str, heard_text: str) -> None:
        pass

    def on_call_state(self, call_id: str, state: CallState) -> None:
        pass

    def on_dtmf(self, call_id: str, digit: str) -> None:
        pass

    def on_call_ended(self, call_id: str, reason: str, duration_s: float) -> None:
        self.ended.append((call_id, reason))


@contextlib.asynccontextmanager
async def serve(engines: Any, settings: Settings, observer: Any
                ) -> AsyncIterator[tuple[str, CallManager]]:
    """The daemon's HTTP server with the media router on 127.0.0.1:<free port>: the ws:// URL
    and the CallManager (bench_e2e prepares greetings through it, as the dialer does)."""
    manager = CallManager(engines, settings, observer)
    await manager.start()

    async def health() -> dict[str, Any]:
        return {"ok": True}

    server = HttpServer(create_app([media_router(manager)], health=health), "127.0.0.1", 0)
    await server.start()
    try:
        yield f"ws://127.0.0.1:{server.port}{MEDIA_PATH}", manager
    finally:
        await manager.close()
        await server.close()


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--models-dir, --profile, --device: the engines a real-engine benchmark loads."""
    parser.add_argument("--models-dir", type=Path, help="default: build the test models")
    parser.add_argument("--profile", default="test", choices=["test", "small", "cpu", "gpu"])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])


@contextlib.asynccontextmanager
async def loaded_engines(args: argparse.Namespace, **overrides: Any
                         ) -> AsyncIterator[tuple[EngineSet, Settings, Path]]:
    """The engines of `add_model_arguments` (the test models built in a temporary directory
    unless --models-dir), with settings `overrides`; closed on exit."""
    with tempfile.TemporaryDirectory(prefix="bench-models-") as tmp:
        models_dir = args.models_dir
        if models_dir is None:
            models_dir = Path(tmp)
            await asyncio.to_thread(build_test_models, models_dir)
        settings = Settings(models={"dir": str(models_dir), "profile": args.profile,
                                    "device": args.device}, **overrides)
        engines = await EngineSet.load(settings)
        try:
            engines.require_ready()
            yield engines, settings, models_dir
        finally:
            await engines.close()


def quiet_pipecat() -> None:
    logger.remove()
    logger.add(sys.stderr, level="WARNING")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def line(name: str, values_s: list[float]) -> str:
    ms = [v * 1000 for v in values_s]
    return (f"{name:<34} n={len(ms):<4} p50={pct(ms, .5):8.2f} ms  p95={pct(ms, .95):8.2f} ms  "
            f"p99={pct(ms, .99):8.2f} ms  max={max(ms, default=float('nan')):8.2f} ms")


def trimmed(utterance: Utterance, threshold: float = 0.02, keep_s: float = 0.05) -> Utterance:
    """Cut leading and trailing silence, so the phone-side "end of speech" is the real one."""
    samples = ulaw_to_float(utterance.ulaw)
    loud = np.flatnonzero(np.abs(samples) > threshold)
    if loud.size == 0:
        return utterance
    keep = int(keep_s * 8000)
    start, end = max(0, loud[0] - keep), min(len(samples), loud[-1] + keep)
    return Utterance(utterance.ulaw[start:end], utterance.label)


def speech() -> list[Utterance]:
    missing = [f for f in SPEECH_FILES if not (SPEECH / f).exists()]
    if missing:
        sys.exit(f"speech files missing under {SPEECH}: {missing}")
    return [trimmed(Utterance.from_file(SPEECH / f)) for f in SPEECH_FILES]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=1, help="simultaneous calls")
    parser.add_argument("--turns", type=int, default=12, help="caller utterances per call")
    args = parser.parse_args()
    quiet_pipecat()
    engines = StandInEngines()
    settings = Settings(calls={"reprompt_after_silence_s": 60.0, "hangup_after_silence_s": 120.0,
                               "max_concurrent": max(8, args.calls)})
    utterances = speech()
    observer = Collector()
    script: list[Step] = [WaitForAgent(timeout_s=30)]
    for i in range(args.turns):
        script += [utterances[i % len(utterances)], WaitForAgent(timeout_s=30), Pause(0.2)]
    script.append(Hangup())
    async with serve(engines, settings, observer) as (url, _):
        await asyncio.gather(*(run_call(CallOptions(url=url, record_audio=False,
                                                    custom_parameters={"call_id": f"o{i}"}),
                                        script) for i in range(args.calls)))
    overhead, endpointing, v2v = [], [], []
    for call_id in {t.call_id for t in observer.turns}:
        answers = [t for t in observer.turns if t.call_id == call_id and t.speaker == "agent"
                   and "stt_s" in t.latencies]
        injected = engines.injected(call_id)
        for turn, slept in zip(answers, injected, strict=False):
            lat = turn.latencies
            if "voice_to_voice_s" not in lat:
                continue
            overhead.append(lat["voice_to_voice_s"] - lat["stt_s"] - slept)
            endpointing.append(lat["stt_s"] - engines.stt_s)
            v2v.append(lat["voice_to_voice_s"])
    print(f"pipeline overhead, {args.calls} call(s) x {args.turns} turns, stand-in delays "
          f"stt={engines.stt_s * 1000:.0f} ms llm={engines.llm_s * 1000:.0f} ms "
          f"tts={engines.tts_s * 1000:.0f} ms")
    print(line("overhead (transcript -> 1st byte)", overhead))
    print(line("endpointing (speech end -> text)", endpointing))
    print(line("voice-to-voice (measured)", v2v))
    print(f"target: overhead p99 <= 5 ms -> {'met' if pct([o * 1000 for o in overhead], .99) <= 5 else 'NOT met'}"
          f"; stdev {statistics.pstdev(overhead) * 1000 if overhead else float('nan'):.2f} ms")


if __name__ == "__main__":
    asyncio.run(main())

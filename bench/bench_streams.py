"""N simultaneous simulated calls at real-time cadence: outbound frame timing and CPU.

Each call is real (uvicorn, media WebSocket, pipecat pipeline with Silero VAD and Smart Turn,
the Twilio simulator sending 20 ms frames on an absolute clock); the engines are fixed-delay
stand-ins (bench_pipeline_overhead.StandInEngines). Per call: the greeting, one caller
utterance, the reply, hang-up. The phone plays agent audio at real time from the first frame of
a talk spurt on (the daemon paces it, a little ahead); for every agent frame we measure

  delay    = arrival - (spurt start + audio before it in the spurt)   lateness against playback
  underrun = delay > 20 ms                                             an audible gap

The simulated phones run in a separate process (as Twilio would be elsewhere), so CPU% is the
pipeline's: the serving process's user+system time over wall time; 100% = one core.

    .venv/bin/python bench/bench_streams.py [--streams 1 10 25 50] [--arrival-s 0 2]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pipeline_overhead import (
    Collector,
    StandInEngines,
    pct,
    quiet_pipecat,
    serve,
    speech,
)
from pipecat.frames.frames import AudioRawFrame, Frame

from reautod.config import Settings
from reautod.pipeline.serializer import TwilioMediaSerializer
from reautod.telephony.simulator import (
    CallOptions,
    CallResult,
    Hangup,
    Step,
    Utterance,
    WaitForAgent,
    run_call,
)

GAP_S = 0.020  # a frame this late left the caller 20 ms of silence
SPURT_GAP_S = 0.25  # a longer gap between agent frames starts a new talk spurt


class SendClock:
    """Bench instrumentation: when the daemon put each agent audio frame on a socket."""

    def __init__(self) -> None:
        self.sent: dict[str, list[tuple[float, float]]] = {}  # (when, seconds of audio)
        self._original = TwilioMediaSerializer.serialize

    def __enter__(self) -> SendClock:
        original, sent = self._original, self.sent

        async def serialize(ser: TwilioMediaSerializer, frame: Frame) -> str | bytes | None:
            out = await original(ser, frame)
            if out is not None and isinstance(frame, AudioRawFrame):
                seconds = len(frame.audio) / 2 / frame.sample_rate
                sent.setdefault(ser.stream_sid, []).append((time.monotonic(), seconds))
            return out

        TwilioMediaSerializer.serialize = serialize  # type: ignore[method-assign,assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        TwilioMediaSerializer.serialize = self._original  # type: ignore[method-assign]


def frame_timing(frames: list[tuple[float, float]]) -> tuple[list[float], int]:
    """(delays in s, underruns) over the agent's talk spurts in one call.

    `frames`: (arrival time, seconds of audio) of each agent frame, in order.
    """
    delays: list[float] = []
    underruns = 0
    start, played, previous = 0.0, 0.0, None
    for at, seconds in frames:
        if previous is None or at - previous > SPURT_GAP_S:
            start, played = at, 0.0
        delay = max(0.0, at - (start + played))
        delays.append(delay)
        if delay > GAP_S:
            underruns += 1
        played += seconds
        previous = at
    return delays, underruns


async def _phones(url: str, n: int, utterance: Utterance, arrival_s: float
                  ) -> list[tuple[list[tuple[float, float]], bool]]:
    script: list[Step] = [WaitForAgent(timeout_s=60), utterance, WaitForAgent(timeout_s=60),
                          Hangup()]

    async def call(i: int) -> CallResult:
        await asyncio.sleep(arrival_s * i / n)  # 0: every call connects at the same instant
        return await run_call(CallOptions(url=url, record_audio=False,
                                          custom_parameters={"call_id": f"s{n}-{i}"}), script)

    results: list[CallResult] = await asyncio.gather(*(call(i) for i in range(n)))
    return [([(m.at, m.nbytes / 8000) for m in r.agent_media], bool(r.latencies_s))
            for r in results]


def phones(url: str, n: int, utterance: Utterance, arrival_s: float
           ) -> list[tuple[list[tuple[float, float]], bool]]:
    """The simulated phones, in the child process: per call, agent frame arrivals, answered."""
    return asyncio.run(_phones(url, n, utterance, arrival_s))


async def run_n(n: int, arrival_s: float = 0.0) -> str:
    engines = StandInEngines(sentence_audio_s=1.5)
    settings = Settings(calls={"max_concurrent": max(n, 1), "reprompt_after_silence_s": 60.0,
                               "hangup_after_silence_s": 120.0})
    utterance = speech()[0]
    observer = Collector()
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as pool, \
            SendClock() as clock:
        await loop.run_in_executor(pool, int, 0)  # start the child before the clock starts
        async with serve(engines, settings, observer) as (url, _):
            cpu0, wall0 = os.times(), time.monotonic()
            calls = await loop.run_in_executor(pool, phones, url, n, utterance, arrival_s)
            cpu1, wall1 = os.times(), time.monotonic()
    cpu = ((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)) / (wall1 - wall0) * 100
    sent_delays: list[float] = []
    sent_underruns = 0
    for times in clock.sent.values():
        d, u = frame_timing(times)
        sent_delays += d
        sent_underruns += u
    delays: list[float] = []
    underruns = frames = 0
    for arrivals, _ in calls:
        d, u = frame_timing(arrivals)
        delays += d
        underruns += u
        frames += len(arrivals)
    answered = sum(1 for _, ok in calls if ok)
    ms = [d * 1000 for d in delays]
    sms = [d * 1000 for d in sent_delays]
    return (f"N={n:<3} arrivals over {arrival_s:g} s  frames={frames:<6} cpu={cpu:4.0f}%  "
            f"answered={answered}/{n}\n"
            f"  sent (daemon)    delay p50={pct(sms, .5):7.2f} p99={pct(sms, .99):7.2f} "
            f"max={max(sms, default=0):7.1f} ms  underruns={sent_underruns}\n"
            f"  arrived (phones) delay p50={pct(ms, .5):7.2f} p99={pct(ms, .99):7.2f} "
            f"max={max(ms, default=0):7.1f} ms  underruns={underruns}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 10, 25, 50])
    parser.add_argument("--arrival-s", type=float, nargs="+", default=[0.0, 2.0],
                        help="calls connect spread evenly over this many seconds (0: all at the "
                             "same instant, the worst case; a dialer's answered calls arrive "
                             "spread out)")
    args = parser.parse_args()
    quiet_pipecat()
    print("streams: outbound frame delay vs real-time pacing (ms), at the daemon's send and at "
          "the phones' arrival (another process); target N=50 p99 < 20 ms")
    for n in args.streams:
        for arrival_s in args.arrival_s:
            print(await run_n(n, arrival_s), flush=True)


if __name__ == "__main__":
    asyncio.run(main())

"""N simultaneous simulated calls at real-time cadence: outbound frame timing and CPU.

Each call is real (uvicorn, media WebSocket, pipecat pipeline with Silero VAD and Smart Turn,
the Twilio simulator sending 20 ms frames on an absolute clock); the engines are fixed-delay
stand-ins (bench_pipeline_overhead.StandInEngines). Per call: the greeting, one caller
utterance, the reply, hang-up. pipecat paces agent audio at twice real time (a 20 ms frame every
10 ms); for every agent frame inside a talk spurt we measure

  delay    = arrival - (spurt start + k * 10 ms)   lateness against that pacing schedule
  underrun = arrival > spurt start + k * 20 ms     the phone would have run dry (audible gap)

CPU% is this process's user+system time over wall time (the simulator runs in-process too, so
this overstates the daemon's share); 100% = one core.

    .venv/bin/python bench/bench_streams.py [--streams 1 10 25 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
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

from reautod.config import Settings
from reautod.telephony.simulator import (
    CallOptions,
    CallResult,
    Hangup,
    Step,
    WaitForAgent,
    run_call,
)

PACE_S = 0.010  # pipecat sends one 20 ms frame per 10 ms
FRAME_S = 0.020
SPURT_GAP_S = 0.25  # a longer gap between agent frames starts a new talk spurt


def frame_timing(result: CallResult) -> tuple[list[float], int, int]:
    """(delays in s, underruns, frames) over the agent's talk spurts in one call."""
    delays: list[float] = []
    underruns = 0
    arrivals = [m.at for m in result.agent_media]
    start, k, previous = None, 0, None
    for at in arrivals:
        if previous is None or at - previous > SPURT_GAP_S:
            start, k = at, 0
        assert start is not None
        delays.append(max(0.0, at - (start + k * PACE_S)))
        if at > start + k * FRAME_S + FRAME_S:
            underruns += 1
        k += 1
        previous = at
    return delays, underruns, len(arrivals)


async def run_n(n: int, utterance_index: int = 0) -> str:
    engines = StandInEngines(sentence_audio_s=1.5)
    settings = Settings(calls={"max_concurrent": max(n, 1), "reprompt_after_silence_s": 60.0,
                               "hangup_after_silence_s": 120.0})
    utterance = speech()[utterance_index]
    script: list[Step] = [WaitForAgent(timeout_s=60), utterance, WaitForAgent(timeout_s=60),
                          Hangup()]
    observer = Collector()
    async with serve(engines, settings, observer) as url:
        cpu0, wall0 = os.times(), time.monotonic()
        results = await asyncio.gather(*(
            run_call(CallOptions(url=url, record_audio=False,
                                 custom_parameters={"call_id": f"s{n}-{i}"}), script)
            for i in range(n)))
        cpu1, wall1 = os.times(), time.monotonic()
    cpu = ((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)) / (wall1 - wall0) * 100
    delays: list[float] = []
    underruns = frames = 0
    for result in results:
        d, u, f = frame_timing(result)
        delays += d
        underruns += u
        frames += f
    answered = sum(1 for r in results if r.latencies_s)
    ms = [d * 1000 for d in delays]
    return (f"N={n:<3} frames={frames:<6} delay p50={pct(ms, .5):7.2f} ms p99={pct(ms, .99):7.2f} ms"
            f" max={max(ms, default=0):7.1f} ms  underruns={underruns:<4} "
            f"answered={answered}/{n}  cpu={cpu:5.0f}%  wall={wall1 - wall0:5.1f}s")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 10, 25, 50])
    args = parser.parse_args()
    quiet_pipecat()
    print("streams: outbound frame delay vs pipecat's 2x pacing; target N=50 p99 < 20 ms")
    for n in args.streams:
        print(await run_n(n), flush=True)


if __name__ == "__main__":
    asyncio.run(main())

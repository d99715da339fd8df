"""Barge-in on real engines: caller speech onset -> the agent's audio stops reaching the caller.

Loads the engines (by default the random-weight test models; `--models-dir DIR --profile small`
for the real small set), serves the media WebSocket, and plays calls at real-time cadence with
the Twilio simulator. In each call the caller cuts into the agent's greeting twice: once with a
backchannel ("Yeah.", spoken by the engines' own TTS), which must not cut the agent off, and
once with a long sentence, which must. Reported from the phone's side of the simulator:

- onset -> silenced: the caller's first audio frame sent -> the agent's audio stops playing
  on the phone (held by the turn processor, or cleared);
- onset -> `clear`: the same onset -> Twilio's `clear`. Before the hold, the agent's audio
  stopped only at the `clear`, so this is the reference measured in the same run;
- backchannels: how many cut the agent off (a `clear`) against how many let it go on.

    .venv/bin/python bench/bench_barge_in.py [--calls 5] [--models-dir DIR --profile small]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pipeline_overhead import (
    Collector,
    add_model_arguments,
    line,
    loaded_engines,
    pct,
    quiet_pipecat,
    serve,
    speech,
    trimmed,
)

from reautod.engines.registry import EngineSet
from reautod.telephony.simulator import (
    BargeIn,
    CallOptions,
    Hangup,
    Pause,
    Utterance,
    WaitForAgent,
    run_call,
)

TARGET_P50_S = 0.300
# Long enough that the agent is still talking when each barge-in comes.
GREETING = ("Hi, this is Sam from Northwind Homes. I am calling about the house you asked us "
            "to value last week, and I have a few quick questions about your plans. "
            "It will only take a minute or two of your time, if that is all right with you.")


async def spoken(engines: EngineSet, text: str) -> Utterance:
    """`text` in the engines' own voice, as the caller's line."""
    pcm = b"".join([chunk.pcm async for chunk in engines.tts.synthesize(text,
                                                                         call_id="bench-caller")])
    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0
    return trimmed(Utterance.from_samples(samples, engines.tts.sample_rate, label=text))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=5, help="calls, one after another")
    add_model_arguments(parser)
    args = parser.parse_args()
    quiet_pipecat()
    overrides = {"calls": {"reprompt_after_silence_s": 60.0, "hangup_after_silence_s": 120.0},
                 "agent": {"greeting": GREETING}}
    async with loaded_engines(args, **overrides) as (engines, settings, models_dir):
        backchannel = await spoken(engines, "Yeah.")
        sentence = speech()[0]
        silenced: list[float] = []
        cleared: list[float] = []
        cut_off_by_backchannel = 0
        async with serve(engines, settings, Collector()) as (url, _manager):
            for i in range(args.calls):
                result = await run_call(
                    CallOptions(url=url, record_audio=False,
                                custom_parameters={"call_id": f"b{i}"}),
                    [BargeIn(backchannel, after_s=1.0, timeout_s=60), Pause(1.0),
                     BargeIn(sentence, after_s=0.5, timeout_s=60),
                     WaitForAgent(timeout_s=60), Hangup()],
                )
                if len(result.barge_ins) != 2:
                    sys.exit(f"call b{i}: {len(result.barge_ins)} barge-ins took place, "
                             f"not 2 (timeouts: {result.timeouts})")
                small, real = result.barge_ins
                if small.first_clear_at is not None and small.first_clear_at < real.onset_at:
                    cut_off_by_backchannel += 1
                if real.silence_latency_s is not None:
                    silenced.append(real.silence_latency_s)
                if real.clear_latency_s is not None:
                    cleared.append(real.clear_latency_s)
    print(f"barge-in, {args.calls} call(s), models: {args.profile} ({models_dir}), "
          f"device {args.device}, min_barge_in_s {settings.calls.min_barge_in_s:g}")
    print(line("onset -> agent silenced", silenced))
    print(line("onset -> clear (reference)", cleared))
    p50, reference = pct(silenced, 0.5), pct(cleared, 0.5)
    print(f"ratio silenced / clear p50: {p50 / reference:.2f}x")
    print(f"backchannels that cut the agent off: {cut_off_by_backchannel} of {args.calls}")
    print(f"target p50 <= {TARGET_P50_S * 1000:.0f} ms: "
          f"{'met' if p50 <= TARGET_P50_S else 'NOT met'} ({p50 * 1000:.0f} ms)")


if __name__ == "__main__":
    asyncio.run(main())

"""End to end with real engines: end of caller speech -> first agent audio byte, p50/p95.

Loads the real STT/LLM/TTS engines (by default the random-weight test models, built into a
temporary directory; `--models-dir DIR --profile small|cpu|gpu|test` for others), serves the media
WebSocket, and plays a few calls of several caller turns at real-time cadence with the Twilio
simulator. Reported twice: from the pipeline's own turn records (VAD end of speech -> first byte
sent, with the stage breakdown) and from the phone side (end of the caller's audio -> first agent
media frame received). Calls run one after another, so the figure is latency, not contention.
The greeting's wait is reported too: the simulator's connect to the first agent media frame.
As the dialer does, each call's greeting is prepared when the call is "placed", `--ring-s`
before the simulator connects (a phone rings for seconds); `--no-prepare` synthesizes it only
when the stream starts, as before the CallManager kept prepared greetings.

    .venv/bin/python bench/bench_e2e.py [--calls 3] [--turns 4] [--models-dir DIR --profile P]
        [--max-tokens N] [--ring-s 3 | --no-prepare]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

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
)

from reautod.telephony.simulator import CallOptions, Hangup, Pause, Step, WaitForAgent, run_call

TARGET_P50_S = 0.350


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--turns", type=int, default=4, help="caller utterances per call")
    add_model_arguments(parser)
    parser.add_argument("--max-tokens", type=int, default=None,
                        help="engines.llm_max_tokens (default: the config default, 160). With "
                             "random weights the LLM never emits end-of-sequence, so every reply "
                             "runs to this cap")
    parser.add_argument("--ring-s", type=float, default=3.0,
                        help="seconds from preparing a call's greeting to connecting it")
    parser.add_argument("--no-prepare", action="store_true",
                        help="synthesize each greeting when its stream starts")
    args = parser.parse_args()
    quiet_pipecat()
    overrides: dict[str, Any] = {
        "calls": {"reprompt_after_silence_s": 60.0, "hangup_after_silence_s": 120.0}}
    if args.max_tokens:
        overrides["engines"] = {"llm_max_tokens": args.max_tokens}
    async with loaded_engines(args, **overrides) as (engines, settings, models_dir):
        utterances = speech()
        script: list[Step] = [WaitForAgent(timeout_s=60)]
        for i in range(args.turns):
            script += [utterances[i % len(utterances)], WaitForAgent(timeout_s=60), Pause(0.3)]
        script.append(Hangup())
        observer = Collector()
        phone: list[float] = []
        greeting_wait: list[float] = []
        async with serve(engines, settings, observer) as (url, manager):
            for i in range(args.calls):
                call_id = f"e{i}"
                if not args.no_prepare:  # what the dialer does when it places the call
                    manager.prepare_greeting(call_id, lead_name="", opening=None,
                                             expires_in_s=args.ring_s + 60)
                    await asyncio.sleep(args.ring_s)
                result = await run_call(CallOptions(url=url, record_audio=False,
                                                    custom_parameters={"call_id": call_id}),
                                        script)
                phone += result.latencies_s
                if result.agent_media:  # call clock: seconds since the simulator connected
                    greeting_wait.append(result.agent_media[0].at)
    stages: dict[str, list[float]] = {}
    for turn in observer.turns:
        if turn.speaker == "agent" and "voice_to_voice_s" in turn.latencies:
            for key, value in turn.latencies.items():
                stages.setdefault(key, []).append(value)
    print(f"end to end, {args.calls} call(s) x {args.turns} turns, models: {args.profile} "
          f"({models_dir}), device {args.device}, "
          f"llm_max_tokens {settings.engines.llm_max_tokens}, greeting "
          f"{'synthesized at start' if args.no_prepare else f'prepared {args.ring_s:g} s ahead'}")
    for key, label in (("stt_s", "speech end -> transcript"),
                       ("llm_first_token_s", "speech end -> 1st LLM token"),
                       ("tts_first_audio_s", "speech end -> 1st TTS audio"),
                       ("voice_to_voice_s", "speech end -> 1st byte sent")):
        print(line(label, stages.get(key, [])))
    print(line("phone side: audio end -> 1st media", phone))
    print(line("greeting: connect -> 1st media", greeting_wait))
    v2v = stages.get("voice_to_voice_s", [])
    p50 = pct(v2v, 0.5)
    print(f"target p50 <= {TARGET_P50_S * 1000:.0f} ms: "
          f"{'met' if p50 <= TARGET_P50_S else 'NOT met'} ({p50 * 1000:.0f} ms)")


if __name__ == "__main__":
    asyncio.run(main())

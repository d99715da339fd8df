"""reautod against a stock Pipecat bot, same models, same caller, same run: end of the caller's
speech -> first agent audio frame on the phone, at 1, 3 and 5 simultaneous calls.

    PYTHONPATH=. .venv/bin/python bench/bench_vs_pipecat.py --models-dir DIR --profile small
        [--calls-list 1 3 5] [--turns 3] [--stagger-s 0.5]

Loads the engines of `--models-dir`/`--profile` (by default the random-weight test models) and
serves reautod's media WebSocket in this process, as bench_e2e.py does. The reference is
`pipecat_reference.py` (pipecat-examples' Twilio bot for 1.14 with Pipecat's own Whisper, OpenAI
and Piper services on the same three model files; its docstring lists every deviation from
stock) in a subprocess, with the GGUF in its own `llama_cpp.server` child: its own processes and
GILs, as a stock Pipecat bot would run, while reautod's pipeline and engines share this process
with the simulated callers.

For each N, N calls start `--stagger-s` (0.5 s) apart, first all to reautod, then all to the
reference. Each call waits for the greeting, then speaks `--turns` Harvard sentences (in the
engines' own Piper voice, the same audio for both bots), waiting for the agent to finish after
each. Per bot and N: p50/p90/p95 of `CallResult.latencies_s` over the answered turns; the turns
not answered before the 60 s wait for the reply ran out (a later reply is left out: it came
after the next sentence, and the simulator would count it for both); the turns the agent talked
into (its audio arrived while the caller spoke: an early answer to half a sentence, whose rest
may then be what the figure measures); greetings that never came; the caller frames the
simulator sent over 20 ms late (the callers share this process with reautod). For reautod also
the p50 of each stage from its own turn records (end of speech -> transcript, first LLM token,
first TTS audio, first byte sent), which says where the time goes.
Then the ratios reautod / Pipecat, and the targets of issue 12: one call p50 <= 500 ms and
<= 0.3x Pipecat's; five calls p50 <= 1.5x and p95 <= 2.5x the one-call p50 (both against the
one-call p50), every turn answered; reautod's p50 below Pipecat's at every N.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_barge_in import spoken
from bench_pipeline_overhead import (
    Collector,
    add_model_arguments,
    loaded_engines,
    pct,
    quiet_pipecat,
    serve,
)
from pipecat_reference import WS_PATH

from reautod.call_events import TurnRecord
from reautod.engines.registry import EngineSet
from reautod.telephony.simulator import (
    CallOptions,
    CallResult,
    Hangup,
    Step,
    Utterance,
    WaitForAgent,
    run_call,
)

REFERENCE = Path(__file__).resolve().parent / "pipecat_reference.py"
REFERENCE_START_TIMEOUT_S = 300.0
# Harvard sentences, list 1.
HARVARD = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
)
STAGES = (("stt_s", "transcript"), ("llm_first_token_s", "first LLM token"),
          ("tts_first_audio_s", "first TTS audio"), ("voice_to_voice_s", "first byte sent"))
TARGET_ONE_CALL_P50_S = 0.500
TARGET_RATIO_ONE_CALL = 0.3
TARGET_FIVE_P50_X = 1.5
TARGET_FIVE_P95_X = 2.5


@dataclass(frozen=True)
class Run:
    """One bot's N simultaneous calls."""

    bot: str
    calls: int
    turns: int
    results: tuple[CallResult, ...]
    # reautod's own turn records of these calls (the stage timings); none for the reference
    records: tuple[TurnRecord, ...] = ()

    def stage_p50_ms(self, key: str) -> str:
        values = [t.latencies[key] for t in self.records
                  if t.speaker == "agent" and key in t.latencies and "voice_to_voice_s"
                  in t.latencies]
        return f"{pct(values, .5) * 1000:.0f} ms" if values else "-"

    @property
    def latencies_s(self) -> list[float]:
        """`CallResult.latencies_s` of the answered turns: a reply that came only after the wait
        for it ran out (and the next sentence was spoken) answers that sentence, not this one."""
        return [u.latency_s for r in self.results for u in r.utterances
                if u.latency_s is not None and not _wait_timed_out(r, u.step_index + 1)]

    @property
    def unanswered(self) -> int:
        return self.calls * self.turns - len(self.latencies_s)

    @property
    def greetings_missing(self) -> int:
        return sum(1 for r in self.results if _wait_timed_out(r, 0))

    @property
    def talked_into(self) -> int:
        """Caller turns during which agent audio arrived."""
        return sum(1 for r in self.results for u in r.utterances
                   if any(u.started_at <= m.at <= u.ended_at for m in r.agent_media))

    @property
    def late_frames(self) -> int:
        return sum(r.late_frames for r in self.results)

    def p(self, q: float) -> float:
        return pct(self.latencies_s, q)


def _wait_timed_out(result: CallResult, step_index: int) -> bool:
    return any(t.step_index == step_index for t in result.timeouts)


@contextlib.asynccontextmanager
async def reference_bot(engines: EngineSet) -> AsyncIterator[str]:
    """pipecat_reference.py on the engines' model files, in its own session (process group);
    yields its ws:// URL. On exit its stdin is closed (it stops itself and its llama server),
    then whatever is left of the group is killed."""
    models = engines.models
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(REFERENCE), "--stt", str(models["stt"].path),
        "--llm", str(models["llm"].path), "--tts", str(models["tts"].path),
        "--until-stdin-closes",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, start_new_session=True)
    if proc.stdin is None or proc.stdout is None:
        raise RuntimeError("the reference bot's pipes did not open")
    try:
        try:
            ready = await asyncio.wait_for(proc.stdout.readline(), REFERENCE_START_TIMEOUT_S)
        except TimeoutError:
            ready = b""
        words = ready.decode().split()
        if len(words) != 2 or words[0] != "READY":
            raise RuntimeError(f"the reference bot did not start (it said {ready!r})")
        yield f"ws://127.0.0.1:{words[1]}{WS_PATH}"
    finally:
        proc.stdin.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()


def script(lines: Sequence[Utterance]) -> list[Step]:
    steps: list[Step] = [WaitForAgent(timeout_s=60)]
    for line in lines:
        steps += [line, WaitForAgent(timeout_s=60)]
    return [*steps, Hangup()]


async def run_calls(bot: str, url: str, n: int, turns: int, stagger_s: float,
                lines: Sequence[Utterance]) -> Run:
    """N calls to `url`, call i starting i * stagger_s after the first."""

    async def one(i: int) -> CallResult:
        await asyncio.sleep(i * stagger_s)
        own = [lines[(i * turns + t) % len(lines)] for t in range(turns)]
        return await run_call(CallOptions(url=url, record_audio=False,
                                          custom_parameters={"call_id": f"{bot}-{n}-{i}"}),
                              script(own))

    return Run(bot, n, turns, tuple(await asyncio.gather(*(one(i) for i in range(n)))))


def row(run: Run) -> str:
    ms = [run.p(q) * 1000 for q in (.5, .9, .95)]
    return (f"  {run.bot:<8} N={run.calls}  n={len(run.latencies_s):<3} p50={ms[0]:7.0f} ms  "
            f"p90={ms[1]:7.0f} ms  p95={ms[2]:7.0f} ms  unanswered {run.unanswered}  "
            f"talked into {run.talked_into}  greetings missing {run.greetings_missing}  "
            f"late caller frames {run.late_frames}")


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def report(runs: dict[tuple[str, int], Run], calls_list: Sequence[int]) -> None:
    for n in calls_list:
        ours, theirs = runs["reautod", n], runs["pipecat", n]
        print(row(ours))
        print("  reautod stages p50 from the end of speech: " + ", ".join(
            f"{label} {ours.stage_p50_ms(key)}" for key, label in STAGES))
        print(row(theirs))
        print(f"  ratio reautod/pipecat N={n}: p50 {ours.p(.5) / theirs.p(.5):.2f}x  "
              f"p90 {ours.p(.9) / theirs.p(.9):.2f}x  p95 {ours.p(.95) / theirs.p(.95):.2f}x")
    if 1 in calls_list:
        one, ref = runs["reautod", 1].p(.5), runs["pipecat", 1].p(.5)
        print(f"target one call p50 <= {TARGET_ONE_CALL_P50_S * 1000:.0f} ms: "
              f"{verdict(one <= TARGET_ONE_CALL_P50_S)} ({one * 1000:.0f} ms)")
        print(f"target one call p50 <= {TARGET_RATIO_ONE_CALL:g}x Pipecat's: "
              f"{verdict(one <= TARGET_RATIO_ONE_CALL * ref)} ({one / ref:.2f}x)")
        if 5 in calls_list:
            five = runs["reautod", 5]
            print(f"target five calls p50 <= {TARGET_FIVE_P50_X:g}x the one-call p50: "
                  f"{verdict(five.p(.5) <= TARGET_FIVE_P50_X * one)} "
                  f"({five.p(.5) / one:.2f}x, {five.p(.5) * 1000:.0f} ms)")
            print(f"target five calls p95 <= {TARGET_FIVE_P95_X:g}x the one-call p50: "
                  f"{verdict(five.p(.95) <= TARGET_FIVE_P95_X * one)} "
                  f"({five.p(.95) / one:.2f}x, {five.p(.95) * 1000:.0f} ms)")
            print(f"target five calls, every turn answered: {verdict(five.unanswered == 0)} "
                  f"({five.unanswered} of {five.calls * five.turns} unanswered)")
    ahead = [n for n in calls_list if runs["reautod", n].p(.5) < runs["pipecat", n].p(.5)]
    print(f"target ahead of Pipecat (p50) at N = {', '.join(map(str, calls_list))}: "
          f"{verdict(len(ahead) == len(calls_list))} "
          f"(ahead at {', '.join(map(str, ahead)) or 'none'})")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls-list", type=int, nargs="+", default=[1, 3, 5],
                        help="simultaneous calls, one measurement per value")
    parser.add_argument("--turns", type=int, default=3, help="caller sentences per call")
    parser.add_argument("--stagger-s", type=float, default=0.5, help="between call starts")
    add_model_arguments(parser)
    args = parser.parse_args()
    quiet_pipecat()
    overrides = {"calls": {"reprompt_after_silence_s": 60.0, "hangup_after_silence_s": 120.0,
                           "max_concurrent": max(8, *args.calls_list)}}
    runs: dict[tuple[str, int], Run] = {}
    collector = Collector()
    async with loaded_engines(args, **overrides) as (engines, settings, models_dir):
        lines = [await spoken(engines, text) for text in HARVARD]
        async with (serve(engines, settings, collector) as (reautod_url, _manager),
                    reference_bot(engines) as pipecat_url):
            for n in args.calls_list:
                for bot, url in (("reautod", reautod_url), ("pipecat", pipecat_url)):
                    seen = len(collector.turns)
                    run = await run_calls(bot, url, n, args.turns, args.stagger_s, lines)
                    runs[bot, n] = replace(run, records=tuple(collector.turns[seen:]))
    print(f"reautod vs stock Pipecat 1.14, models: {args.profile} ({models_dir}), device "
          f"{args.device}; {args.turns} turns per call, calls {args.stagger_s:g} s apart; "
          f"end of caller speech -> first agent audio frame on the phone")
    report(runs, args.calls_list)


if __name__ == "__main__":
    asyncio.run(main())

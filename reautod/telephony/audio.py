"""Audio helpers shared by the telephony side: G.711 mu-law, resampling, reading and writing files.

Samples are float32 mono in [-1.0, 1.0] unless a name says otherwise (``pcm16`` = int16).
The mu-law codec is bit-exact with the stdlib ``audioop`` (``lin2ulaw`` / ``ulaw2lin``), done with
lookup tables so that encoding a 20 ms frame costs one numpy indexing operation.

File functions do blocking I/O: call them from a thread (``asyncio.to_thread``) when on a loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile
import soxr

from reautod.errors import ValidationError

FloatArray = npt.NDArray[np.float32]
Int16Array = npt.NDArray[np.int16]

#: Twilio media streams are 8 kHz mono mu-law.
TELEPHONY_RATE = 8000
#: The mu-law byte for digital silence (what a quiet phone line carries).
ULAW_SILENCE = 0xFF


def _build_decode_table() -> Int16Array:
    # G.711 expansion as in the Sun reference code that audioop.ulaw2lin uses.
    u = np.bitwise_not(np.arange(256, dtype=np.int32)) & 0xFF
    exponent = (u >> 4) & 0x07
    t = (((u & 0x0F) << 3) + 0x84) << exponent
    return np.where(u & 0x80, 0x84 - t, t - 0x84).astype(np.int16)


def _build_encode_table() -> npt.NDArray[np.uint8]:
    # Indexed by the int16 sample viewed as uint16. Mirrors audioop's st_14linear2ulaw: the
    # sample is first reduced to 14 bits by an arithmetic shift, then clipped, biased and
    # split into segment + 4 mantissa bits, all bits inverted.
    pcm = np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.int32) >> 2
    negative = pcm < 0
    magnitude = np.minimum(np.where(negative, -pcm, pcm), 8159) + (0x84 >> 2)
    segment_ends = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
    segment = np.searchsorted(segment_ends, magnitude, side="left")
    mantissa = (magnitude >> (segment + 1)) & 0x0F
    # Past the last segment audioop returns the largest code, whatever the mantissa says.
    code = np.where(segment >= 8, 0x7F, (segment << 4) | mantissa)
    mask = np.where(negative, 0x7F, 0xFF)
    return ((code ^ mask) & 0xFF).astype(np.uint8)


_ULAW_TO_PCM16 = _build_decode_table()
_PCM16_TO_ULAW = _build_encode_table()


def pcm16_to_ulaw(samples: Int16Array) -> bytes:
    """Encode int16 samples as G.711 mu-law bytes (same bytes as ``audioop.lin2ulaw(x, 2)``)."""
    return _PCM16_TO_ULAW[np.asarray(samples, dtype=np.int16).view(np.uint16)].tobytes()


def ulaw_to_pcm16(data: bytes | bytearray | memoryview) -> Int16Array:
    """Decode G.711 mu-law bytes to int16 samples (same values as ``audioop.ulaw2lin(x, 2)``)."""
    return _ULAW_TO_PCM16[np.frombuffer(data, dtype=np.uint8)]


def float_to_pcm16(samples: npt.ArrayLike) -> Int16Array:
    """Convert float samples in [-1, 1] to int16, clipping what lies outside."""
    scaled = np.rint(np.asarray(samples, dtype=np.float32) * 32767.0)
    return np.clip(scaled, -32768, 32767).astype(np.int16)


def pcm16_to_float(samples: Int16Array) -> FloatArray:
    """Convert int16 samples to float32 in [-1, 1)."""
    return (np.asarray(samples, dtype=np.int16).astype(np.float32) / 32768.0).astype(np.float32)


def float_to_ulaw(samples: npt.ArrayLike) -> bytes:
    """Encode float samples (already at 8 kHz) as mu-law bytes."""
    return pcm16_to_ulaw(float_to_pcm16(samples))


def ulaw_to_float(data: bytes | bytearray | memoryview) -> FloatArray:
    """Decode mu-law bytes to float32 samples."""
    return pcm16_to_float(ulaw_to_pcm16(data))


def resample(samples: npt.ArrayLike, from_rate: int, to_rate: int) -> FloatArray:
    """Resample a whole float mono signal with soxr (high quality); a no-op when rates match."""
    if from_rate <= 0 or to_rate <= 0:
        raise ValidationError(f"sample rates must be positive, got {from_rate} -> {to_rate}")
    data = np.asarray(samples, dtype=np.float32)
    if data.ndim != 1:
        raise ValidationError(f"expected mono samples, got an array of shape {data.shape}")
    if from_rate == to_rate or data.size == 0:
        return data.copy()
    return np.asarray(soxr.resample(data, from_rate, to_rate, quality="HQ"), dtype=np.float32)


@dataclass(frozen=True)
class AudioClip:
    """Mono float32 samples with their sample rate."""

    samples: FloatArray
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate

    def resampled(self, rate: int) -> AudioClip:
        """This clip at another sample rate."""
        return AudioClip(resample(self.samples, self.sample_rate, rate), rate)


def read_audio(path: str | Path, *, sample_rate: int | None = None) -> AudioClip:
    """Read any file libsndfile knows (WAV PCM/float/mu-law/A-law, FLAC, OGG...) as float32 mono.

    Channels are averaged. With ``sample_rate`` the clip is resampled to that rate.
    Raises ``ValidationError`` when the file is missing or not audio.
    """
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, OSError, RuntimeError) as err:
        raise ValidationError(f"cannot read audio file {path}: {err}") from err
    mono = np.asarray(data.mean(axis=1) if data.shape[1] > 1 else data[:, 0], dtype=np.float32)
    clip = AudioClip(mono, int(rate))
    return clip.resampled(sample_rate) if sample_rate is not None else clip


def read_ulaw(path: str | Path) -> bytes:
    """Read an audio file and return it as 8 kHz mu-law bytes, ready for a Twilio media stream."""
    return float_to_ulaw(read_audio(path, sample_rate=TELEPHONY_RATE).samples)


def write_wav(path: str | Path, samples: npt.ArrayLike, sample_rate: int) -> None:
    """Write samples (float in [-1, 1] or int16; shape (n,) or (n, channels)) as 16-bit WAV."""
    data = np.asarray(samples)
    pcm = data.astype(np.int16) if data.dtype == np.int16 else float_to_pcm16(data)
    soundfile.write(str(path), pcm, sample_rate, subtype="PCM_16", format="WAV")


def write_ulaw_wav(path: str | Path, ulaw: bytes | bytearray | memoryview) -> None:
    """Write 8 kHz mu-law bytes as a 16-bit PCM WAV file (decoded, so any player opens it)."""
    write_wav(path, ulaw_to_pcm16(ulaw), TELEPHONY_RATE)

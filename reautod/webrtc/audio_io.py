"""Where `reautoctl talk` hears and speaks: the local sound card, or WAV files.

`AudioIO` is all the talk client knows of it: 20 ms frames of 16 kHz mono PCM16 in (`read`),
the agent's audio of the same format out (`play`). The sound card (PortAudio through
sounddevice) is one; a WAV file in and a buffer out is the other, for machines without audio
hardware and for tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from reautod.errors import ReautodError, UnavailableError
from reautod.telephony.audio import float_to_pcm16, read_audio, write_wav

TALK_RATE = 16_000
FRAME_S = 0.02
FRAME_BYTES = int(TALK_RATE * FRAME_S) * 2
MAX_PLAYBACK_S = 30.0  # agent audio buffered ahead of the speaker; beyond, the oldest is dropped


class AudioIO(Protocol):
    """A microphone and a speaker, as the talk client uses them."""

    async def read(self) -> bytes | None:
        """The next 20 ms of the caller (FRAME_BYTES), waiting for it; None: nothing more will
        come (a file that ended)."""
        ...

    def play(self, pcm: bytes) -> None:
        """Queue agent audio (PCM16 mono at TALK_RATE) to be heard; never blocks."""
        ...

    async def close(self) -> None: ...


class NoAudioDeviceError(UnavailableError):
    """No microphone or speaker to talk with (or PortAudio is missing)."""

    code = "no_audio_device"


class SoundDeviceIO:
    """The default microphone and speaker (PortAudio); PortAudio's threads hand over to the
    event loop through a queue (in) and a locked buffer (out)."""

    def __init__(self, *, input_device: int | str | None = None,
                 output_device: int | str | None = None) -> None:
        try:
            import sounddevice
        except OSError as err:  # the PortAudio library itself is missing
            raise NoAudioDeviceError(f"no sound: PortAudio is not installed ({err}); on Debian "
                                     "or Ubuntu: apt install libportaudio2") from err
        self._sd: Any = sounddevice
        try:
            sounddevice.query_devices(input_device, kind="input")
            sounddevice.query_devices(output_device, kind="output")
        except (sounddevice.PortAudioError, ValueError) as err:
            raise NoAudioDeviceError(
                f"no microphone and speaker to talk with ({err}); on a machine without audio "
                "use --from-wav and --to-wav, or the browser call page") from err
        self._loop = asyncio.get_running_loop()
        self._frames: asyncio.Queue[bytes] = asyncio.Queue(maxsize=200)
        self._lock = threading.Lock()
        self._out = bytearray()
        try:
            self._in_stream = sounddevice.RawInputStream(
                samplerate=TALK_RATE, blocksize=FRAME_BYTES // 2, channels=1, dtype="int16",
                device=input_device, callback=self._captured)
            self._out_stream = sounddevice.RawOutputStream(
                samplerate=TALK_RATE, blocksize=FRAME_BYTES // 2, channels=1, dtype="int16",
                device=output_device, callback=self._wanted)
            self._in_stream.start()
            self._out_stream.start()
        except sounddevice.PortAudioError as err:
            raise NoAudioDeviceError(f"cannot open the sound card: {err}") from err

    def _captured(self, data: Any, _frames: int, _time: Any, _status: Any) -> None:
        chunk = bytes(data)
        self._loop.call_soon_threadsafe(self._offer, chunk)

    def _offer(self, chunk: bytes) -> None:
        with contextlib.suppress(asyncio.QueueFull):  # the call stalled: drop, keep it live
            self._frames.put_nowait(chunk)

    def _wanted(self, out: Any, _frames: int, _time: Any, _status: Any) -> None:
        with self._lock:
            n = min(len(out), len(self._out))
            out[:n] = self._out[:n]
            del self._out[:n]
        out[n:] = bytes(len(out) - n)

    async def read(self) -> bytes | None:
        return await self._frames.get()

    def play(self, pcm: bytes) -> None:
        with self._lock:
            self._out += pcm
            excess = len(self._out) - int(MAX_PLAYBACK_S * TALK_RATE) * 2
            if excess > 0:
                del self._out[:excess]

    async def close(self) -> None:
        for stream in (self._in_stream, self._out_stream):
            with contextlib.suppress(self._sd.PortAudioError):
                stream.stop()
                stream.close()


class WavFileIO:
    """A WAV (or any libsndfile audio) as the microphone, at real time; what the agent says is
    kept, with the time it came, and written to `out_path` on close when one is given."""

    def __init__(self, in_path: Path, out_path: Path | None = None) -> None:
        clip = read_audio(in_path, sample_rate=TALK_RATE)  # ValidationError when unreadable
        self._pcm = float_to_pcm16(clip.samples).tobytes()
        self._pos = 0
        self._started: float | None = None
        self.out_path = out_path
        self.heard = bytearray()  # the agent's audio, as played
        self.first_heard_s: float | None = None  # since the first read

    @property
    def finished(self) -> bool:
        """The whole file has been read."""
        return self._pos >= len(self._pcm)

    async def read(self) -> bytes | None:
        now = time.monotonic()
        if self._started is None:
            self._started = now
        if self._pos >= len(self._pcm):
            return None
        due = self._started + (self._pos / 2) / TALK_RATE
        if due > now:
            await asyncio.sleep(due - now)
        frame = self._pcm[self._pos:self._pos + FRAME_BYTES]
        self._pos += FRAME_BYTES
        return frame.ljust(FRAME_BYTES, b"\0")

    def play(self, pcm: bytes) -> None:
        if self.first_heard_s is None and self._started is not None and any(pcm):
            self.first_heard_s = time.monotonic() - self._started
        self.heard += pcm

    async def close(self) -> None:
        if self.out_path is not None:
            samples = np.frombuffer(bytes(self.heard), dtype=np.int16)
            try:
                await asyncio.to_thread(write_wav, self.out_path, samples, TALK_RATE)
            except OSError as err:
                raise ReautodError(f"cannot write {self.out_path}: {err}",
                                   code="write_failed") from err

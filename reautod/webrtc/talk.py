"""The caller's side of a WebRTC call, in this process: what `reautoctl talk` runs.

An aiortc peer sends `AudioIO`'s frames as its microphone track, plays the agent's track into
`AudioIO`, and reads the transcript from the data channel, exactly as the browser page does.
The offer goes to the daemon through `signal` (the control socket's `call.talk`: the socket's
own access control stands in for the page's token). The call ends when the daemon closes it,
the connection is lost, or `hangup` is set (the caller hangs up: Ctrl-C, or a test).
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, AudioResampler
from pydantic import ValidationError as PydanticValidationError

from reautod.webrtc.audio_io import FRAME_BYTES, TALK_RATE, AudioIO
from reautod.webrtc.signalling import (
    CHANNEL_MESSAGE,
    Answer,
    ClosedMessage,
    HangupMessage,
    Offer,
    TurnMessage,
)

Signal = Callable[[Offer], Awaitable[Answer]]
HANGUP_GRACE_S = 0.3  # for the hang-up message to leave before the connection closes


@dataclass(frozen=True)
class HeardTurn:
    """One line of the transcript, as the daemon recorded it."""

    speaker: Literal["agent", "caller"]
    text: str
    interrupted: bool = False


@dataclass(frozen=True)
class TalkResult:
    call_id: str
    reason: str  # why the call ended: the daemon's reason, "hung_up" or "connection_lost"


class _MicTrack(MediaStreamTrack):
    """The caller's microphone as an aiortc audio track, paced at real time (silence once the
    source has nothing more)."""

    kind = "audio"

    def __init__(self, audio: AudioIO) -> None:
        super().__init__()
        self._audio = audio
        self._pts = 0
        self._started: float | None = None
        self._done = False

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._started is None:
            self._started = time.monotonic()
        pcm = None if self._done else await self._audio.read()
        if pcm is None:
            self._done = True
            pcm = bytes(FRAME_BYTES)
        due = self._started + self._pts / TALK_RATE
        wait = due - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        samples = np.frombuffer(pcm, dtype=np.int16).reshape(1, -1)
        frame = AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = TALK_RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, TALK_RATE)
        self._pts += samples.shape[1]
        return frame


async def _play(track: Any, audio: AudioIO) -> None:
    resampler = AudioResampler(format="s16", layout="mono", rate=TALK_RATE)
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        for out in resampler.resample(frame):
            audio.play(out.to_ndarray().tobytes())


async def talk(signal: Signal, audio: AudioIO, *, lead_name: str = "",
               campaign: str | None = None, on_turn: Callable[[HeardTurn], None],
               hangup: asyncio.Event | None = None) -> TalkResult:
    """Hold one call with the agent through `audio` (`campaign`'s playbook agent when named);
    returns when it ends (see the module)."""
    loop = asyncio.get_running_loop()
    ended: asyncio.Future[str] = loop.create_future()
    hangup = hangup or asyncio.Event()
    players: set[asyncio.Task[None]] = set()

    def end(reason: str) -> None:
        if not ended.done():
            ended.set_result(reason)

    pc = RTCPeerConnection()  # no ICE servers: the daemon is on this host or this LAN
    channel = pc.createDataChannel("events")

    @channel.on("message")
    def _message(raw: Any) -> None:
        try:
            message = CHANNEL_MESSAGE.validate_json(raw)
        except (PydanticValidationError, TypeError):
            return  # not one of the channel's messages (a newer daemon's): nothing to show
        if isinstance(message, TurnMessage):
            on_turn(HeardTurn(message.speaker, message.text, message.interrupted))
        elif isinstance(message, ClosedMessage):
            end(message.reason or "ended")

    @pc.on("track")
    def _track(track: Any) -> None:
        if track.kind == "audio":
            players.add(asyncio.create_task(_play(track, audio), name="talk-play"))

    @pc.on("connectionstatechange")
    async def _state() -> None:
        if pc.connectionState in ("failed", "closed"):
            end("connection_lost")

    pc.addTrack(_MicTrack(audio))
    try:
        await pc.setLocalDescription(await pc.createOffer())
        answer = await signal(Offer(sdp=pc.localDescription.sdp, lead_name=lead_name,
                                     campaign=campaign))
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer.sdp, type="answer"))
        hung_up = asyncio.create_task(hangup.wait(), name="talk-hangup")
        try:
            waiters: set[asyncio.Future[Any]] = {hung_up, ended}
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            hung_up.cancel()
        if not ended.done():
            end("hung_up")
            if channel.readyState == "open":
                channel.send(HangupMessage().model_dump_json())
                await asyncio.sleep(HANGUP_GRACE_S)
        return TalkResult(answer.call_id, ended.result())
    finally:
        await pc.close()
        for task in players:
            task.cancel()
        for task in players:
            with contextlib.suppress(asyncio.CancelledError):
                await task

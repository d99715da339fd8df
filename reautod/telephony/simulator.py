"""A Twilio Media Streams simulator: plays Twilio's side of a bidirectional stream against ws://.

It speaks the wire format of ``shared/twilio.md`` and behaves like the phone end of a call:

* sends ``connected`` and ``start`` (sids, tracks, mediaFormat, customParameters), then one
  ``media`` message every 20 ms (160 mu-law bytes) on an absolute clock, so it does not drift:
  scripted caller audio, else line silence (0xFF), because a real phone line always streams;
* plays the agent's ``media`` through a playback buffer drained at 8000 bytes/s; echoes each
  ``mark`` once the audio received before it has played; on ``clear`` drops unplayed audio and
  echoes pending marks at once (``MarkRecord.played`` tells the two kinds of echo apart);
* sends ``dtmf`` and, at the end of the script, ``stop``; a server that closes first ends the call;
* records what the agent sent with arrival times, and counts malformed server messages instead of
  failing on them.

Driving a call::

    from reautod.telephony.simulator import (
        BargeIn, CallOptions, Dtmf, Hangup, Pause, Utterance, WaitForAgent, run_call)

    hello = await asyncio.to_thread(Utterance.from_file, "lead-hello.wav")   # encode once
    result = await run_call(
        CallOptions(url="ws://127.0.0.1:8080/twilio/media", custom_parameters={"lead": "42"}),
        [WaitForAgent(), hello, WaitForAgent(), BargeIn(hello, after_s=0.4), Dtmf("1"), Hangup()],
    )
    result.latencies_s          # voice-to-voice latency of each answered utterance
    result.barge_ins[0].clear_latency_s
    await asyncio.to_thread(result.write_agent_wav, "heard.wav")

The call clock: every time in a result and every duration in a script is in call-clock seconds
since the socket opened. With ``CallOptions.speed = s`` the call clock runs ``s`` times faster
than the wall clock (frames every 20/s ms, playback at 8000*s bytes/s); at 1.0 they are equal.
Steps are checked once per 20 ms frame, so times have that resolution.

``run_call`` raises `SimulatorError` only when it cannot connect; everything the server does after
that (closing early, garbage, silence) is reported in the `CallResult`. Many calls can run on one
loop (load tests): each costs one timer wake-up and one small send per frame.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from reautod.errors import ReautodError, ValidationError
from reautod.telephony.audio import TELEPHONY_RATE, ULAW_SILENCE
from reautod.telephony.sim_result import (
    BargeInRecord,
    CallResult,
    EndedBy,
    MarkRecord,
    MediaArrival,
    StepTimeout,
    UtteranceRecord,
    first_at_or_after,
)
from reautod.telephony.sim_script import (
    BargeIn,
    Dtmf,
    Hangup,
    Pause,
    Step,
    Utterance,
    WaitForAgent,
)

__all__ = [
    "BargeIn",
    "BargeInRecord",
    "CallOptions",
    "CallResult",
    "Dtmf",
    "EndedBy",
    "Hangup",
    "MarkRecord",
    "MediaArrival",
    "Pause",
    "SimulatedCall",
    "SimulatorError",
    "Step",
    "StepTimeout",
    "Utterance",
    "UtteranceRecord",
    "WaitForAgent",
    "run_call",
]

logger = logging.getLogger(__name__)

FRAME_BYTES = 160  # 20 ms of 8 kHz mu-law
FRAME_S = FRAME_BYTES / TELEPHONY_RATE
_SILENCE_FRAME = bytes([ULAW_SILENCE]) * FRAME_BYTES
_SILENCE_B64 = base64.b64encode(_SILENCE_FRAME).decode("ascii")
_MAX_EXAMPLES = 20


class SimulatorError(ReautodError):
    """The simulator could not open the media stream (refused, bad URL, rejected upgrade)."""

    code = "simulator_failed"


def _sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


@dataclass(frozen=True)
class CallOptions:
    """How the simulated Twilio side connects and what it announces."""

    url: str
    custom_parameters: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)  # e.g. X-Twilio-Signature
    account_sid: str = field(default_factory=lambda: _sid("AC"))
    call_sid: str = field(default_factory=lambda: _sid("CA"))
    stream_sid: str = field(default_factory=lambda: _sid("MZ"))
    tracks: tuple[str, ...] = ("inbound",)
    speed: float = 1.0  # call clock / wall clock
    omit_optional_fields: bool = False  # drop sequenceNumber, track, chunk, timestamp
    timestamp_start_ms: int = 0  # media `timestamp` of the first frame
    record_audio: bool = True  # keep caller/agent audio in the result (for WAV files)
    max_call_s: float | None = None  # call-clock cap; then hang up with EndedBy.MAX_DURATION
    open_timeout_s: float = 10.0  # wall clock
    close_timeout_s: float = 5.0  # wall clock

    def __post_init__(self) -> None:
        if not self.speed > 0:
            raise ValidationError(f"speed must be positive, got {self.speed}")
        if self.max_call_s is not None and self.max_call_s <= 0:
            raise ValidationError("max_call_s must be positive")


@dataclass
class _PendingMark:
    name: str
    position: int  # playback cursor value at which the audio before the mark has played
    received_at: float


@dataclass
class _Speaking:
    utterance: Utterance
    done: asyncio.Future[tuple[float, float]]  # (started_at, ended_at)
    offset: int = 0
    started_at: float | None = None


@dataclass
class _Waiter:
    ready: Callable[[float], bool]
    done: asyncio.Future[None]


class SimulatedCall:
    """One simulated call: holds the socket and all per-call state. Use `run_call` or `run`."""

    def __init__(self, options: CallOptions, script: Sequence[Step]) -> None:
        self._options = options
        self._script = tuple(script)
        self._sid_json = json.dumps(options.stream_sid)
        self._ws: ClientConnection | None = None
        self._t0 = 0.0
        self._ended_at: float | None = None
        self._seq = 0
        # caller side
        self._speaking: _Speaking | None = None
        self._frames_sent = 0
        self._caller_audio = bytearray()
        # agent side: bytes are placed on a stream; the cursor is how far playback has got
        self._pending = bytearray()
        self._cursor = 0
        self._spurt_started_at: float | None = None
        self._playback_ended_at: float | None = None
        self._last_media_at: float | None = None
        self._marks: deque[_PendingMark] = deque()
        self._mark_records: list[MarkRecord] = []
        self._agent_media: list[MediaArrival] = []
        self._agent_audio = bytearray()
        self._agent_received = bytearray()
        self._bytes_played = 0
        self._bytes_cleared = 0
        self._clears: list[float] = []
        self._malformed = 0
        self._malformed_examples: list[str] = []
        self._unknown_events = 0
        # script
        self._waiters: list[_Waiter] = []
        self._utterances: list[tuple[int, str, float, float, bool]] = []
        self._barge_ins: list[tuple[int, float, float]] = []
        self._dtmf: list[tuple[float, str]] = []
        self._timeouts: list[StepTimeout] = []
        self._steps_completed = 0

    def now(self) -> float:
        """Call-clock seconds since the socket opened."""
        return (time.perf_counter() - self._t0) * self._options.speed

    async def run(self) -> CallResult:
        """Connect, play the script, hang up (or see the server hang up), return the result."""
        opts = self._options
        try:
            ws = await connect(
                opts.url,
                additional_headers=dict(opts.headers),
                open_timeout=opts.open_timeout_s,
                close_timeout=opts.close_timeout_s,
                compression=None,
                ping_interval=None,
                proxy=None,
                max_size=None,
            )
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as err:
            raise SimulatorError(f"cannot open the media stream at {opts.url}: {err}") from err
        self._ws = ws
        self._t0 = time.perf_counter()
        ended_by = EndedBy.SERVER
        tasks: list[asyncio.Task[Any]] = []
        try:
            await self._send_event("connected", sequence=False, protocol="Call", version="1.0.0")
            await self._send_event("start", start=self._start_payload())
            receiver = asyncio.create_task(self._receive_loop(), name="twilio-sim-receive")
            # The script starts first so that a leading utterance is in the very first frame.
            script = asyncio.create_task(self._run_script(), name="twilio-sim-script")
            ticker = asyncio.create_task(self._tick_loop(), name="twilio-sim-tick")
            tasks = [receiver, ticker, script]
            wall_cap = None if opts.max_call_s is None else opts.max_call_s / opts.speed
            done, _ = await asyncio.wait(
                tasks, timeout=wall_cap, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                task.result()  # a bug in our own tasks surfaces here, not silently
            if script in done:
                ended_by = EndedBy.HANGUP
            elif not done:
                ended_by = EndedBy.MAX_DURATION
            self._ended_at = self.now()
            await self._cancel([ticker, script])
            if ended_by is not EndedBy.SERVER:
                with contextlib.suppress(ConnectionClosed):
                    await self._send_event(
                        "stop",
                        stop={"accountSid": opts.account_sid, "callSid": opts.call_sid},
                    )
        except ConnectionClosed:
            ended_by = EndedBy.SERVER
        finally:
            if self._ended_at is None:
                self._ended_at = self.now()
            await ws.close()
            await self._cancel(tasks)
            self._fail_waiters()
        return self._result(ended_by)

    # --- wire --------------------------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _start_payload(self) -> dict[str, Any]:
        opts = self._options
        return {
            "accountSid": opts.account_sid,
            "streamSid": opts.stream_sid,
            "callSid": opts.call_sid,
            "tracks": list(opts.tracks),
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": TELEPHONY_RATE,
                            "channels": 1},
            "customParameters": dict(opts.custom_parameters),
        }

    async def _send_event(self, event: str, *, sequence: bool = True, **body: Any) -> None:
        message: dict[str, Any] = {"event": event}
        if event != "connected":
            if sequence and not self._options.omit_optional_fields:
                message["sequenceNumber"] = str(self._next_seq())
            message["streamSid"] = self._options.stream_sid
        message.update(body)
        await self._send(json.dumps(message))

    async def _send(self, text: str) -> None:
        if self._ws is None:
            raise SimulatorError("the media stream is not open")
        await self._ws.send(text)

    async def _send_media(self, frame: bytes, tick: int) -> None:
        payload = _SILENCE_B64 if frame is _SILENCE_FRAME else base64.b64encode(frame).decode()
        if self._options.omit_optional_fields:
            text = (f'{{"event":"media","streamSid":{self._sid_json},'
                    f'"media":{{"payload":"{payload}"}}}}')
        else:
            stamp = self._options.timestamp_start_ms + tick * 20
            text = (f'{{"event":"media","sequenceNumber":"{self._next_seq()}",'
                    f'"streamSid":{self._sid_json},"media":{{"track":"inbound",'
                    f'"chunk":"{tick + 1}","timestamp":"{stamp}","payload":"{payload}"}}}}')
        await self._send(text)

    # --- the 20 ms clock: caller frames out, agent audio played, marks echoed ------------------

    async def _tick_loop(self) -> None:
        frame_wall = FRAME_S / self._options.speed
        tick = 0
        while True:
            delay = self._t0 + tick * frame_wall - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await self._tick(tick)
            tick += 1

    async def _tick(self, tick: int) -> None:
        now = self.now()
        # Marks whose audio finished playing in earlier ticks; then the next 20 ms plays.
        played = self._take_marks(self._cursor)
        self._play_frame(now)
        speaking = self._speaking
        frame = self._next_caller_frame(speaking)
        await self._echo(played, now, played=True)
        await self._send_media(frame, tick)
        self._frames_sent += 1
        if self._options.record_audio:
            self._caller_audio += frame
        if speaking is not None:
            if speaking.started_at is None:
                speaking.started_at = now
            if speaking.offset >= len(speaking.utterance.ulaw):
                self._speaking = None
                speaking.done.set_result((speaking.started_at, self.now()))
        if self._waiters:
            self._check_waiters(self.now())

    def _play_frame(self, now: float) -> None:
        chunk = bytes(self._pending[:FRAME_BYTES])
        if chunk:
            del self._pending[:FRAME_BYTES]
            self._cursor += len(chunk)
            self._bytes_played += len(chunk)
            if not self._pending:
                self._spurt_started_at = None
                self._playback_ended_at = now + len(chunk) / TELEPHONY_RATE
        if self._options.record_audio:
            self._agent_audio += chunk
            if len(chunk) < FRAME_BYTES:
                self._agent_audio += _SILENCE_FRAME[len(chunk):]

    @staticmethod
    def _next_caller_frame(speaking: _Speaking | None) -> bytes:
        if speaking is None:
            return _SILENCE_FRAME
        audio = speaking.utterance.ulaw
        frame = audio[speaking.offset:speaking.offset + FRAME_BYTES]
        speaking.offset += FRAME_BYTES
        if len(frame) < FRAME_BYTES:
            frame += _SILENCE_FRAME[len(frame):]
        return frame

    def _take_marks(self, position: int | None) -> list[_PendingMark]:
        """Pop the pending marks at or before `position` (all of them for None)."""
        taken: list[_PendingMark] = []
        while self._marks and (position is None or self._marks[0].position <= position):
            taken.append(self._marks.popleft())
        return taken

    async def _echo(self, marks: list[_PendingMark], now: float, *, played: bool) -> None:
        for mark in marks:
            self._mark_records.append(MarkRecord(mark.name, mark.received_at, now, played))
            await self._send_event("mark", mark={"name": mark.name})

    # --- what the server sends ---------------------------------------------------------------

    async def _receive_loop(self) -> None:
        if self._ws is None:
            raise SimulatorError("the media stream is not open")
        with contextlib.suppress(ConnectionClosed):
            async for message in self._ws:
                await self._handle(message)

    def _bad(self, reason: str) -> None:
        self._malformed += 1
        if len(self._malformed_examples) < _MAX_EXAMPLES:
            self._malformed_examples.append(reason)
        logger.debug("simulated call %s: malformed server message: %s",
                     self._options.call_sid, reason)

    async def _handle(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            self._bad("binary frame")
            return
        try:
            data = json.loads(message)
        except ValueError:
            self._bad("not JSON")
            return
        if not isinstance(data, dict):
            self._bad("not a JSON object")
            return
        event = data.get("event")
        if event not in ("media", "mark", "clear"):
            if isinstance(event, str):
                self._unknown_events += 1
            else:
                self._bad("no event")
            return
        if data.get("streamSid") != self._options.stream_sid:
            self._bad(f"{event} with a wrong or missing streamSid")
            return
        now = self.now()
        if event == "media":
            self._on_media(data.get("media"), now)
        elif event == "mark":
            mark = data.get("mark")
            name = mark.get("name") if isinstance(mark, dict) else None
            if not isinstance(name, str):
                self._bad("mark without a name")
                return
            self._marks.append(_PendingMark(name, self._cursor + len(self._pending), now))
        else:
            await self._on_clear(now)

    def _on_media(self, media: object, now: float) -> None:
        payload = media.get("payload") if isinstance(media, dict) else None
        if not isinstance(payload, str):
            self._bad("media without a payload")
            return
        try:
            audio = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            self._bad("media payload is not base64")
            return
        if not audio:
            self._bad("empty media payload")
            return
        if not self._pending:
            self._spurt_started_at = now
        self._pending += audio
        self._last_media_at = now
        self._agent_media.append(MediaArrival(now, len(audio)))
        if self._options.record_audio:
            self._agent_received += audio

    async def _on_clear(self, now: float) -> None:
        self._clears.append(now)
        # Marks whose audio had already played before the clear are ordinary echoes.
        played = self._take_marks(self._cursor)
        discarded = self._take_marks(None)
        self._bytes_cleared += len(self._pending)
        self._cursor += len(self._pending)
        self._pending.clear()
        if self._spurt_started_at is not None:
            self._spurt_started_at = None
            self._playback_ended_at = now
        await self._echo(played, now, played=True)
        await self._echo(discarded, now, played=False)

    # --- the script --------------------------------------------------------------------------

    async def _run_script(self) -> None:
        for index, step in enumerate(self._script):
            if isinstance(step, Hangup):
                self._steps_completed = index + 1
                return
            if isinstance(step, Utterance):
                started, ended = await self._speak(step)
                self._utterances.append((index, step.label, started, ended, False))
            elif isinstance(step, Pause):
                await self._pause(step.seconds)
            elif isinstance(step, WaitForAgent):
                if not await self._wait_for_agent(step):
                    self._timeouts.append(StepTimeout(index, "WaitForAgent", self.now()))
            elif isinstance(step, BargeIn):
                await self._barge_in(index, step)
            elif isinstance(step, Dtmf):
                self._dtmf.append((self.now(), step.digit))
                track: dict[str, str] = {}
                if not self._options.omit_optional_fields:
                    track["track"] = "inbound_track"
                await self._send_event("dtmf", dtmf={**track, "digit": step.digit})
            self._steps_completed = index + 1

    async def _speak(self, utterance: Utterance) -> tuple[float, float]:
        done: asyncio.Future[tuple[float, float]] = asyncio.get_running_loop().create_future()
        self._speaking = _Speaking(utterance, done)
        return await done

    async def _pause(self, seconds: float) -> None:
        target = self.now() + seconds
        await self._wait(lambda t: t >= target)

    async def _wait(self, ready: Callable[[float], bool]) -> None:
        if ready(self.now()):
            return
        waiter = _Waiter(ready, asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        try:
            await waiter.done
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def _check_waiters(self, now: float) -> None:
        for waiter in list(self._waiters):
            if not waiter.done.done() and waiter.ready(now):
                waiter.done.set_result(None)
                self._waiters.remove(waiter)

    def _fail_waiters(self) -> None:
        for waiter in self._waiters:
            if not waiter.done.done():
                waiter.done.cancel()
        self._waiters.clear()

    async def _wait_for_agent(self, step: WaitForAgent) -> bool:
        """True once the agent has spoken and gone quiet, False on timeout."""
        start = self.now()
        deadline = start + step.timeout_s
        quiet_s = step.quiet_ms / 1000
        spoke = bool(self._pending)
        outcome: list[bool] = []

        def ready(t: float) -> bool:
            nonlocal spoke
            last = self._last_media_at
            spoke = spoke or bool(self._pending) or (last is not None and last >= start)
            if not self._pending and (spoke or not step.require_speech):
                since = max(start, last or start, self._playback_ended_at or start)
                if t - since >= quiet_s:
                    outcome.append(True)
                    return True
            if t >= deadline:
                outcome.append(False)
                return True
            return False

        await self._wait(ready)
        return outcome[-1]

    async def _barge_in(self, index: int, step: BargeIn) -> None:
        deadline = self.now() + step.timeout_s
        onset_of_agent: list[float] = []

        def ready(t: float) -> bool:
            spurt = self._spurt_started_at
            if spurt is not None and t >= spurt + step.after_s:
                onset_of_agent.append(spurt)
                return True
            return t >= deadline

        await self._wait(ready)
        if not onset_of_agent:
            self._timeouts.append(StepTimeout(index, "BargeIn", self.now()))
            return
        started, ended = await self._speak(step.utterance)
        self._utterances.append((index, step.utterance.label, started, ended, True))
        self._barge_ins.append((index, onset_of_agent[0], started))

    # --- clean-up and the result -------------------------------------------------------------

    @staticmethod
    async def _cancel(tasks: list[asyncio.Task[Any]]) -> None:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await task

    def _result(self, ended_by: EndedBy) -> CallResult:
        opts = self._options
        arrivals = [m.at for m in self._agent_media]
        utterances = tuple(
            UtteranceRecord(i, label, started, ended, barge, first_at_or_after(arrivals, ended))
            for i, label, started, ended, barge in self._utterances
        )
        barge_ins = tuple(
            BargeInRecord(i, agent_at, onset, first_at_or_after(self._clears, onset))
            for i, agent_at, onset in self._barge_ins
        )
        # Marks never echoed: the call ended while their audio was still queued.
        unechoed = tuple(MarkRecord(m.name, m.received_at, None, False) for m in self._marks)
        ws = self._ws
        return CallResult(
            account_sid=opts.account_sid,
            call_sid=opts.call_sid,
            stream_sid=opts.stream_sid,
            ended_by=ended_by,
            duration_s=self.now() if self._ended_at is None else self._ended_at,
            close_code=None if ws is None else ws.close_code,
            close_reason=(None if ws is None else ws.close_reason) or "",
            steps_completed=self._steps_completed,
            utterances=utterances,
            barge_ins=barge_ins,
            marks=tuple(self._mark_records) + unechoed,
            clears=tuple(self._clears),
            dtmf_sent=tuple(self._dtmf),
            agent_media=tuple(self._agent_media),
            timeouts=tuple(self._timeouts),
            frames_sent=self._frames_sent,
            agent_bytes_received=self._cursor + len(self._pending),
            agent_bytes_played=self._bytes_played,
            agent_bytes_cleared=self._bytes_cleared,
            malformed=self._malformed,
            malformed_examples=tuple(self._malformed_examples),
            unknown_events=self._unknown_events,
            caller_audio=bytes(self._caller_audio),
            agent_audio=bytes(self._agent_audio),
            agent_audio_received=bytes(self._agent_received),
        )


async def run_call(options: CallOptions, script: Sequence[Step]) -> CallResult:
    """Run one simulated call to completion; see the module docstring."""
    return await SimulatedCall(options, script).run()

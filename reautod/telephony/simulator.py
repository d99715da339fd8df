"""A Twilio Media Streams simulator: plays Twilio's side of a bidirectional stream against ws://.

It speaks the wire format of ``shared/twilio.md`` and behaves like the phone end of a call:

* sends ``connected`` and ``start`` (sids, tracks, mediaFormat, customParameters), then one
  ``media`` message every 20 ms (160 mu-law bytes) on an absolute clock, so it does not drift:
  scripted caller audio, else line silence (0xFF), because a real phone line always streams;
* plays the agent's ``media`` through a playback buffer drained at 8000 bytes/s; echoes each
  ``mark`` once the audio received before it has played; on ``clear`` drops unplayed audio and
  echoes pending marks at once (``MarkRecord.played`` tells the two kinds of echo apart);
* sends ``dtmf`` and, at the end of the script (or at `Hangup`), ``stop``, then closes; a server
  that closes first ends the call (``EndedBy.SERVER``);
* records what the agent sent with arrival times, and counts malformed server messages instead of
  failing on them.

Driving a call::

    from reautod.telephony.simulator import (
        BargeIn, CallOptions, Dtmf, Hangup, Pause, Utterance, WaitForAgent, run_call)

    hello = await asyncio.to_thread(Utterance.from_file, "lead-hello.wav")  # encode once, share
    result = await run_call(
        CallOptions(url="ws://127.0.0.1:8080/twilio/media", custom_parameters={"lead": "42"},
                    headers={"X-Twilio-Signature": signature}),
        [WaitForAgent(), hello, WaitForAgent(), BargeIn(hello, after_s=0.4), Dtmf("1"), Hangup()],
    )
    result.latencies_s                    # voice-to-voice latency of each answered utterance
    result.barge_ins[0].clear_latency_s   # caller onset -> first `clear`
    result.barge_ins[0].silence_latency_s  # caller onset -> the agent's audio stops reaching them
    result.marks, result.clears, result.agent_media, result.malformed, result.as_dict()
    await asyncio.to_thread(result.write_agent_wav, "heard.wav")  # + write_caller_wav

Steps (`sim_script`): `Utterance` (mu-law bytes; `from_file` / `from_samples` resample and
encode), `Pause`, `WaitForAgent` (agent spoke, playback empty, then `quiet_ms` of quiet),
`BargeIn` (speak `after_s` into the agent's current or next talk spurt), `Dtmf`, `Hangup`,
and for bad-input tests `SendRaw` (any text/bytes mid-call), `Drop` (cut the TCP connection, no
`stop`) and ``CallOptions.before_start`` (raw messages before `start`, e.g. media);
`conversation([u1, u2])` builds the plain turn-taking script (greeting, u1, reply, u2, reply).
Results (`sim_result`): `CallResult` with `UtteranceRecord`, `BargeInRecord`, `MarkRecord`,
`MediaArrival`, `StepTimeout`. A step that times out is recorded and the script goes on.

The call clock: every time in a result and every duration in a script is in call-clock seconds
since the socket opened. With ``CallOptions.speed = s`` the call clock runs ``s`` times faster
than the wall clock (frames every 20/s ms, playback at 8000*s bytes/s); at 1.0 they are equal.
Steps are checked once per 20 ms frame, so times have that resolution. A caller utterance "ends"
when its last frame is sent: trailing silence inside the audio file counts as speech. Likewise the
agent counts as speaking while any of its audio is buffered, silent or not (pipecat sends audio
only when the bot speaks, unless an output mixer is configured).

A stream that dies mid-call (the daemon crashed) and Twilio's `<Connect action>` request that
follows, with the new stream its answer names: `reautod.telephony.sim_resume`.

``run_call`` raises `SimulatorError` only when it cannot connect (``status`` holds the HTTP status
of a refused upgrade, e.g. 403 for a bad signature); everything the server does after that
(closing early, garbage, silence) is reported in the `CallResult`. Many calls can share one loop
(load tests): each costs one timer wake-up and one small send per frame (about 40 us of CPU);
``CallResult.late_frames`` / ``max_send_lag_s`` say whether the loop kept up.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from reautod.telephony.audio import TELEPHONY_RATE
from reautod.telephony.sim_options import CallOptions, SimulatorError
from reautod.telephony.sim_playback import FRAME_BYTES, SILENCE_FRAME, PendingMark, Playback
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
    Drop,
    Dtmf,
    Hangup,
    Pause,
    SendRaw,
    Step,
    Utterance,
    WaitForAgent,
    conversation,
)
from reautod.telephony.sim_wire import (
    AgentClear,
    AgentMark,
    AgentMedia,
    Malformed,
    TwilioWire,
    UnknownEvent,
    parse_agent_message,
)

__all__ = [
    "BargeIn",
    "BargeInRecord",
    "CallOptions",
    "CallResult",
    "Drop",
    "Dtmf",
    "EndedBy",
    "Hangup",
    "MarkRecord",
    "MediaArrival",
    "Pause",
    "SendRaw",
    "SimulatedCall",
    "SimulatorError",
    "Step",
    "StepTimeout",
    "Utterance",
    "UtteranceRecord",
    "WaitForAgent",
    "conversation",
    "run_call",
]

logger = logging.getLogger(__name__)

FRAME_S = FRAME_BYTES / TELEPHONY_RATE
_SILENCE_B64 = base64.b64encode(SILENCE_FRAME).decode("ascii")
_MAX_EXAMPLES = 20


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
    """One simulated call: owns the socket, its three tasks and all per-call state.

    `run_call` is the usual way in; `run` may be called once.
    """

    def __init__(self, options: CallOptions, script: Sequence[Step]) -> None:
        self._options = options
        self._script = tuple(script)
        self._wire = TwilioWire(
            account_sid=options.account_sid, call_sid=options.call_sid,
            stream_sid=options.stream_sid, omit_optional_fields=options.omit_optional_fields,
            timestamp_start_ms=options.timestamp_start_ms,
        )
        self._playback = Playback(record=options.record_audio)
        self._ws: ClientConnection | None = None
        self._ran = False
        self._t0 = 0.0
        self._ended_at: float | None = None
        # caller side
        self._speaking: _Speaking | None = None
        self._frames_sent = 0
        self._late_frames = 0
        self._max_send_lag_s = 0.0
        self._caller_audio = bytearray()
        # what the server sent that we could not use
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
        self._dropped = False

    def now(self) -> float:
        """Call-clock seconds since the socket opened."""
        return (time.perf_counter() - self._t0) * self._options.speed

    async def run(self) -> CallResult:
        """Connect, play the script, hang up (or see the server hang up), return the result."""
        if self._ran:
            raise SimulatorError("a SimulatedCall runs once; make a new one for another call")
        self._ran = True
        opts = self._options
        tls: dict[str, Any] = {"ssl": opts.ssl} if opts.ssl is not None else {}
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
                # wss:// without a context gets websockets' default (system trust store)
                **tls,
            )
        except InvalidStatus as err:
            raise SimulatorError(
                f"the server refused the media stream at {opts.url}: {err}",
                status=err.response.status_code,
            ) from err
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as err:
            raise SimulatorError(f"cannot open the media stream at {opts.url}: {err}") from err
        self._ws = ws
        self._t0 = time.perf_counter()
        ended_by = EndedBy.SERVER
        tasks: list[asyncio.Task[Any]] = []
        try:
            await ws.send(self._wire.connected())
            for raw in opts.before_start:
                await ws.send(raw)
            await ws.send(self._wire.start(opts.tracks, opts.custom_parameters))
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
            if ended_by is EndedBy.HANGUP and self._dropped:
                ended_by = EndedBy.DROPPED
                ws.transport.abort()
            elif ended_by is not EndedBy.SERVER:
                with contextlib.suppress(ConnectionClosed):
                    await ws.send(self._wire.stop())
        except ConnectionClosed:
            ended_by = EndedBy.SERVER
        finally:
            if self._ended_at is None:
                self._ended_at = self.now()
            await ws.close()
            await self._cancel(tasks)
            self._fail_waiters()
        return self._result(ended_by)

    # --- the 20 ms clock: caller frame out, agent audio played, marks echoed -----------------

    async def _tick_loop(self) -> None:
        frame_wall = FRAME_S / self._options.speed
        tick = 0
        while True:
            # An absolute schedule: a late tick is caught up, never lost, so the clock cannot drift.
            due = self._t0 + tick * frame_wall
            await asyncio.sleep(max(due - time.perf_counter(), 0.0))
            lag = time.perf_counter() - due
            if lag > self._max_send_lag_s:
                self._max_send_lag_s = lag
            if lag > FRAME_S:
                self._late_frames += 1
            await self._tick(tick)
            tick += 1

    async def _tick(self, tick: int) -> None:
        now = self.now()
        playback = self._playback
        # Marks whose audio finished playing in earlier ticks; then the next 20 ms plays.
        due = playback.due_marks()
        playback.play_frame(now)
        speaking = self._speaking
        frame = self._next_caller_frame(speaking)
        await self._echo(due, now, played=True)
        payload = _SILENCE_B64 if frame is SILENCE_FRAME else base64.b64encode(frame).decode()
        await self._send(self._wire.media(payload, tick))
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

    @staticmethod
    def _next_caller_frame(speaking: _Speaking | None) -> bytes:
        if speaking is None:
            return SILENCE_FRAME
        audio = speaking.utterance.ulaw
        frame = audio[speaking.offset:speaking.offset + FRAME_BYTES]
        speaking.offset += FRAME_BYTES
        if len(frame) < FRAME_BYTES:
            frame += SILENCE_FRAME[len(frame):]
        return frame

    async def _send(self, text: str) -> None:
        if self._ws is None:
            raise SimulatorError("the media stream is not open")
        await self._ws.send(text)

    async def _echo(self, marks: list[PendingMark], now: float, *, played: bool) -> None:
        self._playback.echoed(marks, now, played=played)
        for mark in marks:
            await self._send(self._wire.mark(mark.name))

    # --- what the server sends -----------------------------------------------------------------

    async def _receive_loop(self) -> None:
        if self._ws is None:
            raise SimulatorError("the media stream is not open")
        stream_sid = self._options.stream_sid
        with contextlib.suppress(ConnectionClosed):
            async for raw in self._ws:
                message = parse_agent_message(raw, stream_sid)
                now = self.now()
                if isinstance(message, AgentMedia):
                    self._playback.add_media(message.audio, now)
                elif isinstance(message, AgentMark):
                    self._playback.add_mark(message.name, now)
                elif isinstance(message, AgentClear):
                    played, discarded = self._playback.clear(now)
                    await self._echo(played, now, played=True)
                    await self._echo(discarded, now, played=False)
                elif isinstance(message, UnknownEvent):
                    self._unknown_events += 1
                else:
                    self._bad(message)

    def _bad(self, message: Malformed) -> None:
        self._malformed += 1
        if len(self._malformed_examples) < _MAX_EXAMPLES:
            self._malformed_examples.append(message.reason)
        logger.debug("simulated call %s: malformed server message: %s",
                     self._options.call_sid, message.reason)

    # --- the script ----------------------------------------------------------------------------

    async def _run_script(self) -> None:
        for index, step in enumerate(self._script):
            if isinstance(step, Hangup | Drop):
                self._dropped = isinstance(step, Drop)
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
                await self._send(self._wire.dtmf(step.digit))
            elif isinstance(step, SendRaw):
                if self._ws is None:
                    raise SimulatorError("the media stream is not open")
                await self._ws.send(step.message)
            self._steps_completed = index + 1

    async def _speak(self, utterance: Utterance) -> tuple[float, float]:
        done: asyncio.Future[tuple[float, float]] = asyncio.get_running_loop().create_future()
        self._speaking = _Speaking(utterance, done)
        return await done

    async def _pause(self, seconds: float) -> None:
        # Counted in frames, not wall time: a pause is exactly that much audio on the line even
        # when a loaded loop sends some frames late.
        end = self._frames_sent + round(seconds / FRAME_S)
        await self._wait(lambda _: self._frames_sent >= end)

    async def _wait(self, ready: Callable[[float], bool]) -> None:
        """Wait until `ready(call_time)` holds; it is checked once per tick, after the frame."""
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
        playback = self._playback
        start = self.now()
        deadline = start + step.timeout_s
        quiet_s = step.quiet_ms / 1000
        spoke = playback.buffered > 0
        outcome: list[bool] = []

        def ready(t: float) -> bool:
            nonlocal spoke
            last = playback.last_media_at
            spoke = spoke or playback.buffered > 0 or (last is not None and last >= start)
            if not playback.buffered and (spoke or not step.require_speech):
                since = max(start, last or start, playback.playback_ended_at or start)
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
        agent_started: list[float] = []

        def ready(t: float) -> bool:
            spurt = self._playback.speaking_since(t)
            if spurt is not None and t >= spurt + step.after_s:
                agent_started.append(spurt)
                return True
            return t >= deadline

        await self._wait(ready)
        if not agent_started:
            self._timeouts.append(StepTimeout(index, "BargeIn", self.now()))
            return
        started, ended = await self._speak(step.utterance)
        self._utterances.append((index, step.utterance.label, started, ended, True))
        self._barge_ins.append((index, agent_started[0], started))

    # --- clean-up and the result ---------------------------------------------------------------

    @staticmethod
    async def _cancel(tasks: list[asyncio.Task[Any]]) -> None:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await task

    def _result(self, ended_by: EndedBy) -> CallResult:
        opts = self._options
        playback = self._playback
        arrivals = [m.at for m in playback.media]
        utterances = tuple(
            UtteranceRecord(i, label, started, ended, barge, first_at_or_after(arrivals, ended))
            for i, label, started, ended, barge in self._utterances
        )
        barge_ins = tuple(
            BargeInRecord(i, agent_at, onset, first_at_or_after(playback.clears, onset),
                          first_at_or_after(playback.ran_dry, onset))
            for i, agent_at, onset in self._barge_ins
        )
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
            marks=tuple(playback.mark_records) + tuple(playback.unechoed()),
            clears=tuple(playback.clears),
            dtmf_sent=tuple(self._dtmf),
            agent_media=tuple(playback.media),
            timeouts=tuple(self._timeouts),
            frames_sent=self._frames_sent,
            late_frames=self._late_frames,
            max_send_lag_s=self._max_send_lag_s,
            agent_bytes_received=playback.bytes_received,
            agent_bytes_played=playback.bytes_played,
            agent_bytes_cleared=playback.bytes_cleared,
            malformed=self._malformed,
            malformed_examples=tuple(self._malformed_examples),
            unknown_events=self._unknown_events,
            caller_audio=bytes(self._caller_audio),
            agent_audio=bytes(playback.heard),
            agent_audio_received=bytes(playback.received),
        )


async def run_call(options: CallOptions, script: Sequence[Step]) -> CallResult:
    """Run one simulated call to completion; see the module docstring."""
    return await SimulatedCall(options, script).run()

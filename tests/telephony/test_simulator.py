"""The Twilio simulator against a small real websockets server that plays the agent's side."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from http import HTTPStatus
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
import uvicorn
from fastapi import FastAPI, WebSocket
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosedError
from websockets.http11 import Request, Response

from reautod.telephony.audio import float_to_ulaw
from reautod.telephony.sim_playback import SPURT_HANGOVER_S, Playback
from reautod.telephony.simulator import (
    BargeIn,
    CallOptions,
    Drop,
    Dtmf,
    EndedBy,
    Hangup,
    Pause,
    SendRaw,
    SimulatedCall,
    SimulatorError,
    Utterance,
    WaitForAgent,
    conversation,
    run_call,
)
from tests.speech import SPEECH_DIR

pytestmark = pytest.mark.timeout(60)

SILENCE = b"\xff" * 160


def tone(seconds: float, hz: float = 440.0, rate: int = 8000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def agent_audio(seconds: float) -> bytes:
    """Agent speech stand-in: a 300 Hz tone as 8 kHz mu-law."""
    return float_to_ulaw(tone(seconds, hz=300.0))


class Peer:
    """The server end of one call: records what the simulator sends, in arrival order."""

    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws
        self.raw: list[str | bytes] = []  # everything, as it came
        self.messages: list[dict[str, Any]] = []  # the JSON objects among it
        self.caller_frames: list[bytes] = []
        # For each mark echo: how many caller media frames had arrived before it.
        self.mark_echoes: list[tuple[str, int]] = []
        self._changed = asyncio.Event()

    async def pump(self) -> None:
        with contextlib.suppress(ConnectionClosedError):
            await self._pump()

    async def _pump(self) -> None:
        async for raw in self.ws:
            self.raw.append(raw)
            try:
                message = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(message, dict):
                continue
            self.messages.append(message)
            if message["event"] == "media":
                self.caller_frames.append(base64.b64decode(message["media"]["payload"]))
            elif message["event"] == "mark":
                self.mark_echoes.append((message["mark"]["name"], len(self.caller_frames)))
            self._changed.set()

    async def wait_for(self, ready: Callable[[], bool], timeout: float = 20.0) -> None:
        async with asyncio.timeout(timeout):
            while not ready():
                self._changed.clear()
                await self._changed.wait()

    def events(self, name: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["event"] == name]

    @property
    def stream_sid(self) -> str:
        return str(self.events("start")[0]["streamSid"])

    async def send_media(self, audio: bytes, chunk: int = 160) -> None:
        for i in range(0, len(audio), chunk):
            payload = base64.b64encode(audio[i : i + chunk]).decode()
            await self.ws.send(json.dumps(
                {"event": "media", "streamSid": self.stream_sid, "media": {"payload": payload}}))

    async def send_mark(self, name: str) -> None:
        await self.ws.send(json.dumps(
            {"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}}))

    async def send_clear(self) -> None:
        await self.ws.send(json.dumps({"event": "clear", "streamSid": self.stream_sid}))

    def speech_frames(self) -> list[int]:
        return [i for i, frame in enumerate(self.caller_frames) if frame != SILENCE]


Behaviour = Callable[[Peer], Awaitable[None]]


async def _idle(peer: Peer) -> None:
    return None


@asynccontextmanager
async def agent_server(behaviour: Behaviour = _idle) -> AsyncIterator[tuple[str, list[Peer]]]:
    """A websockets server on a free port; `behaviour` runs once `start` has arrived."""
    peers: list[Peer] = []

    async def handler(ws: ServerConnection) -> None:
        peer = Peer(ws)
        peers.append(peer)
        pump = asyncio.create_task(peer.pump())
        try:
            await peer.wait_for(lambda: bool(peer.events("start")))
            await behaviour(peer)
            await pump
        finally:
            pump.cancel()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/twilio/media", peers


async def test_start_and_media_are_exactly_twilio_format() -> None:
    async with agent_server() as (url, peers):
        options = CallOptions(
            url=url, custom_parameters={"lead": "42", "campaign": "c-1"},
            headers={"X-Twilio-Signature": "sig=="}, speed=4.0, timestamp_start_ms=52,
        )
        result = await run_call(options, [Pause(0.2), Hangup()])
    peer = peers[0]
    assert peer.ws.request is not None
    assert peer.ws.request.headers["X-Twilio-Signature"] == "sig=="
    assert peer.messages[0] == {"event": "connected", "protocol": "Call", "version": "1.0.0"}
    assert peer.messages[1] == {
        "event": "start", "sequenceNumber": "1", "streamSid": options.stream_sid,
        "start": {
            "accountSid": options.account_sid, "streamSid": options.stream_sid,
            "callSid": options.call_sid, "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            "customParameters": {"lead": "42", "campaign": "c-1"},
        },
    }
    assert options.account_sid.startswith("AC") and options.call_sid.startswith("CA")
    media = peer.events("media")
    assert len(media) >= 10
    for i, message in enumerate(media):
        assert set(message) == {"event", "sequenceNumber", "streamSid", "media"}
        assert message["sequenceNumber"] == str(i + 2)
        assert message["streamSid"] == options.stream_sid
        body = message["media"]
        assert set(body) == {"track", "chunk", "timestamp", "payload"}
        assert body["track"] == "inbound"
        assert body["chunk"] == str(i + 1)
        assert body["timestamp"] == str(52 + 20 * i)
        assert base64.b64decode(body["payload"]) == SILENCE
    stop = peer.messages[-1]
    assert stop == {
        "event": "stop", "sequenceNumber": str(len(media) + 2), "streamSid": options.stream_sid,
        "stop": {"accountSid": options.account_sid, "callSid": options.call_sid},
    }
    assert result.ended_by is EndedBy.HANGUP
    assert result.frames_sent == len(media)
    assert result.steps_completed == 2


async def test_optional_fields_can_be_omitted() -> None:
    async with agent_server() as (url, peers):
        options = CallOptions(url=url, speed=4.0, omit_optional_fields=True)
        await run_call(options, [Pause(0.1), Dtmf("5")])
    peer = peers[0]
    assert "sequenceNumber" not in peer.events("start")[0]
    for message in peer.events("media"):
        assert set(message) == {"event", "streamSid", "media"}
        assert set(message["media"]) == {"payload"}
    assert peer.events("dtmf") == [
        {"event": "dtmf", "streamSid": options.stream_sid, "dtmf": {"digit": "5"}}]
    assert "sequenceNumber" not in peer.events("stop")[0]


async def test_utterance_frames_and_silence_counts() -> None:
    speech = Utterance.from_samples(tone(1.0, rate=16000), 16000, label="hello")
    assert len(speech.ulaw) == 8000
    async with agent_server() as (url, peers):
        result = await run_call(
            CallOptions(url=url, speed=4.0), [Pause(0.2), speech, Pause(0.5)])
    peer = peers[0]
    spoken = peer.speech_frames()
    assert len(spoken) == 50  # 1 s of audio = 50 frames of 20 ms
    assert spoken == list(range(spoken[0], spoken[0] + 50))  # contiguous
    assert b"".join(peer.caller_frames[spoken[0] : spoken[-1] + 1]) == speech.ulaw
    assert 9 <= spoken[0] <= 12  # after the 0.2 s pause
    assert 25 <= len(peer.caller_frames) - spoken[-1] - 1 <= 30  # 0.5 s of line silence after
    assert all(len(frame) == 160 for frame in peer.caller_frames)
    assert result.frames_sent == len(peer.caller_frames)
    [record] = result.utterances
    assert record.label == "hello" and not record.barge_in
    assert record.started_at < record.ended_at
    assert record.first_agent_media_at is None and record.latency_s is None
    # The caller recording is the exact stream that went out.
    assert result.caller_audio == b"".join(peer.caller_frames)


async def test_short_utterance_is_padded_with_line_silence() -> None:
    speech = Utterance(b"\x10" * 200)
    async with agent_server() as (url, peers):
        await run_call(CallOptions(url=url, speed=4.0), [speech, Pause(0.1)])
    frames = peers[0].caller_frames
    assert peers[0].speech_frames() == [0, 1]  # a leading utterance starts with the first frame
    assert frames[0] == b"\x10" * 160
    assert frames[1] == b"\x10" * 40 + b"\xff" * 120
    assert all(frame == SILENCE for frame in frames[2:])


async def test_marks_echo_only_after_their_audio_played() -> None:
    sent_at: list[int] = []

    async def agent(peer: Peer) -> None:
        sent_at.append(len(peer.caller_frames))
        await peer.send_media(agent_audio(0.5))  # 25 frames
        await peer.send_mark("first")
        await peer.send_media(agent_audio(0.5))
        await peer.send_mark("second")
        await peer.wait_for(lambda: len(peer.mark_echoes) == 2)

    async with agent_server(agent) as (url, peers):
        result = await run_call(
            CallOptions(url=url, speed=2.0), [WaitForAgent(quiet_ms=100), Hangup()])
    echoes = dict(peers[0].mark_echoes)
    assert [name for name, _ in peers[0].mark_echoes] == ["first", "second"]
    # The phone plays 160 bytes per caller frame: 'first' needs 25 frames, 'second' 50.
    assert 25 <= echoes["first"] - sent_at[0] <= 35
    assert 50 <= echoes["second"] - sent_at[0] <= 60
    assert [m.played for m in result.marks] == [True, True]
    assert result.marks_received == result.marks_echoed == 2
    first = result.marks[0]
    assert first.echoed_at is not None and first.echoed_at > first.received_at
    assert result.agent_bytes_received == result.agent_bytes_played == 8000
    assert result.frames_received == 50
    assert not result.timeouts
    # What the caller heard is the agent audio, in one piece, on the call timeline.
    assert agent_audio(0.5) * 2 in result.agent_audio
    assert len(result.agent_audio) == len(result.caller_audio)


async def test_clear_drops_buffered_audio_and_echoes_pending_marks() -> None:
    marks_before_clear: list[int] = []

    async def agent(peer: Peer) -> None:
        start = len(peer.caller_frames)
        await peer.send_media(agent_audio(2.0))
        await peer.send_mark("long")
        await peer.wait_for(lambda: len(peer.caller_frames) >= start + 10)
        marks_before_clear.append(len(peer.mark_echoes))
        await peer.send_clear()
        await peer.wait_for(lambda: len(peer.mark_echoes) == 1)
        await peer.send_mark("after-clear")  # nothing queued: echoed on the next frame
        await peer.wait_for(lambda: len(peer.mark_echoes) == 2)

    async with agent_server(agent) as (url, peers):
        result = await run_call(CallOptions(url=url, speed=2.0), [WaitForAgent(quiet_ms=100)])
    assert marks_before_clear == [0]
    assert [name for name, _ in peers[0].mark_echoes] == ["long", "after-clear"]
    long_mark, after = result.marks
    assert (long_mark.name, long_mark.played) == ("long", False)
    assert (after.name, after.played) == ("after-clear", True)
    assert len(result.clears) == 1
    assert long_mark.echoed_at is not None
    assert long_mark.echoed_at - result.clears[0] < 0.1
    # About 10 frames played before the clear (a few may have been in flight), the rest of
    # the 2 s was dropped unplayed.
    assert result.agent_bytes_received == 16000
    assert result.agent_bytes_played + result.agent_bytes_cleared == 16000
    assert 800 <= result.agent_bytes_played <= 16000 - 8000
    played = result.agent_bytes_played
    assert result.agent_audio_received[:played] in result.agent_audio
    assert result.agent_audio_received[: played + 160] not in result.agent_audio


async def test_barge_in_starts_after_agent_speech_onset() -> None:
    onset_frames: list[int] = []

    async def agent(peer: Peer) -> None:
        onset_frames.append(len(peer.caller_frames))
        await peer.send_media(agent_audio(3.0))
        await peer.send_mark("greeting")
        await peer.wait_for(lambda: bool(peer.speech_frames()))
        await peer.send_clear()
        await peer.wait_for(lambda: len(peer.mark_echoes) == 1)

    interruption = Utterance.from_samples(tone(0.4), 8000, label="wait")
    async with agent_server(agent) as (url, peers):
        result = await run_call(
            CallOptions(url=url, speed=2.0),
            [BargeIn(interruption, after_s=0.5), Pause(0.1), Hangup()],
        )
    peer = peers[0]
    first_speech = peer.speech_frames()[0]
    assert 20 <= first_speech - onset_frames[0] <= 40  # 0.5 s (25 frames) into its speech
    [barge] = result.barge_ins
    assert barge.onset_at - barge.agent_speech_started_at >= 0.48
    assert barge.first_clear_at is not None
    assert barge.clear_latency_s is not None and barge.clear_latency_s >= 0
    [record] = result.utterances
    assert record.barge_in and record.label == "wait"
    assert record.started_at == barge.onset_at
    assert [(m.name, m.played) for m in result.marks] == [("greeting", False)]
    assert result.agent_bytes_cleared > 16000


async def test_barge_in_when_agent_audio_arrives_with_gaps() -> None:
    """A server pacing its audio (as pipecat does) can leave the buffer dry between chunks.

    Here 100 ms of audio every 120 ms: short gaps that do not end the agent's talk spurt.
    """
    stop_sending = asyncio.Event()

    async def agent(peer: Peer) -> None:
        speech = agent_audio(3.0)
        loop = asyncio.get_running_loop()
        begin = loop.time()
        for n, i in enumerate(range(0, len(speech), 800)):
            if stop_sending.is_set():
                break
            await peer.send_media(speech[i : i + 800])
            await asyncio.sleep(max(0.0, begin + (n + 1) * 0.12 - loop.time()))
        await peer.wait_for(lambda: bool(peer.events("stop")))

    async with agent_server(agent) as (url, _):
        result = await run_call(
            CallOptions(url=url),
            [BargeIn(Utterance(b"\x10" * 800), after_s=0.4, timeout_s=2.5), Hangup()],
        )
        stop_sending.set()
    assert not result.timeouts
    [barge] = result.barge_ins
    assert 0.38 <= barge.onset_at - barge.agent_speech_started_at < 3.0
    assert barge.agent_speech_started_at < 2.0  # the spurt began with the first chunk


async def test_rejected_upgrade_reports_the_status() -> None:
    async def refuse(connection: ServerConnection, request: Request) -> Response:
        return connection.respond(HTTPStatus.FORBIDDEN, "bad signature\n")

    async with serve(_idle_handler, "127.0.0.1", 0, process_request=refuse) as server:
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(SimulatorError) as caught:
            await run_call(CallOptions(url=f"ws://127.0.0.1:{port}/twilio/media"), [Hangup()])
    assert caught.value.status == 403


async def _idle_handler(ws: ServerConnection) -> None:
    await ws.wait_closed()


async def test_barge_in_gives_up_when_the_agent_never_speaks() -> None:
    async with agent_server() as (url, _):
        result = await run_call(
            CallOptions(url=url, speed=4.0),
            [BargeIn(Utterance(b"\x10" * 800), after_s=0.1, timeout_s=0.3), Hangup()],
        )
    assert [t.step for t in result.timeouts] == ["BargeIn"]
    assert not result.utterances and not result.barge_ins
    assert result.steps_completed == 2


async def test_wait_for_agent_and_voice_to_voice_latency() -> None:
    async def agent(peer: Peer) -> None:
        # Answer once the caller has spoken and a frame of silence followed.
        def caller_done() -> bool:
            spoken = peer.speech_frames()
            return bool(spoken) and len(peer.caller_frames) > spoken[-1] + 1

        await peer.wait_for(caller_done)
        await peer.send_media(agent_audio(0.3))
        await peer.send_mark("reply")

    speech = Utterance.from_samples(tone(0.4), 8000)
    async with agent_server(agent) as (url, _):
        result = await run_call(
            CallOptions(url=url, speed=2.0),
            [speech, WaitForAgent(quiet_ms=200, timeout_s=10), Pause(0.1), Hangup()],
        )
    [record] = result.utterances
    assert record.first_agent_media_at is not None
    assert record.latency_s is not None and 0 <= record.latency_s < 5
    assert result.latencies_s == [record.latency_s]
    assert not result.timeouts
    assert result.steps_completed == 4
    # WaitForAgent returned only after the reply had played and 200 ms of quiet followed.
    assert result.marks[0].played
    assert result.duration_s >= record.first_agent_media_at + 0.2


async def test_wait_for_agent_times_out_when_the_agent_is_silent() -> None:
    async with agent_server() as (url, _):
        result = await run_call(
            CallOptions(url=url, speed=4.0), [WaitForAgent(quiet_ms=50, timeout_s=0.4)])
    assert [(t.step_index, t.step) for t in result.timeouts] == [(0, "WaitForAgent")]
    assert result.timeouts[0].at >= 0.4
    assert result.ended_by is EndedBy.HANGUP


async def test_dtmf_format() -> None:
    async with agent_server() as (url, peers):
        options = CallOptions(url=url, speed=4.0)
        result = await run_call(options, [Pause(0.1), Dtmf("7"), Dtmf("#"), Pause(0.1)])
    dtmf = peers[0].events("dtmf")
    assert [m["dtmf"] for m in dtmf] == [
        {"track": "inbound_track", "digit": "7"}, {"track": "inbound_track", "digit": "#"}]
    assert all(m["streamSid"] == options.stream_sid for m in dtmf)
    numbers = [int(m["sequenceNumber"]) for m in peers[0].messages[1:]]
    assert numbers == list(range(1, len(numbers) + 1))  # one counter over every event
    assert [d for _, d in result.dtmf_sent] == ["7", "#"]


async def test_server_that_closes_early_ends_the_call() -> None:
    async def agent(peer: Peer) -> None:
        await peer.wait_for(lambda: len(peer.caller_frames) >= 5)
        await peer.ws.close(1000, "call over")

    async with agent_server(agent) as (url, peers):
        result = await run_call(CallOptions(url=url, speed=1.0), [Pause(30.0), Hangup()])
    assert result.ended_by is EndedBy.SERVER
    assert result.close_code == 1000 and result.close_reason == "call over"
    assert result.steps_completed == 0
    assert result.duration_s < 10
    assert not peers[0].events("stop")


async def test_malformed_server_messages_are_counted_not_fatal() -> None:
    async def agent(peer: Peer) -> None:
        sid = peer.stream_sid
        junk_messages: list[str | bytes] = [
            "not json", b"\x00binary", "[1, 2]", '{"no": "event"}',
            json.dumps({"event": "media", "streamSid": sid, "media": {"payload": "@@not b64@@"}}),
            json.dumps({"event": "media", "streamSid": sid, "media": {}}),
            json.dumps({"event": "media", "streamSid": "MZother", "media": {"payload": "/w=="}}),
            json.dumps({"event": "mark", "streamSid": sid, "mark": {}}),
        ]
        for junk in junk_messages:
            await peer.ws.send(junk)
        await peer.ws.send(json.dumps({"event": "dance", "streamSid": sid}))
        await peer.send_media(agent_audio(0.1))
        await peer.send_mark("ok")
        await peer.wait_for(lambda: bool(peer.mark_echoes))

    async with agent_server(agent) as (url, _):
        result = await run_call(CallOptions(url=url, speed=2.0), [WaitForAgent(quiet_ms=60)])
    assert result.malformed == 8
    assert len(result.malformed_examples) == 8
    assert result.unknown_events == 1
    assert result.agent_bytes_received == 800
    assert [m.name for m in result.marks] == ["ok"]
    assert result.ended_by is EndedBy.HANGUP


async def test_raw_messages_for_bad_input_tests() -> None:
    huge = "x" * 200_000
    async with agent_server() as (url, peers):
        options = CallOptions(url=url, speed=4.0, before_start=(
            json.dumps({"event": "media", "media": {"payload": "/w=="}}),))
        result = await run_call(options, [
            Pause(0.06), SendRaw("not json"), SendRaw(b"\x00\x01"), SendRaw(huge), Pause(0.06)])
    peer = peers[0]
    assert json.loads(peer.raw[0])["event"] == "connected"
    assert json.loads(peer.raw[1])["event"] == "media"  # before `start`
    assert json.loads(peer.raw[2])["event"] == "start"
    at = peer.raw.index("not json")
    assert peer.raw[at + 1 : at + 3] == [b"\x00\x01", huge]
    assert at >= 3 + 3  # after three frames of media
    assert json.loads(peer.raw[-1])["event"] == "stop"
    assert result.ended_by is EndedBy.HANGUP


async def test_a_frame_too_big_for_the_server_ends_the_call() -> None:
    async with agent_server() as (url, _):  # websockets' default limit: 1 MiB
        result = await run_call(
            CallOptions(url=url, speed=4.0), [Pause(0.06), SendRaw("x" * 2_000_000), Pause(5)])
    assert result.ended_by is EndedBy.SERVER
    assert result.close_code == 1009  # message too big


async def test_drop_cuts_the_line_without_stop_or_close() -> None:
    async with agent_server() as (url, peers):
        result = await run_call(CallOptions(url=url, speed=4.0), [Pause(0.1), Drop(), Pause(5)])
    peer = peers[0]
    assert result.ended_by is EndedBy.DROPPED
    assert result.steps_completed == 2
    assert not peer.events("stop")
    assert peer.ws.close_code == 1006  # abnormal closure: no close frame was sent
    assert len(peer.caller_frames) == result.frames_sent


async def test_max_call_duration_hangs_up() -> None:
    async with agent_server() as (url, peers):
        result = await run_call(CallOptions(url=url, speed=4.0, max_call_s=0.4), [Pause(60)])
    assert result.ended_by is EndedBy.MAX_DURATION
    assert 0.3 <= result.duration_s < 10
    assert peers[0].events("stop")


async def test_a_call_object_runs_once() -> None:
    async with agent_server() as (url, _):
        call = SimulatedCall(CallOptions(url=url, speed=4.0), [Hangup()])
        result = await call.run()
        assert result.ended_by is EndedBy.HANGUP
        with pytest.raises(SimulatorError):
            await call.run()


async def test_connection_refused_raises_simulator_error() -> None:
    async with agent_server() as (url, _):
        closed_url = url
    with pytest.raises(SimulatorError) as caught:
        await run_call(CallOptions(url=closed_url, open_timeout_s=2), [Hangup()])
    assert caught.value.code == "simulator_failed"


async def test_wav_files_are_written(tmp_path: Path) -> None:
    async def agent(peer: Peer) -> None:
        await peer.send_media(agent_audio(0.4))

    speech = Utterance.from_samples(tone(0.3), 8000)
    async with agent_server(agent) as (url, _):
        result = await run_call(
            CallOptions(url=url, speed=4.0), [speech, WaitForAgent(quiet_ms=100)])
    await asyncio.to_thread(result.write_agent_wav, tmp_path / "agent.wav")
    await asyncio.to_thread(result.write_caller_wav, tmp_path / "caller.wav")
    for name in ("agent.wav", "caller.wav"):
        info = soundfile.info(str(tmp_path / name))
        assert (info.samplerate, info.channels, info.subtype) == (8000, 1, "PCM_16")
        assert info.frames == result.frames_sent * 160
    heard, _ = soundfile.read(str(tmp_path / "agent.wav"), dtype="float32")
    assert 0.2 < float(np.abs(heard).max()) <= 1.0
    assert abs(float(np.count_nonzero(np.abs(heard) > 0.01)) - 0.4 * 8000) < 400
    await asyncio.to_thread(result.write_stereo_wav, tmp_path / "call.wav")
    both, rate = soundfile.read(str(tmp_path / "call.wav"), dtype="float32")
    assert rate == 8000 and both.shape == (len(heard), 2)
    caller, _ = soundfile.read(str(tmp_path / "caller.wav"), dtype="float32")
    assert np.array_equal(both[:, 0], caller) and np.array_equal(both[:, 1], heard)


async def test_conversation_script_takes_turns() -> None:
    async def agent(peer: Peer) -> None:
        await peer.send_media(agent_audio(0.3))  # the greeting
        for turn in (1, 2):
            # Reply once the caller's turn-th utterance is over (speech then a silent frame).
            def turn_over(turn: int = turn) -> bool:
                spoken = peer.speech_frames()
                starts = [i for i in spoken if i - 1 not in spoken]
                return len(starts) >= turn and len(peer.caller_frames) > spoken[-1] + 1

            await peer.wait_for(turn_over)
            await peer.send_media(agent_audio(0.2))

    speech = Utterance.from_samples(tone(0.3), 8000)
    script = conversation([speech, speech], quiet_ms=150)
    assert [type(step).__name__ for step in script] == [
        "WaitForAgent", "Utterance", "WaitForAgent", "Utterance", "WaitForAgent", "Hangup"]
    assert conversation([speech], agent_speaks_first=False)[0] is speech
    async with agent_server(agent) as (url, _):
        result = await run_call(CallOptions(url=url, speed=2.0), script)
    assert not result.timeouts
    assert len(result.latencies_s) == 2
    first, second = result.utterances
    # Each utterance starts only after the agent's previous audio and 150 ms of quiet.
    assert first.started_at >= 0.15
    assert first.first_agent_media_at is not None
    assert second.started_at >= first.first_agent_media_at + 0.15
    assert result.agent_bytes_played == 8000 * (0.3 + 0.2 + 0.2)


async def test_audio_recording_can_be_turned_off() -> None:
    async with agent_server() as (url, _):
        result = await run_call(
            CallOptions(url=url, speed=4.0, record_audio=False), [Pause(0.1)])
    assert result.frames_sent > 0
    assert result.caller_audio == b"" and result.agent_audio == b""


async def test_many_calls_on_one_loop_stay_separate() -> None:
    async def agent(peer: Peer) -> None:
        params = peer.events("start")[0]["start"]["customParameters"]
        await peer.send_media(agent_audio(0.1 * (1 + int(params["n"]))))
        await peer.send_mark(params["n"])

    async with agent_server(agent) as (url, _):
        results = await asyncio.gather(*(
            run_call(CallOptions(url=url, speed=2.0, custom_parameters={"n": str(n)}),
                     [WaitForAgent(quiet_ms=100)])
            for n in range(8)
        ))
    for n, result in enumerate(results):
        assert result.agent_bytes_received == 800 * (1 + n)
        assert [m.name for m in result.marks] == [str(n)]
    assert len({r.stream_sid for r in results}) == 8


async def test_a_stalled_loop_is_caught_up_not_drifted() -> None:
    async def agent(peer: Peer) -> None:
        await peer.wait_for(lambda: len(peer.caller_frames) >= 5)
        time.sleep(0.3)  # noqa: ASYNC251 - block the whole loop, simulator included, on purpose

    async with agent_server(agent) as (url, peers):
        # A silent agent: the step ends on its timeout, one second of wall time after it starts.
        result = await run_call(
            CallOptions(url=url), [WaitForAgent(timeout_s=1.0, require_speech=True)])
    assert result.late_frames >= 1
    assert result.max_send_lag_s >= 0.25
    # The absolute schedule sends the missed frames late instead of stretching the stream:
    # about 50 frames in that second, where relative sleeps would have sent about 35.
    assert 46 <= result.frames_sent <= 56
    assert len(peers[0].caller_frames) == result.frames_sent


def test_playback_marks_and_clear_without_a_socket() -> None:
    playback = Playback()
    playback.add_mark("before-audio", 0.0)
    playback.add_media(b"\x01" * 400, 0.0)  # 2.5 frames
    playback.add_mark("after-400", 0.0)
    assert [m.name for m in playback.due_marks()] == ["before-audio"]
    assert playback.speaking_since(0.0) == 0.0
    playback.play_frame(0.0)
    playback.play_frame(0.02)
    assert playback.due_marks() == []
    playback.play_frame(0.04)  # the last 80 bytes, padded with line silence
    assert [m.name for m in playback.due_marks()] == ["after-400"]
    assert bytes(playback.heard) == b"\x01" * 400 + b"\xff" * 80
    assert playback.playback_ended_at == pytest.approx(0.05)
    assert playback.speaking_since(0.05 + SPURT_HANGOVER_S / 2) == 0.0  # a short gap
    assert playback.speaking_since(0.05 + SPURT_HANGOVER_S * 2) is None

    playback.add_media(b"\x02" * 1600, 1.0)
    playback.add_mark("tail", 1.0)
    playback.play_frame(1.0)
    played, discarded = playback.clear(1.01)
    assert played == [] and [m.name for m in discarded] == ["tail"]
    assert (playback.bytes_played, playback.bytes_cleared) == (560, 1440)
    assert playback.bytes_received == 2000 and playback.buffered == 0
    assert playback.speaking_since(1.01) is None
    playback.add_mark("after-clear", 1.02)
    assert [m.name for m in playback.due_marks()] == ["after-clear"]


async def test_pipecat_reads_what_the_simulator_sends() -> None:
    """pipecat's own Twilio handshake parser and serializer, behind FastAPI under uvicorn."""
    from pipecat.frames.frames import Frame, InputDTMFFrame
    from pipecat.runner.utils import parse_telephony_websocket
    from pipecat.serializers.twilio import TwilioFrameSerializer

    # FastAPI resolves the endpoint's (string) annotations in this module's globals, hence the
    # module-level FastAPI imports.
    parsed: list[tuple[str, Any]] = []
    frames: list[Frame | None] = []
    app = FastAPI()

    @app.websocket("/twilio/media")
    async def media(ws: WebSocket) -> None:
        await ws.accept()
        kind, call = await parse_telephony_websocket(ws)
        parsed.append((kind, call))
        serializer = TwilioFrameSerializer(
            call["stream_id"], params=TwilioFrameSerializer.InputParams(auto_hang_up=False))
        async for text in ws.iter_text():
            if '"dtmf"' in text:
                frames.append(await serializer.deserialize(text))

    # A socket already listening: the simulator may connect before uvicorn is fully up.
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        options = CallOptions(url=f"ws://127.0.0.1:{port}/twilio/media", speed=4.0,
                              custom_parameters={"lead_id": "L-9"})
        result = await run_call(options, [Pause(0.1), Dtmf("7"), Pause(0.1)])
    finally:
        server.should_exit = True
        await serving
    assert result.ended_by is EndedBy.HANGUP
    [(kind, call)] = parsed
    assert kind == "twilio"
    assert (call["stream_id"], call["call_id"]) == (options.stream_sid, options.call_sid)
    assert call["body"] == {"lead_id": "L-9"}
    [frame] = frames
    assert isinstance(frame, InputDTMFFrame)
    assert frame.button.value == "7"




@pytest.mark.skipif(not SPEECH_DIR.is_dir(), reason="shared speech data not present")
async def test_speech_files_go_out_as_their_mulaw_bytes() -> None:
    phone_wav = SPEECH_DIR / "dg_testing-websocket_8k_mulaw.wav"
    lead = await asyncio.to_thread(Utterance.from_file, phone_wav)
    jfk = await asyncio.to_thread(Utterance.from_file, SPEECH_DIR / "jfk.flac")
    assert lead.label == "dg_testing-websocket_8k_mulaw"
    raw = phone_wav.read_bytes()
    data_at = raw.index(b"data") + 8
    assert lead.ulaw == raw[data_at : data_at + len(lead.ulaw)]  # 8 kHz mu-law: bit-exact
    assert abs(jfk.duration_s - 11.0) < 0.01
    async with agent_server() as (url, peers):
        result = await run_call(CallOptions(url=url, speed=8.0), [lead, jfk])
    sent = b"".join(peers[0].caller_frames)
    assert sent.startswith(lead.ulaw)
    assert jfk.ulaw in sent
    frames_needed = -(-len(lead.ulaw) // 160) + -(-len(jfk.ulaw) // 160)
    assert frames_needed <= result.frames_sent <= frames_needed + 10
    assert [u.label for u in result.utterances] == [lead.label, "jfk"]


async def test_result_as_dict_is_json_ready() -> None:
    async def agent(peer: Peer) -> None:
        await peer.send_media(agent_audio(0.1))
        await peer.send_mark("m")

    async with agent_server(agent) as (url, _):
        result = await run_call(
            CallOptions(url=url, speed=4.0),
            [Utterance(b"\x10" * 320, label="hi"), WaitForAgent(quiet_ms=60), Dtmf("3")],
        )
    data = json.loads(json.dumps(result.as_dict()))
    assert data["ended_by"] == "hangup"
    assert data["marks"][0]["name"] == "m" and data["marks"][0]["played"] is True
    assert data["utterances"][0]["label"] == "hi"
    assert data["dtmf_sent"][0][1] == "3"
    assert data["marks_echoed"] == 1
    assert "caller_audio" not in data and "agent_audio" not in data


def test_script_steps_validate_their_input() -> None:
    from reautod.errors import ValidationError

    with pytest.raises(ValidationError):
        Dtmf("x")
    with pytest.raises(ValidationError):
        Pause(-1)
    with pytest.raises(ValidationError):
        Utterance(b"")
    with pytest.raises(ValidationError):
        CallOptions(url="ws://x", speed=0)

"""Pipeline test harness: a real uvicorn server on 127.0.0.1:0 in the test's loop, an observer
that records what calls report, and real speech for the simulated caller."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, WebSocket

from reautod.api.media import media_router
from reautod.call_events import CallInfo, CallState, TurnRecord
from reautod.call_recording import CallRecording
from reautod.config import Settings
from reautod.control.protocol import encode_result
from reautod.methods import Method
from reautod.pipeline.calls import Admission, CallManager, Engines
from reautod.pipeline.control import call_methods
from reautod.telephony.sim_script import Utterance
from tests.speech import SPEECH_DIR

WS_MAX_SIZE = 1024 * 1024


@dataclass
class RecordingObserver:
    """Implements CallObserver and keeps everything it was told."""

    started: list[CallInfo] = field(default_factory=list)
    turns: list[TurnRecord] = field(default_factory=list)
    barge_ins: list[tuple[str, str]] = field(default_factory=list)
    ended: list[tuple[str, str, float]] = field(default_factory=list)
    dtmf: list[tuple[str, str]] = field(default_factory=list)
    states: list[tuple[str, CallState]] = field(default_factory=list)

    def on_call_started(self, info: CallInfo) -> None:
        self.started.append(info)

    def on_turn(self, turn: TurnRecord) -> None:
        self.turns.append(turn)

    def on_barge_in(self, call_id: str, heard_text: str) -> None:
        self.barge_ins.append((call_id, heard_text))

    def on_call_state(self, call_id: str, state: CallState) -> None:
        self.states.append((call_id, state))

    def on_dtmf(self, call_id: str, digit: str) -> None:
        self.dtmf.append((call_id, digit))

    def on_call_ended(self, call_id: str, reason: str, duration_s: float) -> None:
        self.ended.append((call_id, reason, duration_s))

    def turns_of(self, call_id: str, speaker: str | None = None) -> list[TurnRecord]:
        return [t for t in self.turns if t.call_id == call_id
                and (speaker is None or t.speaker == speaker)]

    def reason(self, call_id: str) -> str | None:
        return next((r for c, r, _ in self.ended if c == call_id), None)


@dataclass
class Served:
    url: str  # ws://127.0.0.1:PORT/twilio/media
    manager: CallManager
    observer: RecordingObserver


def control_method(served: Served, name: str) -> Method:
    """The pipeline's control method `name`, wired to this media server."""
    base = served.url.replace("ws://", "http://").removesuffix("/twilio/media")
    return {m.name: m for m in call_methods(served.manager, lambda: base)}[name]


async def call_method(method: Method, **params: Any) -> Any:
    """Call a control method as the control server would: params validated first, the result
    as the JSON a client receives (clients parse it with the method's result model)."""
    return json.loads(encode_result(await method.handler(method.params.model_validate(params))))


def make_settings(**calls: Any) -> Settings:
    base: dict[str, Any] = {"reprompt_after_silence_s": 30.0, "hangup_after_silence_s": 60.0}
    base.update(calls)
    return Settings(calls=base)


@contextlib.asynccontextmanager
async def serve_media(
    engines: Engines,
    settings: Settings | None = None,
    upgrade_validator: Callable[[WebSocket], bool] | None = None,
    recording: CallRecording | None = None,
    admission: Admission | None = None,
) -> AsyncIterator[Served]:
    """The media router on a real uvicorn server; every call is closed on the way out."""
    observer = RecordingObserver()
    manager = CallManager(engines, settings or make_settings(), observer, recording,
                          admission=admission)
    await manager.start()
    app = FastAPI()
    app.include_router(media_router(manager, upgrade_validator))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                           lifespan="off", ws_max_size=WS_MAX_SIZE))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield Served(f"ws://127.0.0.1:{port}/twilio/media", manager, observer)
    finally:
        await manager.close()
        server.should_exit = True
        await asyncio.wait_for(task, 10)


def speech(name: str) -> Utterance:
    path = SPEECH_DIR / name
    if not path.exists():
        pytest.skip(f"speech fixture {path} not present")
    return Utterance.from_file(path)


@pytest.fixture(scope="session")
def short_speech() -> Utterance:
    """~2 s of real speech ("he was not an ill disposed young man")."""
    return speech("ps_librivox_sense_and_sensibility_0880.wav")


@pytest.fixture(scope="session")
def other_speech() -> Utterance:
    return speech("ps_librivox_sense_and_sensibility_0930.wav")


@pytest.fixture(scope="session")
def long_speech() -> Utterance:
    return speech("ps_librivox_sense_and_sensibility_0870.wav")


async def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    """Poll until `predicate()`; fail the test (not hang) after `timeout`."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        if predicate():
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.02)

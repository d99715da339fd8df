"""Bad input on the media socket: each case ignored with a counted warning, or the call closed
with a reason, and never affecting the other calls."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect

from reautod.telephony.simulator import CallOptions, Hangup, Utterance, WaitForAgent, run_call
from tests.pipeline.conftest import Served, serve_media, wait_for
from tests.pipeline.fakes import FakeEngines
from tests.pipeline.rawclient import closed, drain, media_event, open_call, start_event

pytestmark = pytest.mark.timeout(120)


async def _still_answers(served: Served, engines: FakeEngines, ws: object, call_id: str) -> None:
    """The call is alive: a keypress reaches the agent, which answers it."""
    before = len(engines.llm.requests)
    await ws.send(json.dumps({"event": "dtmf", "streamSid": "MZraw",  # type: ignore[attr-defined]
                              "dtmf": {"digit": "1"}}))
    await wait_for(lambda: len(engines.llm.requests) > before)
    assert engines.llm.requests[-1][1][-1].content == "[pressed 1]"
    session = served.manager.session(call_id)
    assert session is not None


async def _bad_message_is_counted(message: str | bytes, kind: str) -> None:
    engines = FakeEngines()
    async with serve_media(engines) as served:
        ws = await open_call(served.url, "bad1", direction="inbound")
        await wait_for(lambda: served.manager.session("bad1") is not None)
        await ws.send(message)
        await _still_answers(served, engines, ws, "bad1")
        info = served.manager.session("bad1").info  # type: ignore[union-attr]
        assert info.input_warnings.get(kind) == 1, info.input_warnings
        await ws.close()


async def test_non_json_is_ignored_and_counted() -> None:
    await _bad_message_is_counted("this is {not json", "not_json")


async def test_json_that_is_not_an_object_is_ignored() -> None:
    await _bad_message_is_counted("[1, 2, 3]", "not_object")


async def test_bad_base64_is_ignored_and_counted() -> None:
    await _bad_message_is_counted(
        json.dumps({"event": "media", "streamSid": "MZraw", "media": {"payload": "@@not b64@@"}}),
        "bad_base64",
    )


async def test_unknown_event_is_ignored_and_counted() -> None:
    await _bad_message_is_counted(json.dumps({"event": "wobble", "streamSid": "MZraw"}),
                                  "unknown_event")


async def test_media_before_start_is_ignored_and_counted() -> None:
    engines = FakeEngines()
    async with serve_media(engines) as served:
        ws = await connect(served.url)
        await ws.send(media_event(b"\xff" * 160))
        await ws.send(media_event(b"\xff" * 160))
        await ws.send(start_event("early", direction="inbound"))
        await wait_for(lambda: served.manager.session("early") is not None)
        info = served.manager.session("early").info  # type: ignore[union-attr]
        assert info.input_warnings == {"media_before_start": 2}
        await _still_answers(served, engines, ws, "early")
        await ws.close()


async def test_missing_optional_fields_are_accepted(short_speech: Utterance) -> None:
    engines = FakeEngines()
    async with serve_media(engines) as served:
        result = await run_call(
            CallOptions(url=served.url, omit_optional_fields=True,
                        custom_parameters={"call_id": "opt"}),
            [WaitForAgent(timeout_s=15), short_speech, WaitForAgent(timeout_s=15), Hangup()],
        )
    assert [t.text for t in served.observer.turns_of("opt", "caller")] == [
        "I would like to hear more"]
    assert result.marks and all(m.played for m in result.marks)
    assert served.observer.started[0].input_warnings == {}


async def test_huge_frame_closes_only_that_call(short_speech: Utterance) -> None:
    engines = FakeEngines()
    async with serve_media(engines) as served:
        other = asyncio.create_task(run_call(
            CallOptions(url=served.url, custom_parameters={"call_id": "ok"}),
            [WaitForAgent(timeout_s=15), short_speech, WaitForAgent(timeout_s=15), Hangup()],
        ))
        ws = await open_call(served.url, "huge", direction="inbound")
        await wait_for(lambda: served.manager.session("huge") is not None)
        await ws.send(media_event(b"\xff" * 300_000))  # 400 KB of base64: under ws_max_size
        code, reason = await closed(ws)
        result = await other
    assert (code, reason) == (1009, "protocol: message too big")
    assert served.observer.reason("huge") == "protocol: message too big"
    assert served.observer.reason("ok") == "stop"
    assert [t.text for t in served.observer.turns_of("ok", "caller")] == [
        "I would like to hear more"]
    assert result.malformed == 0


async def test_bad_start_is_refused_with_reason() -> None:
    async with serve_media(FakeEngines()) as served:
        ws = await open_call(served.url, "has spaces!")
        code, reason = await closed(ws)
    assert code == 1008 and "call_id" in reason
    assert served.observer.started == []


async def test_vanishing_client_ends_the_call_and_frees_it() -> None:
    engines = FakeEngines()
    async with serve_media(engines) as served:
        ws = await open_call(served.url, "gone")
        await wait_for(lambda: served.manager.session("gone") is not None)
        await drain(ws, 0.5)  # the greeting is streaming
        ws.transport.abort()  # no stop, no close frame: the TCP connection just dies
        await wait_for(lambda: served.observer.reason("gone") is not None)
        assert served.manager.live_calls() == []
    assert served.observer.reason("gone") == "socket_closed"

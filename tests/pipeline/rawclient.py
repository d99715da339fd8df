"""A hand-driven Twilio side for the bad-input tests: send exactly what the test says."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed


def start_event(call_id: str, stream_sid: str = "MZraw", **params: str) -> str:
    return json.dumps({
        "event": "start", "sequenceNumber": "1", "streamSid": stream_sid,
        "start": {"accountSid": "ACx", "streamSid": stream_sid, "callSid": "CAraw",
                  "tracks": ["inbound"],
                  "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                  "customParameters": {"call_id": call_id, **params}},
    })


def media_event(payload: bytes, stream_sid: str = "MZraw") -> str:
    return json.dumps({"event": "media", "streamSid": stream_sid,
                       "media": {"payload": base64.b64encode(payload).decode()}})


async def open_call(url: str, call_id: str, **params: str) -> ClientConnection:
    ws = await connect(url, max_size=None)
    try:
        await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        await ws.send(start_event(call_id, **params))
    except ConnectionClosed:
        pass  # refused at once: the caller reads the close code with `closed()`
    return ws


async def drain(ws: ClientConnection, seconds: float) -> list[dict[str, Any]]:
    """Read what the server sends for `seconds` (or until it closes)."""
    out: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    try:
        while (left := deadline - loop.time()) > 0:
            try:
                message = await asyncio.wait_for(ws.recv(), left)
            except TimeoutError:
                break
            out.append(json.loads(message))
    except ConnectionClosed:
        pass
    return out


async def closed(ws: ClientConnection, timeout: float = 10.0) -> tuple[int | None, str]:
    """Wait for the server to close; its close code and reason."""
    try:
        async with asyncio.timeout(timeout):
            async for _ in ws:
                pass
    except ConnectionClosed:
        pass
    return ws.close_code, ws.close_reason or ""

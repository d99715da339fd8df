"""A stand-in for OpenAI-compatible servers, as an httpx transport: each endpoint streams the
words it is given, can be held before its first token or mid-reply, can fail in several ways,
and records every request and every stream its client closed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class StandinEndpoint:
    """One server; `fail` is None (answers), "refuse" (no connection), "500", "400",
    "break" (the connection drops after the first token), "garbage" or "truncate" (the stream
    ends without [DONE])."""

    words: list[str] = field(default_factory=lambda: ["Hello", " there", "."])
    fail: str | None = None
    healthy: bool = True
    hold_first: asyncio.Event | None = None  # set to let the first token go
    hold_after_first: asyncio.Event | None = None  # set to let the rest go
    tokenize: str | None = "extras"  # "extras", "root" or None (404)
    requests: list[dict[str, Any]] = field(default_factory=list)
    open_streams: int = 0
    closed_early: int = 0


class _Body(httpx.AsyncByteStream):
    def __init__(self, endpoint: StandinEndpoint) -> None:
        self.endpoint = endpoint
        self.done = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        ep = self.endpoint
        ep.open_streams += 1
        try:
            if ep.hold_first is not None:
                await ep.hold_first.wait()
            if ep.fail == "garbage":
                yield b"data: {not json\n\n"
            if ep.fail == "truncate":  # what llama.cpp's Python server does on an overflow
                self.done = True
                return
            for i, word in enumerate(ep.words):
                chunk = {"choices": [{"delta": {"content": word}, "index": 0}]}
                yield f"data: {json.dumps(chunk)}\n\n".encode()
                if i == 0 and ep.fail == "break":
                    raise httpx.ReadError("connection reset by peer")
                if i == 0 and ep.hold_after_first is not None:
                    await ep.hold_after_first.wait()
            yield b'data: {"choices": [], "usage": {"prompt_tokens": 7}}\n\n'
            yield b"data: [DONE]\n\n"
            self.done = True
        finally:
            ep.open_streams -= 1

    async def aclose(self) -> None:
        if not self.done:
            self.endpoint.closed_early += 1


class Standin:
    """Endpoints by host name (`http://<name>/v1`), served through `transport`."""

    def __init__(self, *names: str) -> None:
        self.endpoints = {name: StandinEndpoint() for name in names}
        self.transport = httpx.MockTransport(self._handle)

    def __getitem__(self, name: str) -> StandinEndpoint:
        return self.endpoints[name]

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        ep = self.endpoints[request.url.host]
        if ep.fail == "refuse" or (not ep.healthy and request.url.path.endswith("/models")):
            raise httpx.ConnectError("connection refused", request=request)
        path = request.url.path
        if path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "m"}]})
        if path == "/extras/tokenize/count":
            if ep.tokenize != "extras":
                return httpx.Response(404)
            text = json.loads(request.content)["input"]
            return httpx.Response(200, json={"count": len(text.split())})
        if path == "/tokenize":
            if ep.tokenize != "root":
                return httpx.Response(404)
            text = json.loads(request.content)["content"]
            return httpx.Response(200, json={"tokens": list(range(len(text.split())))})
        if path == "/v1/chat/completions":
            ep.requests.append(json.loads(request.content))
            if ep.fail in ("500", "400"):
                return httpx.Response(int(ep.fail), text="no")
            return httpx.Response(200, headers={"content-type": "text/event-stream"},
                                  stream=_Body(ep))
        return httpx.Response(404)

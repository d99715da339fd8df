"""The Twilio media WebSocket, `/twilio/media`: admission, the `start` handshake, then the call.

Twilio stream URLs take no query string: call_id, campaign, lead_name, goal, direction and the
campaign's rendered opening arrive in the start event's customParameters. Refusals close with a
code and a reason text (`CloseCode`, telephony/stream.py): 1008 policy (bad signature, malformed
start), 1013 try again later (draining, engines missing, at capacity), 1009 message too big.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any, Literal

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from reautod.errors import ReautodError
from reautod.pipeline.calls import CallManager
from reautod.pipeline.serializer import MAX_BAD_MESSAGES, decode_message
from reautod.pipeline.twilio_media import StartInfo
from reautod.telephony.stream import MEDIA_PATH, CloseCode, StreamParameters

log = logging.getLogger(__name__)

START_TIMEOUT_S = 10.0

UpgradeValidator = Callable[[WebSocket], bool]


class _MediaFormat(BaseModel):
    model_config = ConfigDict(extra="ignore")
    encoding: Literal["audio/x-mulaw"] = "audio/x-mulaw"
    sampleRate: Literal[8000] = 8000
    channels: Literal[1] = 1


class _StartBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    streamSid: str | None = Field(None, min_length=1, max_length=128)
    callSid: str | None = Field(None, max_length=128)
    mediaFormat: _MediaFormat | None = None
    customParameters: dict[str, str] = Field(default_factory=dict)


class StartRejected(ReautodError):
    code = "bad_start"


def parse_start(message: dict[str, Any]) -> StartInfo:
    """Validate a `start` event into StartInfo; raise StartRejected saying what is wrong."""
    try:
        body = _StartBody.model_validate(message.get("start"))
        stream_sid = body.streamSid or message.get("streamSid")
        if not isinstance(stream_sid, str) or not 0 < len(stream_sid) <= 128:
            raise StartRejected("start without a streamSid")
        params = StreamParameters.model_validate(body.customParameters)
    except PydanticValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "start"
        raise StartRejected(f"bad start event: {where}: {first['msg']}") from None
    return StartInfo(
        stream_sid=stream_sid,
        call_sid=body.callSid,
        call_id=params.call_id or uuid.uuid4().hex,
        lead_name=params.lead_name.strip(),
        campaign=params.campaign,
        goal=params.goal,
        direction=params.direction.value,
        opening=(params.opening or "").strip() or None,
        resume=params.resume,
    )


async def read_start(websocket: WebSocket, warnings: Counter[str]) -> StartInfo | None:
    """Read until a valid `start`; count what comes before it. None: closed (with a reason)."""
    async with asyncio.timeout(START_TIMEOUT_S):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return None
            data = message.get("text")
            if data is None:
                data = message.get("bytes")
            if data is None:
                continue
            parsed, problem = decode_message(data)
            if parsed is None:
                warnings[problem or "bad"] += 1
                if problem == "oversized":
                    await _close(websocket, CloseCode.TOO_BIG, "message too big")
                    return None
            elif parsed["event"] == "start":
                try:
                    return parse_start(parsed)
                except StartRejected as err:
                    await _close(websocket, CloseCode.POLICY, err.message)
                    return None
            elif parsed["event"] == "connected":
                continue
            elif parsed["event"] == "media":
                warnings["media_before_start"] += 1
            else:
                warnings["unknown_before_start"] += 1
            if sum(warnings.values()) > MAX_BAD_MESSAGES:
                await _close(websocket, CloseCode.POLICY, "too many messages before start")
                return None


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    with contextlib.suppress(Exception):  # the peer may be gone already
        await websocket.close(code=code, reason=reason[:120])


def media_router(manager: CallManager, upgrade_validator: UpgradeValidator | None = None
                 ) -> APIRouter:
    """The FastAPI router serving Twilio's bidirectional media stream for `manager`'s calls."""
    router = APIRouter()

    @router.websocket(MEDIA_PATH)
    async def twilio_media(websocket: WebSocket) -> None:
        if upgrade_validator is not None and not upgrade_validator(websocket):
            log.warning("media stream upgrade refused: bad or missing signature")
            await websocket.close(code=CloseCode.POLICY, reason="invalid signature")  # HTTP 403
            return
        await websocket.accept()
        try:
            manager.check_admission()
        except ReautodError as err:
            log.warning("media stream refused: %s", err.code)
            await _close(websocket, CloseCode.TRY_LATER, err.message)
            return
        warnings: Counter[str] = Counter()
        try:
            start = await read_start(websocket, warnings)
        except TimeoutError:
            await _close(websocket, CloseCode.POLICY, "no start event")
            return
        except WebSocketDisconnect:
            return
        finally:
            if warnings:
                log.warning("media stream: ignored before start: %s", dict(warnings))
        if start is None:
            return
        try:
            await manager.run_call(websocket, start, dict(warnings))
        except ReautodError as err:
            log.warning("call %s refused: %s", start.call_id, err.code)
            await _close(websocket, CloseCode.TRY_LATER, err.message)

    return router

"""Recovery as one part of the daemon: the checkpoint recorder, Twilio's `<Connect action>`
request answered with a resuming stream (or a hang-up), the resume window's end, and
`call.recover`.

When a call's media stream ends, Twilio requests the `<Connect action>` URL
(`/twilio/stream-ended`, signed like every webhook). A call that ended for good has no
checkpoint: the answer hangs up. A call whose stream died with the daemon (or without a hang-up)
has one: the answer is a new `<Connect><Stream>` whose `resume` parameter makes the media
socket continue the call from it. Under systemd the socket unit holds the HTTP port while the
service restarts, so that request waits in the kernel's backlog instead of being refused.

A checkpoint whose window (`calls.resume_window_s`, from the stream's loss, or from start-up for
one a previous run left) has passed is closed: the call `failed` with error `interrupted`, as
start-up closes the calls of a crashed run that had none.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Protocol

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from reautod.errors import NotFoundError, ReautodError, UnavailableError, ValidationError
from reautod.live_settings import LiveSettings
from reautod.methods import Method
from reautod.recovery.checkpoint import CallCheckpoint, open_checkpoints, utcnow
from reautod.recovery.recorder import CheckpointRecorder
from reautod.recovery.results import (
    RecoverableCall,
    RecoverableCalls,
    RecoverAction,
    RecoverParams,
)
from reautod.store.abandoned import close_interrupted
from reautod.store.call_observer import call_uuid
from reautod.store.database import Database
from reautod.telephony.signatures import TwilioSignatureValidator
from reautod.telephony.stream import MEDIA_PATH, Direction, StreamParameters
from reautod.telephony.twiml import hangup_twiml, stream_twiml
from reautod.telephony.webhooks import STREAM_ENDED_PATH, XML, Rejected, verified_form

log = logging.getLogger(__name__)

ENDING_WAIT_S = 10.0  # a stream that ended while its call is still ending: wait for the end
EXPIRY_INTERVAL_S = 5.0
FINAL_STATUSES = frozenset({"completed", "canceled", "failed", "busy", "no-answer"})


class StreamEnded(BaseModel):
    """Twilio's request for the `<Connect action>` URL (extra fields ignored)."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)
    call_sid: str = Field(alias="CallSid", min_length=1)
    call_status: str | None = Field(None, alias="CallStatus")


class LiveCalls(Protocol):
    def session(self, call_id: str) -> object | None: ...


class CarrierCalls(Protocol):
    """What recovering a call by hand needs of Twilio (reautod.telephony.twilio_client)."""

    async def redirect(self, sid: str, twiml: str) -> None: ...

    async def hangup(self, sid: str, *, before_answer: bool = False) -> bool: ...


class RecoveryPart:
    """See the module docstring; `start()` it after the store, `close()` it before."""

    def __init__(self, settings: LiveSettings, state_dir: Path, db: Database, *,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.live = settings
        self.db = db
        self.store = open_checkpoints(settings.current.redis_url, state_dir)
        self.recorder = CheckpointRecorder(self.store, lambda: self.live.current.calls,
                                           clock=clock)
        self._clock = clock
        self.manager: LiveCalls | None = None
        self.carrier: CarrierCalls | None = None
        self.validator: TwilioSignatureValidator | None = None
        self._task: asyncio.Task[None] | None = None
        self.resumed = 0  # action requests answered with a resuming stream
        self.closed = 0  # calls closed when their window passed

    # -- start-up -------------------------------------------------------------------------------

    async def recoverable_ids(self) -> set[uuid.UUID]:
        """The store ids of calls that may still be resumed (start-up leaves them open)."""
        try:
            checkpoints = await self.store.all()
        except ReautodError as err:
            log.error("checkpoints unreadable (%s): calls left open are closed", err.message)
            return set()
        return {call_uuid(c.call_id) for c in checkpoints if self.recorder.resumable(c)}

    def attach(self, manager: LiveCalls, carrier: CarrierCalls | None,
               validator: TwilioSignatureValidator | None) -> None:
        self.manager, self.carrier, self.validator = manager, carrier, validator

    async def start(self) -> None:
        await self.recorder.start()
        self._task = asyncio.create_task(self._expiry_loop(), name="recovery-expiry")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.recorder.close()

    # -- Twilio's action request ----------------------------------------------------------------

    def routers(self) -> list[APIRouter]:
        """`/twilio/stream-ended` (only with Twilio: nothing could be verified else)."""
        validator = self.validator
        if validator is None:
            return []
        router = APIRouter()

        @router.post(STREAM_ENDED_PATH)
        async def stream_ended(request: Request) -> Response:
            try:
                form = await verified_form(validator, request, STREAM_ENDED_PATH, StreamEnded)
            except Rejected as rejected:
                return rejected.response
            try:
                params = await self.after_stream(form.call_sid, form.call_status)
                if params is not None:
                    twiml = self.resume_twiml(params)
                    self.resumed += 1
                    return Response(twiml, media_type=XML)
            except ReautodError as err:
                log.error("call %s: cannot resume (%s: %s); hanging up", form.call_sid,
                          err.code, err.message)
            return Response(hangup_twiml(), media_type=XML)

        return [router]

    def resume_twiml(self, params: StreamParameters) -> str:
        if self.validator is None:
            raise UnavailableError("Twilio is not configured", code="no_twilio")
        return stream_twiml(self.validator.websocket_url(MEDIA_PATH), params,
                            action_url=self.validator.url_for(STREAM_ENDED_PATH))

    async def after_stream(self, call_sid: str, status: str | None = None
                           ) -> StreamParameters | None:
        """The stream to resume call `call_sid` on, or None: the call is over (hang up)."""
        if status in FINAL_STATUSES:
            return None
        checkpoint = await self.recorder.find_by_sid(call_sid)
        if checkpoint is None:
            return None
        # a call still ending here: its end decides (a hang-up deletes the checkpoint)
        await self.recorder.wait_ended(checkpoint.call_id, ENDING_WAIT_S)
        found = await self.recorder.find(checkpoint.call_id)
        if found is None or not self.recorder.resumable(found):
            return None
        return _parameters(found)

    def _is_live(self, call_id: str) -> bool:
        return self.manager is not None and self.manager.session(call_id) is not None

    # -- the window's end -----------------------------------------------------------------------

    async def _expiry_loop(self) -> None:
        interval = min(EXPIRY_INTERVAL_S, max(0.5, self.live.current.calls.resume_window_s / 4))
        while True:
            await asyncio.sleep(interval)
            try:
                await self.expire()
            except ReautodError as err:
                log.warning("recovery: expired checkpoints not closed yet (%s)", err.message)

    async def expire(self) -> int:
        """Close the calls whose resume window has passed; returns how many."""
        closed = 0
        for checkpoint in await self.store.all():
            if self._is_live(checkpoint.call_id) or self.recorder.live(checkpoint.call_id) \
                    or self.recorder.resumable(checkpoint):
                continue
            closed += await self._close(checkpoint, "its resume window passed")
        return closed

    async def _close(self, checkpoint: CallCheckpoint, why: str) -> int:
        count = await close_interrupted(self.db, [call_uuid(checkpoint.call_id)], self._clock(),
                                        source="recovery")
        await self.recorder.forget(checkpoint.call_id)
        self.closed += count
        log.warning("call %s closed as interrupted: %s", checkpoint.call_id, why)
        return count

    # -- call.recover ---------------------------------------------------------------------------

    def control_methods(self) -> list[Method]:
        return [Method("call.recover", self._recover, RecoverParams,
                       summary="Calls that can be resumed after a crash; resume or close one",
                       changes_state=True)]

    async def _recover(self, params: RecoverParams) -> RecoverableCalls:
        if params.resume and params.close:
            raise ValidationError("give resume or close, not both")
        done: RecoverAction | None = None
        if params.resume:
            done = await self.resume_by_hand(params.resume)
        elif params.close:
            done = await self.close_by_hand(params.close)
        return (await self.recoverable()).model_copy(update={"done": done})

    async def recoverable(self) -> RecoverableCalls:
        calls = [self._row(c) for c in await self.store.all()
                 if not self._is_live(c.call_id) and not self.recorder.live(c.call_id)]
        calls.sort(key=lambda c: c.updated_at)
        return RecoverableCalls(calls=calls,
                                resume_window_s=self.live.current.calls.resume_window_s)

    def _row(self, c: CallCheckpoint) -> RecoverableCall:
        stage = c.conversation.get("stage")
        return RecoverableCall(
            call_id=c.call_id, call_sid=c.call_sid, lead_name=c.lead_name, campaign=c.campaign,
            direction=c.direction, turns=len(c.transcript),
            stage=stage if isinstance(stage, str) else None, started_at=c.started_at,
            updated_at=c.updated_at, lost_at=c.lost_at,
            resumable_until=self.recorder.resumable_until(c),
            resumable=self.recorder.resumable(c), resumes=c.resumes)

    async def _find(self, key: str) -> CallCheckpoint:
        found = await self.recorder.find(key) or await self.recorder.find_by_sid(key)
        if found is None:
            raise NotFoundError(f"no recoverable call {key}")
        if self._is_live(found.call_id) or self.recorder.live(found.call_id):
            raise ValidationError(f"call {found.call_id} is live: nothing to recover")
        return found

    async def resume_by_hand(self, key: str) -> RecoverAction:
        """Point the phone call at a resuming stream now (Twilio's REST redirect)."""
        checkpoint = await self._find(key)
        if self.carrier is None or checkpoint.call_sid is None:
            raise UnavailableError("only a Twilio call can be resumed (none is configured, or "
                                   "the call has no CallSid)", code="no_twilio")
        checkpoint.lost_at = self._clock()  # a new window, for the stream to connect in
        await self.store.save(checkpoint)
        await self.carrier.redirect(checkpoint.call_sid, self.resume_twiml(_parameters(checkpoint)))
        return RecoverAction(call_id=checkpoint.call_id, call_sid=checkpoint.call_sid,
                             action="resumed", detail="the call was pointed at a new stream")

    async def close_by_hand(self, key: str) -> RecoverAction:
        """Close the call as interrupted and hang its phone line up (when it is one)."""
        checkpoint = await self._find(key)
        detail = ""
        if self.carrier is not None and checkpoint.call_sid is not None:
            try:
                await self.carrier.hangup(checkpoint.call_sid)
                detail = "hung up at Twilio"
            except ReautodError as err:
                detail = f"Twilio hang-up failed: {err.message}"
        await self._close(checkpoint, "closed by hand")
        return RecoverAction(call_id=checkpoint.call_id, call_sid=checkpoint.call_sid,
                             action="closed", detail=detail)


def _parameters(checkpoint: CallCheckpoint) -> StreamParameters:
    return StreamParameters(call_id=checkpoint.call_id, campaign=(checkpoint.campaign or None),
                            lead_name=checkpoint.lead_name[:200],
                            direction=Direction(checkpoint.direction), resume=True)

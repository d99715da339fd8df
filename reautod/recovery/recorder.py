"""Keeping each live call's checkpoint current, and picking a call up again from it.

`CheckpointRecorder` is a CallObserver (fed like the store's, never blocking): each call's
checkpoint lives in memory and is written to its `CheckpointStore` by one task of its own,
the latest state per call, so a slow store never holds a call up and writes of one call never
overtake each other. A call that ends for good has its checkpoint deleted; a call whose media
stream died without a hang-up (`socket_closed`) keeps it, marked lost, for the resume window.

`resume` (the media socket's `resume` parameter, after `<Connect action>`) turns a checkpoint
into the new stream's CallContext: the history, the resume line and the next turn's index.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from reautod.call_events import CallInfo, CallState, TurnRecord
from reautod.config import CallSettings
from reautod.conversation import CallContext, Resumed
from reautod.errors import NotFoundError, ReautodError
from reautod.pipeline.opening import render
from reautod.recovery.checkpoint import CallCheckpoint, CheckpointStore, SaidLine, utcnow

log = logging.getLogger(__name__)

# how a call's stream ended when the call itself may go on (Twilio then asks the action URL)
LOST_STREAM_REASONS = frozenset({"socket_closed"})


class CheckpointRecorder:
    """Checkpoints of live calls (see the module docstring); `start()` it, `close()` it."""

    def __init__(self, store: CheckpointStore, calls: Callable[[], CallSettings], *,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self._calls = calls  # the settings in effect now (resume window, resume lines)
        self._clock = clock
        self.started = clock()  # checkpoints older runs left count their window from here
        self._live: dict[str, CallCheckpoint] = {}
        self._states: dict[str, Callable[[], dict[str, Any]]] = {}
        self._contexts: dict[str, CallContext] = {}  # as the call manager started them
        self._ending: dict[str, asyncio.Event] = {}  # `wait_ended` waiters
        self._dirty: dict[str, CallCheckpoint | None] = {}  # None: delete it
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self.written = 0
        self.failures = 0

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._writer(), name="checkpoints")

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait until every change so far is in the store."""
        await asyncio.wait_for(self._idle.wait(), timeout)

    async def close(self) -> None:
        with contextlib.suppress(TimeoutError):
            await self.flush()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.store.close()

    # -- CallObserver ----------------------------------------------------------------------

    def on_call_started(self, info: CallInfo) -> None:
        now = self._clock()
        known = self._live.get(info.call_id)
        if known is not None:  # a resumed call: its checkpoint came from `resume`
            known.call_sid = info.call_sid or known.call_sid
            known.updated_at = now
        else:
            context = self._contexts.get(info.call_id)
            known = CallCheckpoint(call_id=info.call_id, call_sid=info.call_sid,
                                   lead_name=info.lead_name, campaign=info.campaign,
                                   direction=info.direction, transport=info.transport,
                                   goal=context.goal if context else None,
                                   opening=context.opening if context else None,
                                   started_at=info.started_at, updated_at=now)
            self._live[info.call_id] = known
        self._save(known)

    def on_turn(self, turn: TurnRecord) -> None:
        checkpoint = self._live.get(turn.call_id)
        if checkpoint is None:
            return
        checkpoint.transcript.append(SaidLine(index=turn.index, speaker=turn.speaker,
                                              text=turn.text))
        checkpoint.updated_at = self._clock()
        self._save(checkpoint)

    def on_barge_in(self, call_id: str, heard_text: str) -> None:
        """Nothing: the interrupted agent turn arrives through `on_turn` with what was heard."""

    def on_call_state(self, call_id: str, state: CallState) -> None:
        """Nothing: live-only states."""

    def on_dtmf(self, call_id: str, digit: str) -> None:
        """Nothing: the agent's answer to it is a turn."""

    def on_call_ended(self, call_id: str, reason: str, duration_s: float) -> None:
        self._states.pop(call_id, None)
        self._contexts.pop(call_id, None)
        checkpoint = self._live.pop(call_id, None)
        if call_id in self._ending:
            self._ending.pop(call_id).set()
        if reason in LOST_STREAM_REASONS and checkpoint is not None \
                and self._calls().resume_window_s > 0:
            checkpoint.lost_at = checkpoint.updated_at = self._clock()
            self._dirty[call_id] = checkpoint
        else:
            self._dirty[call_id] = None
        self._kick()

    # -- CallCheckpoints (the call manager's side) ------------------------------------------

    def watch(self, call: CallContext, state: Callable[[], dict[str, Any]]) -> None:
        self._contexts[call.call_id] = call
        self._states[call.call_id] = state

    async def resume(self, call: CallContext) -> CallContext:
        checkpoint = await self.find(call.call_id)
        if checkpoint is None or not self.resumable(checkpoint):
            raise NotFoundError(f"call {call.call_id} has no checkpoint to resume from",
                                code="not_resumable")
        settings = self._calls()
        words = checkpoint.last_words()
        line = (render(settings.resume_line, last_words=words) if words
                else settings.resume_line_no_words)
        checkpoint.lost_at = None
        checkpoint.resumes += 1
        self._live[call.call_id] = checkpoint
        resumed = Resumed(
            history=tuple((s.speaker, s.text) for s in checkpoint.transcript),
            line=" ".join(line.split()), next_turn=checkpoint.last_index + 1,
            state=dict(checkpoint.conversation))
        log.info("call %s resumes from its checkpoint (%d turns, resume %d)", call.call_id,
                 len(checkpoint.transcript), checkpoint.resumes)
        return dataclasses.replace(
            call, lead_name=checkpoint.lead_name or call.lead_name,
            campaign=checkpoint.campaign or call.campaign, goal=checkpoint.goal or call.goal,
            direction=checkpoint.direction, opening=checkpoint.opening or call.opening,
            resumed=resumed)

    def give_back(self, call_id: str) -> None:
        checkpoint = self._live.pop(call_id, None)
        if checkpoint is not None:
            checkpoint.lost_at = self._clock()
            self._save(checkpoint)

    # -- lookups ---------------------------------------------------------------------------

    async def find(self, call_id: str) -> CallCheckpoint | None:
        """The call's checkpoint: this process's copy, else the store's."""
        if call_id in self._live:
            return self._live[call_id]
        if call_id in self._dirty:
            return self._dirty[call_id]  # written soon: this is what the store will hold
        return await self.store.load(call_id)

    async def find_by_sid(self, call_sid: str) -> CallCheckpoint | None:
        for checkpoint in self._live.values():
            if checkpoint.call_sid == call_sid:
                return checkpoint
        for pending in self._dirty.values():
            if pending is not None and pending.call_sid == call_sid:
                return pending
        return next((c for c in await self.store.all() if c.call_sid == call_sid), None)

    async def wait_ended(self, call_id: str, timeout: float) -> None:
        """Wait (at most `timeout`) until a call live here has ended."""
        if call_id in self._live:
            event = self._ending.setdefault(call_id, asyncio.Event())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout)

    def live(self, call_id: str) -> bool:
        """The call runs in this process now."""
        return call_id in self._live

    def resumable_until(self, checkpoint: CallCheckpoint) -> datetime | None:
        """When the call stops being resumable: its stream's loss (or, for a checkpoint a
        previous run left, this process's start) plus the resume window; None when it is live
        here or resuming is off."""
        window = self._calls().resume_window_s
        if window <= 0 or self.live(checkpoint.call_id):
            return None
        return (checkpoint.lost_at or self.started) + timedelta(seconds=window)

    def resumable(self, checkpoint: CallCheckpoint) -> bool:
        until = self.resumable_until(checkpoint)
        return until is not None and self._clock() <= until

    async def forget(self, call_id: str) -> None:
        """Drop a call's checkpoint now (the call was closed or recovered by hand)."""
        self._live.pop(call_id, None)
        self._states.pop(call_id, None)
        self._contexts.pop(call_id, None)
        self._dirty.pop(call_id, None)
        await self.store.delete(call_id)

    # -- the writer ------------------------------------------------------------------------

    def _save(self, checkpoint: CallCheckpoint) -> None:
        self._dirty[checkpoint.call_id] = checkpoint
        self._kick()

    def _kick(self) -> None:
        self._idle.clear()
        self._wake.set()

    async def _writer(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._dirty:
                call_id, checkpoint = next(iter(self._dirty.items()))
                del self._dirty[call_id]
                await self._write(call_id, checkpoint)
            if not self._wake.is_set():
                self._idle.set()

    async def _write(self, call_id: str, checkpoint: CallCheckpoint | None) -> None:
        try:
            if checkpoint is None:
                await self.store.delete(call_id)
                return
            state = self._states.get(call_id)
            if state is not None:
                checkpoint.conversation = state()
            await self.store.save(checkpoint.model_copy(deep=True))
            self.written += 1
        except ReautodError as err:
            self.failures += 1
            if self.failures == 1 or self.failures % 100 == 0:
                log.error("call %s: checkpoint not written (%s, %d so far)", call_id,
                          err.message, self.failures)
        except Exception:
            self.failures += 1
            log.exception("call %s: checkpoint not written", call_id)

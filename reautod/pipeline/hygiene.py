"""Call hygiene: a re-prompt after silence, a polite hang-up after more of it or at the call's
maximum duration, and a hang-up that happens even if the goodbye is never confirmed heard.

Silence is timed by pipecat's UserIdleController, fed with our own playback truth: the agent's
turn (AgentBusyFrame from the ConversationDriver: from the moment a reply starts until its last
mark is echoed) instead of pipecat's bot-speaking frames, which follow audio as it is sent, not
as it is heard. The caller's silence counts only while the line is quiet: not while the agent
thinks or plays, not while the caller speaks. After `reprompt_after_silence_s` the driver is
asked for a re-prompt (CallerSilentFrame); if the silence goes on to `hangup_after_silence_s`
in all (the re-prompt's own playing time not counted) the call ends politely. Anything the
caller does starts the count over.

Polite ends (silence, max duration, or a HangupRequestFrame from the session: operator, drain)
go down as HangupRequestFrame; the driver says the goodbye and ends the call once it is heard.
If that never happens, the call ends `GOODBYE_GRACE_S` later anyway.
"""

from __future__ import annotations

import asyncio
import logging

from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    InputDTMFFrame,
    StartFrame,
    UserIdleTimeoutUpdateFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessorSetup
from pipecat.turns.user_idle_controller import UserIdleController

from reautod.config import CallSettings
from reautod.pipeline.frames import (
    AgentBusyFrame,
    CallerSilentFrame,
    HangupRequestFrame,
    UserSpeechFrame,
    UserTurnFrame,
)
from reautod.pipeline.live import LiveCall
from reautod.pipeline.processor import CallProcessor

log = logging.getLogger(__name__)

GOODBYE_GRACE_S = 10.0  # hang up this long after the goodbye even if its mark never comes back


class CallHygiene(CallProcessor):
    """Times the caller's silence and the call's length; ends the call politely when due."""

    def __init__(self, *, live: LiveCall, calls: CallSettings) -> None:
        super().__init__(name=f"hygiene-{live.call_id}")
        self._live = live
        self._max_duration_s = calls.max_duration_s
        self._hangup_s = calls.hangup_after_silence_s
        # A re-prompt only if it comes before the hang-up.
        self._reprompt_s = calls.reprompt_after_silence_s \
            if calls.reprompt_after_silence_s < calls.hangup_after_silence_s else None
        self._reprompted = False
        self._idle = UserIdleController(user_idle_timeout=self._first_timeout())
        self._idle.add_event_handler("on_user_turn_idle", self._on_idle)
        self._timer: asyncio.Task[None] | None = None  # max duration, then the goodbye's grace
        self._ending = False

    def _first_timeout(self) -> float:
        return self._reprompt_s if self._reprompt_s is not None else self._hangup_s

    async def setup(self, setup: FrameProcessorSetup) -> None:  # type: ignore[override]
        await super().setup(setup)
        await self._idle.setup(setup)

    async def cleanup(self) -> None:
        await super().cleanup()
        await self._idle.cleanup()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, StartFrame):
            await self.push_frame(frame, direction)
            self._timer = self.create_task(self._max_duration(),
                                           name=f"max-duration-{self._live.call_id}")
            await self._idle.wait_for_user()  # until the agent speaks (or for good, inbound)
            return
        if isinstance(frame, AgentBusyFrame):
            if not self._ending:
                await self._idle.process_frame(
                    BotStartedSpeakingFrame() if frame.busy else BotStoppedSpeakingFrame())
            return  # ours alone
        if isinstance(frame, HangupRequestFrame):
            await self._begin_ending(frame.reason)
        # Passed on first: the caller's turn is on its way to a reply while the timers move.
        await self.push_frame(frame, direction)
        if isinstance(frame, UserSpeechFrame):
            await self._caller_acted()
            if not self._ending:
                await self._idle.process_frame(
                    UserStartedSpeakingFrame() if frame.speaking else UserStoppedSpeakingFrame())
                if not frame.speaking:
                    await self._idle.wait_for_user()  # a turn may bring no reply (noise)
        elif isinstance(frame, (UserTurnFrame, InputDTMFFrame)):
            await self._caller_acted()

    async def _caller_acted(self) -> None:
        """The caller did something: the silence count starts over, a re-prompt is due again."""
        if self._ending:
            return
        self._reprompted = False
        await self._idle.process_frame(UserIdleTimeoutUpdateFrame(timeout=self._first_timeout()))

    async def _on_idle(self, _controller: UserIdleController) -> None:
        if self._ending:
            return
        if self._reprompt_s is not None and not self._reprompted:
            self._reprompted = True
            await self._idle.process_frame(
                UserIdleTimeoutUpdateFrame(timeout=self._hangup_s - self._reprompt_s))
            await self.push_frame(CallerSilentFrame())
        else:
            await self._end_politely("silence")

    async def _max_duration(self) -> None:
        await asyncio.sleep(self._max_duration_s)
        await self._end_politely("max_duration")

    async def _end_politely(self, reason: str) -> None:
        if self._ending:
            return
        await self._begin_ending(reason)
        await self.push_frame(HangupRequestFrame(reason=reason))

    async def _begin_ending(self, reason: str) -> None:
        """From here the call only says goodbye: silence no longer counts; the grace starts."""
        if self._ending:
            return
        self._ending = True
        await self._idle.stop()
        if self._timer is not None and self._timer is not asyncio.current_task():
            await self.cancel_task(self._timer)
        self._timer = self.create_task(self._grace(reason),
                                       name=f"goodbye-grace-{self._live.call_id}")

    async def _grace(self, reason: str) -> None:
        await asyncio.sleep(GOODBYE_GRACE_S)
        log.info("call %s: goodbye not confirmed heard; hanging up", self._live.call_id)
        self._live.end(reason)

    async def release(self) -> None:
        self._ending = True
        await self._idle.stop()
        if self._timer is not None and not self._timer.done() \
                and self._timer is not asyncio.current_task():
            await self.cancel_task(self._timer)
        self._timer = None

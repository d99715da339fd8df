"""The base of our per-call processors: what they hold is released once, when the call ends."""

from __future__ import annotations

from pipecat.frames.frames import CancelFrame, EndFrame, Frame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor


class CallProcessor(FrameProcessor):
    """A processor owning tasks or open work of one call: `release` runs once, at EndFrame or
    CancelFrame (before the subclass passes it on) or at cleanup, whichever comes first."""

    _released = False

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, (EndFrame, CancelFrame)):
            await self._release_once()

    async def cleanup(self) -> None:
        await self._release_once()
        await super().cleanup()

    async def _release_once(self) -> None:
        if not self._released:
            self._released = True
            await self.release()

    async def release(self) -> None:
        """Cancel what this processor started; report what it still holds."""

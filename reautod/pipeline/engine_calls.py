"""What every call to a shared engine from the pipeline needs: one way to name a failure, and
closing a stream that was left early (closing it is what cancels the engine's work)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal

from reautod.errors import EngineError, ReautodError

Stage = Literal["stt", "llm", "tts"]


def engine_error(err: BaseException, stage: Stage) -> ReautodError:
    """`err` from engine `stage` as the error the call reports: codes `<stage>_timeout` and
    `<stage>_failed`; a ReautodError keeps its own code. (CancelledError is never passed here.)"""
    if isinstance(err, ReautodError):
        return err
    if isinstance(err, TimeoutError):
        return EngineError(f"{stage} timed out", code=f"{stage}_timeout")
    return EngineError(f"{stage} failed: {type(err).__name__}", code=f"{stage}_failed")


async def aclose(stream: AsyncIterator[Any]) -> None:
    """Close an engine's stream; engines cancel the request behind it."""
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()

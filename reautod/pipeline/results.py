"""Typed results of the pipeline's control methods, shared by the daemon and its clients.

A live call is the `LiveCall` of reautod.call_events (the `call.started` payload too), so the
TUI reads one shape from `calls.list` and from the event.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from reautod.call_events import LiveCall, TurnRecord
from reautod.telephony.sim_result import EndedBy


class _Result(BaseModel):
    model_config = ConfigDict(frozen=True)


class LiveCallList(_Result):
    """`calls.list`: the live calls, in start order."""

    calls: list[LiveCall]


class HangupResult(_Result):
    """`call.hangup`: the agent is saying goodbye on this call, then hangs up."""

    call_id: str
    hanging_up: bool


class SimulatorSummary(_Result):
    """What the simulated phone measured of the call."""

    ended_by: EndedBy
    duration_s: float
    close_code: int | None = Field(description="The media WebSocket's close code")
    voice_to_voice_s: list[float] = Field(description="Per answer, end of the lead's speech to "
                                                      "the first agent audio, phone side")
    marks_sent: int = Field(description="Marks the agent sent")
    marks_echoed: int = Field(description="Marks the phone echoed back (played)")
    agent_audio_s: float
    timeouts: list[str] = Field(description="The script steps that timed out (their kind)")
    malformed: int = Field(description="Messages from the daemon the phone could not use (not "
                                       "JSON, bad base64, wrong streamSid, ...)")


class SimulationResult(_Result):
    """`call.simulate`: each turn with its latencies, and the phone side's measurements."""

    call_id: str
    turns: list[TurnRecord] = Field(description="Each turn as in the `turn` event")
    simulator: SimulatorSummary

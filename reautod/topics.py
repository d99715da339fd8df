"""Payload models of the event topics that have no home in a part: one shape per topic.

A leaf (pydantic only), imported by the publishers and by the clients that parse events (the
TUI, `reautoctl events`). The other topics' payloads live beside their own kind of data:
`call.started` is a `LiveCall` and `call.state` a `CallStateEvent` (reautod/call_events.py),
`cost.update` a `CostUpdate` and `budget.alert` a `BudgetAlert` (reautod/cost/results.py),
and `agent.score` an `AgentScoreEvent` (reautod/dialogue/results.py). docs/control-protocol.md
names each; the TUI's `PAYLOADS` (tui/model.py) maps every topic to its model.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Payload(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)


class TurnEvent(_Payload):
    """`turn`: one utterance with its latencies, each counted from the end of the caller's
    speech (`stt_s`, `llm_first_token_s`, `tts_first_audio_s`, `voice_to_voice_s`)."""

    call_id: str = Field(min_length=1)
    index: int = Field(description="the turn's place in the call, from 0")
    speaker: Literal["caller", "agent"]
    text: str
    confidence: float | None = Field(description="the transcript's (caller turns), 0..1")
    started_at: datetime
    ended_at: datetime
    latencies: dict[str, float] = Field(
        default_factory=dict, description="seconds by stage, the ones measured for this turn")
    interrupted: bool = Field(False, description="the caller barged in while it played")
    error: str | None = Field(None, description="the engine failure when the turn ended in an "
                                                "apology")


class BargeIn(_Payload):
    """`barge_in`: the caller cut the agent off; what they had heard of its line."""

    call_id: str = Field(min_length=1)
    heard_text: str


class Dtmf(_Payload):
    """`dtmf`: the caller pressed a key."""

    call_id: str = Field(min_length=1)
    digit: str = Field(pattern=r"^[0-9*#]$")


class CallEnded(_Payload):
    """`call.ended`: the call's media ended. `reason` is the pipeline's ("completed",
    "hangup", "failed: ..."); the agent's verdict, when a playbook ran, is `agent.outcome`."""

    call_id: str = Field(min_length=1)
    reason: str
    duration_s: float


class AgentTransition(_Payload):
    """`agent.transition`: a call's qualifying agent moved to another stage (the first with
    `from` null)."""

    call_id: str = Field(min_length=1)
    from_stage: str | None = Field(alias="from")
    to: str
    reason: str


class AgentOutcome(_Payload):
    """`agent.outcome`: how the agent ended a playbook call (qualified, booked, ...)."""

    call_id: str = Field(min_length=1)
    outcome: str
    booked: bool


class HealthChanged(_Payload):
    """`health.changed`: one named check passed or failed (its `CheckResult` and name)."""

    name: str = Field(min_length=1)
    ok: bool
    detail: str


class DaemonStateChanged(_Payload):
    """`daemon.state`: the daemon is ready or stopping."""

    state: Literal["starting", "ready", "stopping"]


class LogRecord(_Payload):
    """`log`: a WARNING or worse log line."""

    level: str
    logger: str
    message: str


class Lagged(_Payload):
    """`lagged`: this subscriber missed `dropped` events (it read too slowly)."""

    dropped: int = Field(ge=1)


class CircuitChanged(_Payload):
    """`circuit.changed`: a circuit breaker changed state."""

    circuit: str = Field(description="the service, or service:key (one circuit per webhook "
                                     "endpoint)")
    service: str
    state: Literal["closed", "open", "half_open"]
    retry_in_s: float = Field(description="open: seconds until the half-open probe")


class AdmissionChanged(_Payload):
    """`admission.changed`: the live-call limit went down (an engine out of memory) or back up."""

    TOPIC: ClassVar[str] = "admission.changed"

    limit: int
    configured: int = Field(description="calls.max_concurrent")
    reason: str = Field(description='"<engine> out of memory", "recovering" or "recovered"')


StopReason = Literal["disk_full", "write_failed"]


class RecordingStopped(_Payload):
    """`recording.stopped`: a call's recording stopped (an alert: the call itself goes on)."""

    TOPIC: ClassVar[str] = "recording.stopped"

    call_id: str
    reason: StopReason
    detail: str

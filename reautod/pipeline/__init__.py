"""The call pipeline: one pipecat pipeline per call over the call's media (Twilio's stream today).

Public API (what the daemon wires): `CallManager` (it takes the daemon's `Conversations` and
`CallHandoff`, reautod.conversation), `CallObserver` / `CallInfo` / `TurnRecord`,
`control_methods`, `route_pipecat_logs`; the FastAPI router is `reautod.api.media.media_router`.
"""

from __future__ import annotations

from reautod.call_events import CallInfo, CallObserver, CallState, TurnRecord
from reautod.pipeline.calls import CallManager, Engines
from reautod.pipeline.control import control_methods
from reautod.pipeline.pipecat_logs import route_pipecat_logs

__all__ = [
    "CallInfo",
    "CallManager",
    "CallObserver",
    "CallState",
    "Engines",
    "TurnRecord",
    "control_methods",
    "route_pipecat_logs",
]

"""The call pipeline: one pipecat pipeline per call over the call's media (Twilio's stream today).

What the daemon wires: `calls.CallManager` (it takes the daemon's `Conversations` and
`CallHandoff`, reautod.conversation), `control.call_methods`, `route_pipecat_logs`; the
FastAPI router is `reautod.api.media.media_router`. This package module imports nothing else,
so a light module of it (`opening`, for the dialer) does not load pipecat into `reautoctl`.
"""

from __future__ import annotations

from reautod.pipeline.pipecat_logs import route_pipecat_logs

__all__ = ["route_pipecat_logs"]

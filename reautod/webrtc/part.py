"""The WebRTC part as the daemon composes it: the call page's routes (when enabled), the
`call.talk` control method (always), and the calls they started, ended at shutdown."""

from __future__ import annotations

from fastapi import APIRouter

from reautod.api.admin import Authenticator
from reautod.config import WebRTCSettings
from reautod.control.server import MethodAuditor
from reautod.errors import ConfigError
from reautod.methods import Method
from reautod.observability.events import EventBus
from reautod.pipeline.calls import CallManager
from reautod.webrtc.calls import WebRTCCalls
from reautod.webrtc.page import call_page_router
from reautod.webrtc.signalling import Answer, Offer


class WebRTCPart:
    """See the module docstring."""

    def __init__(self, settings: WebRTCSettings, calls: CallManager, bus: EventBus,
                 credentials: Authenticator | None, auditor: MethodAuditor) -> None:
        remote = [str(n) for n in settings.allowed_networks if not n.is_loopback]
        if settings.enabled and remote and credentials is None:
            raise ConfigError(
                "the call page would start calls for anyone on " + ", ".join(remote),
                [("webrtc.allowed_networks", "beyond loopback, set the jwt_secret credential "
                  "(the page then asks for an admin API token)")])
        self.settings = settings
        self.credentials = credentials  # the admin API's; None: the API is off
        self.auditor = auditor
        self.calls = WebRTCCalls(calls, bus)

    def routers(self) -> list[APIRouter]:
        if not self.settings.enabled:
            return []
        return [call_page_router(self.calls, self.settings.allowed_networks, self.credentials,
                                 self.auditor)]

    def control_methods(self) -> list[Method]:
        async def talk(params: Offer) -> Answer:
            return await self.calls.answer(params, "sounddevice")

        return [Method("call.talk", talk, Offer,
                       summary="Answer a WebRTC offer with a call (reautoctl talk)",
                       changes_state=True)]

    async def close(self) -> None:
        await self.calls.close()

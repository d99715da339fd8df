"""A real ControlServer on a temp socket with the daemon's method names and recorded data.

Handlers answer from plain data the test controls and record every request they receive, so a
test can check that a TUI action sent exactly the right method and params.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from reautod.call_events import CallState, CallStateEvent, CallStateSource, LiveCall
from reautod.campaigns.results import (
    CampaignList,
    CampaignPacing,
    CampaignSummary,
    CampaignTransition,
    TransferResult,
)
from reautod.campaigns.settings import CampaignSettings
from reautod.control.protocol import PROTOCOL_VERSION
from reautod.control.results import CheckResult, DaemonStatus, DrainResult, HealthReport
from reautod.control.server import ControlServer
from reautod.errors import NotFoundError
from reautod.methods import Method
from reautod.observability.events import EventBus
from reautod.pipeline.results import HangupResult, LiveCallList
from reautod.store.enums import CampaignStatus, LeadStatus
from reautod.topics import CallEnded
from tui.model import PAYLOADS

FIXED_NOW = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC)
RECORDED = Path(__file__).parent / "recorded_call.jsonl"


def recorded_events() -> list[tuple[str, BaseModel]]:
    """One call from start to end, as the daemon published it (tests/tui/recorded_call.jsonl),
    each payload parsed with its topic's model."""
    events: list[tuple[str, BaseModel]] = []
    for line in RECORDED.read_text().splitlines():
        if line.strip():
            message = json.loads(line)
            events.append((message["event"],
                           PAYLOADS[message["event"]].model_validate(message["data"])))
    return events


def campaign(name: str, status: CampaignStatus, leads: dict[LeadStatus, int], *,
             calls_live: int = 0, max_concurrent: int = 2, spent_micros: int = 0) -> CampaignSummary:
    """A `campaigns.list` row as the daemon builds it (the real result model)."""
    return CampaignSummary(
        id=uuid.uuid5(uuid.NAMESPACE_URL, name), name=name, status=status,
        created_at=FIXED_NOW - timedelta(days=3),
        settings=CampaignSettings(max_concurrent=max_concurrent), leads=leads,
        calls_live=calls_live,
        pacing=CampaignPacing(max_concurrent=max_concurrent, calls_per_minute=60.0),
        spent_micros=spent_micros)


def live_call(call_id: str, lead_name: str, campaign: str, state: CallState, started_at: str,
              **more: Any) -> LiveCall:
    """A `calls.list` row (and `call.started` payload) as the daemon builds it."""
    return LiveCall(call_id=call_id, stream_sid=f"MZ{call_id}", call_sid=call_id,
                    lead_name=lead_name, campaign=campaign, direction="outbound", state=state,
                    started_at=datetime.fromisoformat(started_at), **more)


# two campaigns as the daemon lists them: one dialing, one paused
CAMPAIGNS: list[CampaignSummary] = [
    campaign("solar-q4", CampaignStatus.ACTIVE,
             {LeadStatus.NEW: 140, LeadStatus.RETRY: 10, LeadStatus.QUALIFIED: 20,
              LeadStatus.NOT_INTERESTED: 30},
             calls_live=2, max_concurrent=3, spent_micros=1_250_000),
    campaign("roofing", CampaignStatus.PAUSED,
             {LeadStatus.EXHAUSTED: 60, LeadStatus.BOOKED: 20}, max_concurrent=1,
             spent_micros=4_020_000),
]


class CallIdParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    call_id: str


class CampaignParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    campaign: str


class FakeDaemon:
    def __init__(self, path: Path, extra_methods: list[Method] | None = None) -> None:
        self.path = path
        self.extra_methods = list(extra_methods or [])
        self.bus = EventBus()
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.status = DaemonStatus(
            state="ready", version="0.1.0", protocol=PROTOCOL_VERSION, pid=4242,
            started_at=FIXED_NOW - timedelta(hours=1), uptime_s=3600.0, socket=str(path),
            state_dir="/var/lib/reautod", config_file=None, database_backend="sqlite",
            session_backend="memory", http_port=8080, metrics_port=9464, live_calls=0)
        self.health = HealthReport(ok=True, checks={
            "database": CheckResult(ok=True, detail="sqlite"),
            "redis": CheckResult(ok=True, detail="memory session store"),
            "stt": CheckResult(ok=True, detail="ready"),
            "gpu": CheckResult(ok=True, detail="no GPU (CPU inference)"),
        })
        self.health_error: Exception | None = None  # raised by `health` while set
        self.calls: list[LiveCall] = []
        self.campaigns: list[CampaignSummary] = []
        self.server: ControlServer | None = None

    def methods(self) -> list[Method]:
        async def status(_p: BaseModel) -> DaemonStatus:
            return self.status.model_copy(update={"live_calls": len(self.calls)})

        async def health(_p: BaseModel) -> HealthReport:
            if self.health_error is not None:
                raise self.health_error
            return self.health

        async def calls_list(_p: BaseModel) -> LiveCallList:
            return LiveCallList(calls=self.calls)

        async def campaigns_list(_p: BaseModel) -> CampaignList:
            return CampaignList(campaigns=self.campaigns)

        def recording(name: str, answer: Callable[[dict[str, Any]], Any]) -> Any:
            async def handler(params: BaseModel) -> Any:
                body = params.model_dump()
                self.requests.append((name, body))
                if "call_id" in body and body["call_id"] not in {c.call_id for c in self.calls}:
                    raise NotFoundError(f"no live call {body['call_id']}")
                return answer(body)

            return handler

        def transfer(body: dict[str, Any]) -> TransferResult:
            return TransferResult(call_id=uuid.uuid5(uuid.NAMESPACE_URL, body["call_id"]),
                                  transferred_to="+12125550199", at=FIXED_NOW)

        def move(target: CampaignStatus) -> Callable[[dict[str, Any]], CampaignTransition]:
            def answer(body: dict[str, Any]) -> CampaignTransition:
                index = next((i for i, c in enumerate(self.campaigns)
                              if c.name == body["campaign"]), None)
                if index is None:
                    raise NotFoundError(f"no campaign {body['campaign']!r}")
                previous = self.campaigns[index].status
                self.campaigns[index] = self.campaigns[index].model_copy(update={"status": target})
                return CampaignTransition(campaign=body["campaign"], status=target,
                                          previous=previous)

            return answer

        return [
            Method("status", status),
            Method("health", health),
            Method("calls.list", calls_list),
            Method("campaigns.list", campaigns_list),
            Method("call.hangup", recording(
                "call.hangup", lambda b: HangupResult(call_id=b["call_id"], hanging_up=True)),
                CallIdParams),
            Method("call.transfer", recording("call.transfer", transfer), CallIdParams),
            Method("campaign.pause", recording("campaign.pause", move(CampaignStatus.PAUSED)),
                   CampaignParams),
            Method("campaign.resume", recording("campaign.resume", move(CampaignStatus.ACTIVE)),
                   CampaignParams),
            Method("daemon.drain", recording(
                "daemon.drain", lambda _b: DrainResult(draining=True, live_calls=len(self.calls)))),
            *self.extra_methods,
        ]

    def fail_check(self, name: str, detail: str) -> None:
        """Health as the daemon reports a failing dependency."""
        checks = {**self.health.checks, name: CheckResult(ok=False, detail=detail)}
        self.health = HealthReport(ok=False, checks=checks)

    async def start(self) -> None:
        self.server = ControlServer(self.path, self.methods(), self.bus)
        await self.server.start()

    async def stop(self) -> None:
        if self.server is not None:
            self.bus.close()
            await self.server.close()
            self.server = None
            self.bus = EventBus()

    def publish(self, event: str, payload: BaseModel) -> None:
        """Publish the topic's payload model (as the daemon does), keeping `calls` (what
        calls.list answers) in step as the daemon's registry does: it holds each call as it
        started, with the pipeline's state (never a cost)."""
        if not isinstance(payload, PAYLOADS[event]):
            raise TypeError(f"{event} carries a {PAYLOADS[event].__name__}")
        if isinstance(payload, LiveCall):
            self.calls.append(payload)
        elif isinstance(payload, CallEnded):
            self.calls = [c for c in self.calls if c.call_id != payload.call_id]
        elif isinstance(payload, CallStateEvent) and payload.source is CallStateSource.PIPELINE:
            self.calls = [c.model_copy(update={"state": CallState(payload.state)})
                          if c.call_id == payload.call_id else c for c in self.calls]
        self.bus.publish(event, payload)


class ThreadedDaemon:
    """Runs a FakeDaemon on its own loop in a thread, for tests whose app owns the main loop
    (pytest-textual-snapshot runs the app with asyncio.run)."""

    def __init__(self, daemon: FakeDaemon) -> None:
        self.daemon = daemon
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fake-daemon")

    def __enter__(self) -> ThreadedDaemon:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.daemon.start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.daemon.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def publish(self, event: str, payload: BaseModel) -> None:
        done: Future[None] = Future()

        def run() -> None:
            try:
                self.daemon.publish(event, payload)
                done.set_result(None)
            except Exception as err:
                done.set_exception(err)

        self.loop.call_soon_threadsafe(run)
        done.result(10)

    @property
    def subscribers(self) -> int:
        return self.daemon.bus.subscriber_count

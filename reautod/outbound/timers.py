"""The dialer's timers: a dialing tick over every running campaign, and the lease heartbeat
(which also sweeps calls whose final callback was lost)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any

from reautod.campaigns.dialer import CampaignPlan, Dialer
from reautod.campaigns.settings import settings_of
from reautod.errors import ReautodError
from reautod.live_settings import LiveSettings
from reautod.outbound.calls import LiveLine
from reautod.outbound.tracker import CallTracker
from reautod.store.repositories import CampaignRepository

log = logging.getLogger(__name__)

TICK_S = 1.0  # how often each running campaign is offered free call slots
LEASE_TTL = timedelta(minutes=2)
HEARTBEAT_S = 30.0  # well inside the lease TTL
ERROR_PAUSE_S = 5.0


class DialTimers:
    """Owns the dialing and heartbeat tasks; `tick` is one dialing round."""

    def __init__(self, dialer: Dialer, campaigns: CampaignRepository, live: LiveSettings, *,
                 line: LiveLine | None, tracker: CallTracker | None,
                 clock: Callable[[], datetime], monotonic: Callable[[], float]) -> None:
        self._dialer = dialer
        self._campaigns = campaigns
        self._live = live
        self._line = line
        self._tracker = tracker  # None without Twilio: nothing is dialed
        self._clock = clock
        self._monotonic = monotonic
        self._tasks: set[asyncio.Task[None]] = set()
        self._dialing = False

    async def start(self) -> None:
        """Requeue what a previous run left dialing, start the dialing timer and the lease
        heartbeat (call before READY)."""
        await self._dialer.reclaim_previous_run(self._clock())
        self._dialing = True
        self._spawn(self._dial_loop(), "dialer")
        self._spawn(self._heartbeat_loop(), "dialer-heartbeat")

    async def stop_dialing(self) -> None:
        """Place no more calls (first step of a drain); calls in flight go on."""
        self._dialing = False
        tasks = [t for t in self._tasks if t.get_name() == "dialer"]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        await self.stop_dialing()
        for task in tuple(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def tick(self) -> int:
        """One dialing round over every running campaign; returns how many calls were placed."""
        if self._tracker is None or self._line is None:
            return 0
        try:
            self._line.check_admission()
        except ReautodError:
            return 0  # draining, engines missing or full: leads stay queued
        self._dialer.limiter.per_box = self._live.current.calls.max_concurrent  # after a reload
        placed = 0
        for campaign in await self._campaigns.list():
            if campaign.status != "active":
                continue
            try:
                settings = settings_of(campaign)
            except ValueError as err:
                log.error("campaign %s has invalid settings, not dialed: %s", campaign.name, err)
                continue
            report = await self._dialer.tick(CampaignPlan.of(campaign.id, settings), self._clock(),
                                             self._monotonic())
            placed += report.dialed
        return placed

    async def _dial_loop(self) -> None:
        while self._dialing:
            try:
                await self.tick()
                await asyncio.sleep(TICK_S)
            except ReautodError as err:
                log.warning("dialer: %s (%s)", err.message, err.code)
                await asyncio.sleep(ERROR_PAUSE_S)
            except Exception:  # the timer must outlive one bad tick; the traceback is logged
                log.exception("dialer tick failed")
                await asyncio.sleep(ERROR_PAUSE_S)

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            try:
                lost = await self._dialer.heartbeat(self._clock())
            except ReautodError as err:
                log.warning("dialer heartbeat: %s (%s)", err.message, err.code)
                continue
            except Exception:  # as for the tick: a lost heartbeat loop would lose every lease
                log.exception("dialer heartbeat failed")
                continue
            if lost:
                log.warning("dialer: lost the lease on %d lead(s) in flight", len(lost))
            if self._tracker is not None:
                try:
                    await self._tracker.sweep_stale()
                except ReautodError as err:
                    log.warning("stale call sweep: %s (%s)", err.message, err.code)

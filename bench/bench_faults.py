"""What a dependency failing costs a call, with the daemon's default [resilience] policies.

Puts the fault proxy (tests/fixtures/fault_proxy.py) between the live-session store and a real
Redis, and between the outbox and a webhook receiver, and prints for each fault: how long until
the circuit opens, what one operation costs before and while it is open, how long after the
dependency returns until the circuit is closed again, and what was lost. The LLM part times a
request refused by an open llm circuit (what the caller waits before the scripted line).

The kill -9 part runs a real daemon (test models) with five live simulated calls, kills it with
SIGKILL after each call's first reply, restarts it on the same port and state, and reports the
turns lost, the calls resumed (Twilio's `<Connect action>` request played by the simulator) and
the seconds from the dead stream to the resumed one (tests/recovery/crash_rig.py). Without
socket activation the action request is retried until the new daemon listens, so those seconds
are the restart's.

    PYTHONPATH=. .venv/bin/python bench/bench_faults.py                  # Redis at 127.0.0.1:6379
    PYTHONPATH=. .venv/bin/python bench/bench_faults.py --redis redis://127.0.0.1:6380/0
    PYTHONPATH=. .venv/bin/python bench/bench_faults.py --only kill9
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

from reautod.config import Settings
from reautod.engines.base import ChatMessage
from reautod.engines.catalog import build_test_models
from reautod.errors import EngineError, ReautodError
from reautod.integrations.credentials import Credentials
from reautod.integrations.delivery import DeliveryWorker
from reautod.integrations.settings import DeliverySettings, WebhookEndpoint
from reautod.integrations.webhooks import WebhookDeliverer, WebhookPublisher
from reautod.resilience.llm import GuardedLanguageModel
from reautod.resilience.service import Resilience
from reautod.resilience.settings import ResilienceSettings
from reautod.sessions import FallbackSessionStore, RedisSessionStore
from reautod.store.database import Database
from reautod.store.repositories import OutboxRepository
from tests.fixtures.daemon import DaemonProcess
from tests.fixtures.fault_proxy import FaultProxy
from tests.integrations.conftest import Clock
from tests.integrations.helpers import contact, scored
from tests.integrations.standins import WebhookReceiver
from tests.pipeline.fakes import FakeLLM
from tests.recovery.crash_rig import kill_9_mid_calls


async def timed(op: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    with contextlib.suppress(ReautodError):
        await op()
    return time.perf_counter() - started


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


async def redis_fault(fault: str, url: str) -> None:
    target = urlsplit(url)
    with FaultProxy(target.hostname or "127.0.0.1", target.port or 6379) as proxy:
        prefix = f"reautod-bench:{uuid.uuid4().hex[:8]}:"
        resilience = Resilience(ResilienceSettings())
        store = FallbackSessionStore(RedisSessionStore(
            f"redis://127.0.0.1:{proxy.port}{target.path or '/0'}", prefix=prefix), resilience)
        snapshot = {"state": "listening", "turns": 3}
        healthy = [await timed(lambda: store.put("c1", snapshot)) for _ in range(50)]
        getattr(proxy, fault)()
        started, puts, costs = time.perf_counter(), 0, []
        while resilience.state("redis") != "open":
            key = f"c{puts}"
            costs.append(await timed(lambda key=key: store.put(key, snapshot)))
            puts += 1
        to_open = time.perf_counter() - started
        while_open = [await timed(lambda: store.put("c1", snapshot)) for _ in range(50)]
        proxy.heal()
        healed = time.perf_counter()
        while resilience.state("redis") != "closed" or store.degraded:
            await asyncio.sleep(0.1)
            await timed(lambda: store.put("c1", snapshot))  # calls keep writing: one is the probe
        back = time.perf_counter() - healed
        direct = RedisSessionStore(url, prefix=prefix)  # what a restarted daemon would read
        lost = len({"c1", *(f"c{i}" for i in range(puts))} - set(await direct.all()))
        for key in await direct.all():
            await direct.delete(key)
        await direct.close()
        await store.close()
        print(f"redis {fault}: healthy put median {ms(statistics.median(healthy))}; circuit "
              f"open after {puts} puts, {to_open:.2f} s (puts cost {ms(max(costs))} at most); "
              f"put while open median {ms(statistics.median(while_open))} (in-process); "
              f"closed and written back {back:.1f} s after Redis returned; sessions lost: {lost}")


async def webhook_outage() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite+aiosqlite:///{Path(tmp) / 'b.db'}", Settings().database)
        await db.open()
        await db.upgrade("head")
        secret = Path(tmp) / "crm_secret"
        secret.write_text("s")
        creds = Credentials({"CREDENTIALS_DIRECTORY": tmp})
        resilience, clock = Resilience(ResilienceSettings()), Clock()
        settings = DeliverySettings()
        policy = resilience.policy("webhooks")
        with WebhookReceiver() as receiver, \
                FaultProxy("127.0.0.1", int(receiver.base_url.rsplit(":", 1)[1])) as proxy:
            endpoint = WebhookEndpoint(name="crm", url=f"http://127.0.0.1:{proxy.port}/hook",
                                       secret_credential="crm_secret")
            repo = OutboxRepository(db)
            work = DeliveryWorker(repo, {"webhook": WebhookDeliverer([endpoint], creds)},
                                  settings, clock=clock, resilience=resilience)
            publisher = WebhookPublisher(repo, [endpoint])
            proxy.reset()
            for score in range(20):
                await publisher.publish(scored(await contact(db), score))
            rounds = 0
            simulated = 0.0
            while simulated < 3600:  # an hour of the outbox's clock, one poll interval a round
                await work.run_once()
                clock.advance(seconds=settings.poll_interval_s)
                simulated += settings.poll_interval_s
                rounds += 1
                if rounds % 50 == 0:
                    await asyncio.sleep(0)
            tried = proxy.connections
            counts = await repo.counts()
            proxy.heal()
            await asyncio.sleep(policy.recovery_s)
            healed = time.perf_counter()
            while len(receiver.accepted()) < 20:
                await work.run_once()
                clock.advance(seconds=settings.poll_interval_s)
            took = time.perf_counter() - healed
            await work.stop()
        await db.close()
        print(f"webhook receiver down for 1 h (outbox clock): {tried} connection attempts "
              f"for 20 events (circuit: {policy.failures} failures, {policy.recovery_s:.0f} s "
              f"recovery), dead letters {counts.dead_letters}, pending "
              f"{counts.by_status.get('pending', 0)}; after recovery all 20 delivered in "
              f"{took:.2f} s, in order per lead; lost: {20 - len(receiver.accepted())}")


async def llm_down() -> None:
    settings = ResilienceSettings()
    model = GuardedLanguageModel(FakeLLM(fail_with=EngineError("llm failed"), fail_next=10**6),
                                 Resilience(settings), slow_s=settings.llm_slow_s)
    hello = [ChatMessage("user", "hello")]

    async def ask() -> None:
        async for _chunk in model.stream_chat(hello, call_id="bench"):
            pass

    failures = 0
    while not model.down():
        await timed(ask)
        await asyncio.sleep(0.01)  # the verdict is recorded on a task of its own
        failures += 1
    refused = [await timed(ask) for _ in range(100)]
    print(f"llm down: circuit open after {failures} failed replies; a refused request returns "
          f"in {ms(statistics.median(refused))} (median of 100), so the reply's scripted line "
          f"starts at once instead of after engines.llm_timeout_s = "
          f"{Settings().engines.llm_timeout_s:.0f} s")


def kill_9(calls: int = 5) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        models = root / "models"
        build_test_models(models)
        made: list[DaemonProcess] = []

        def make(toml: str, env: dict[str, str], name: str) -> DaemonProcess:
            (root / name).mkdir()
            made.append(DaemonProcess(root / name, toml, env))
            return made[-1]

        try:
            run = kill_9_mid_calls(root, models, make, calls=calls)
        finally:
            for daemon in made:
                daemon.stop()
    failed = [r for r in run.results if isinstance(r, BaseException)]
    closed = sum(1 for c in run.calls if c[2] == "interrupted")
    waits = run.resume_s
    print(f"kill -9 with {calls} live calls: {run.turns_before} turns finished before the kill, "
          f"{run.turns_lost} lost; {run.resumed}/{calls} calls resumed, {closed} closed as "
          f"interrupted, {len(failed)} phones failed {[repr(f) for f in failed]}")
    if waits:
        print(f"  stream dead -> resumed stream: median {statistics.median(waits):.1f} s, "
              f"max {max(waits):.1f} s (the daemon's restart; no socket activation here)")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--only", choices=("redis", "webhook", "llm", "kill9"))
    args = parser.parse_args()
    if args.only in (None, "redis"):
        for fault in ("cut", "stall", "reset"):
            await redis_fault(fault, args.redis)
    if args.only in (None, "webhook"):
        await webhook_outage()
    if args.only in (None, "llm"):
        await llm_down()
    if args.only in (None, "kill9"):
        await asyncio.to_thread(kill_9)


if __name__ == "__main__":
    asyncio.run(main())

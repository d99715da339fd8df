"""What a dependency failing costs a call, with the daemon's default [resilience] policies.

Puts the fault proxy (tests/fixtures/fault_proxy.py) between the live-session store and a real
Redis, between the outbox and a webhook receiver, and between the write-behind queue and a real
Postgres, and prints for each fault: how long until the circuit opens, what one operation costs
before and while it is open, how long after the dependency returns until all is well again, and
what was lost. The LLM pool part kills one of two real `llama_cpp.server` endpoints while calls
ask for replies (what fails, where the rest go). The LLM part times a request refused by an
open llm circuit (what the caller waits before the scripted line); the ElevenLabs part has the
stand-in server answer 429 for a while and times the first audio of each utterance (the local
voice takes over).

The kill -9 part runs a real daemon (test models) with five live simulated calls, kills it with
SIGKILL after each call's first reply, restarts it on the same port and state, and reports the
turns lost, the calls resumed (Twilio's `<Connect action>` request played by the simulator) and
the seconds from the dead stream to the resumed one (tests/recovery/crash_rig.py). Without
socket activation the action request is retried until the new daemon listens, so those seconds
are the restart's.

    PYTHONPATH=. .venv/bin/python bench/bench_faults.py                  # Redis at 127.0.0.1:6379
    PYTHONPATH=. .venv/bin/python bench/bench_faults.py --redis redis://127.0.0.1:6380/0
    PYTHONPATH=. .venv/bin/python bench/bench_faults.py --only elevenlabs --only postgres
    PYTHONPATH=. .venv/bin/python bench/bench_faults.py --only llm_endpoint --only kill9
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url

from reautod.config import Settings
from reautod.cost.settings import ElevenLabsSettings
from reautod.engines.base import ChatMessage
from reautod.engines.catalog import build_test_models, models_cache_dir
from reautod.engines.elevenlabs import ElevenLabsTTS, VoiceChoice
from reautod.engines.tiered import TieredTTS
from reautod.errors import EngineError, ReautodError
from reautod.integrations.credentials import Credentials
from reautod.integrations.delivery import DeliveryWorker
from reautod.integrations.settings import DeliverySettings, WebhookEndpoint
from reautod.integrations.webhooks import WebhookDeliverer, WebhookPublisher
from reautod.resilience.breaker import Breakers
from reautod.resilience.llm import GuardedLanguageModel
from reautod.resilience.service import Resilience
from reautod.resilience.settings import ResilienceSettings
from reautod.sessions import FallbackSessionStore, RedisSessionStore
from reautod.store.database import Database
from reautod.store.enums import VoiceTier
from reautod.store.repositories import CallRepository, OutboxRepository
from reautod.store.writebehind import WriteBehind
from tests.engines.elevenlabs_standin import API_KEY
from tests.engines.test_elevenlabs import start_standin
from tests.engines.test_pool_llama_server import GGUF, pool_of, start_server, wait_up
from tests.fixtures.daemon import DaemonProcess
from tests.fixtures.fault_proxy import FaultProxy
from tests.fixtures.services import DEFAULT_ADMIN_URL, temporary_database
from tests.integrations.conftest import Clock
from tests.integrations.helpers import contact, scored
from tests.integrations.standins import WebhookReceiver
from tests.pipeline.fakes import FakeLLM, FakeTTS
from tests.recovery.crash_rig import kill_9_mid_calls
from tests.store.factories import call_started, turn


async def timed(op: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    with contextlib.suppress(ReautodError):
        await op()
    return time.perf_counter() - started


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


async def redis_fault(fault: str, url: str, hold_s: float = 0.0) -> None:
    """`fault` between the session store and Redis; with `hold_s` the fault lasts that long
    after the circuit opened, while 5 calls each write their snapshot every 0.5 s."""
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
        held_until = time.perf_counter() + hold_s
        while time.perf_counter() < held_until:  # the calls go on, in-process
            for call in range(5):
                key = f"c{call}"
                while_open.append(await timed(lambda key=key: store.put(key, snapshot)))
            await asyncio.sleep(0.5)
        proxy.heal()
        healed = time.perf_counter()
        while resilience.state("redis") != "closed" or store.degraded:
            await asyncio.sleep(0.1)
            await timed(lambda: store.put("c1", snapshot))  # calls keep writing: one is the probe
        back = time.perf_counter() - healed
        direct = RedisSessionStore(url, prefix=prefix)  # what a restarted daemon would read
        written = {"c1", *(f"c{i}" for i in range(max(puts, 5 if hold_s else 0)))}
        lost = len(written - set(await direct.all()))
        for key in await direct.all():
            await direct.delete(key)
        await direct.close()
        await store.close()
        held = f" for {hold_s:.0f} s" if hold_s else ""
        print(f"redis {fault}{held}: healthy put median {ms(statistics.median(healthy))}; circuit "
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


async def llm_endpoint_killed(callers: int = 4, run_s: float = 20.0) -> None:
    """Two real `llama_cpp.server` processes (the small model) behind the LLM pool; `callers`
    calls each ask for a short reply every 0.5 s; endpoint a is killed (SIGKILL) after a third of
    the run. A reply streaming from a when it dies fails (that caller hears the apology); what
    follows must come from b."""
    logs = Path(tempfile.mkdtemp(prefix="bench-llm-"))
    model = models_cache_dir(os.environ) / GGUF
    servers = {n: start_server(n, model, logs / f"{n}.log") for n in ("a", "b")}
    try:
        for name, server in servers.items():
            wait_up(server, logs / f"{name}.log")
        pool = pool_of(servers, "a", "b", max_tokens=24)
        await pool.start()
        served: list[tuple[float, float, bool]] = []  # started, ended, ok
        killed_at = 0.0
        began = time.perf_counter()

        async def caller(index: int) -> None:
            chat = [ChatMessage("user", f"Say something about the number {index}.")]
            while time.perf_counter() - began < run_s:
                started, ok = time.perf_counter(), True
                try:
                    async for _chunk in pool.stream_chat(chat, call_id=f"bench-{index}"):
                        pass
                except EngineError:
                    ok = False
                served.append((started, time.perf_counter(), ok))
                await asyncio.sleep(0.5)

        b_at_kill = 0

        async def kill() -> None:
            nonlocal killed_at, b_at_kill
            await asyncio.sleep(run_s / 3)
            servers["a"].process.send_signal(signal.SIGKILL)
            killed_at = time.perf_counter()
            b_at_kill = pool.endpoints[1].requests

        await asyncio.gather(kill(), *(caller(i) for i in range(callers)))
        b_after = pool.endpoints[1].requests - b_at_kill
        await pool.close()
    finally:
        for server in servers.values():
            if server.process.poll() is None:
                server.process.terminate()
                server.process.wait(10)
    in_flight = [r for r in served if r[0] < killed_at <= r[1]]
    later = [r for r in served if r[0] >= killed_at]
    print(f"llm endpoint killed ({callers} calls, a reply each 0.5 s, 2 llama_cpp.server "
          f"endpoints, a killed after {run_s / 3:.0f} s): "
          f"{sum(1 for r in served if r[1] < killed_at and r[2])} replies before; of "
          f"{len(in_flight)} streaming at the kill {sum(1 for r in in_flight if not r[2])} "
          f"failed (their callers hear the apology); {len(later)} replies asked after it, "
          f"{b_after} requests reached b, {sum(1 for r in later if not r[2])} lost")


async def elevenlabs_429(outage_s: float) -> None:
    """ElevenLabs answers every request with 429 for `outage_s`: each new call speaks one
    premium utterance a second. The local voice is a stand-in that answers at once, so the
    figures are what the fallback adds, not Piper's own synthesis time."""
    standin = start_standin()
    s = ElevenLabsSettings(enabled=True, base_url=standin.url)
    eleven = ElevenLabsTTS(s, API_KEY, concurrency=2, breakers=Breakers())
    local = FakeTTS(sample_rate=8000)
    tiered = TieredTTS(local, eleven)
    voice = VoiceChoice.from_settings(s)
    text = "Thanks for taking my call today, I will keep this short."
    calls = 0

    async def utterance() -> tuple[float | None, VoiceTier]:
        nonlocal calls
        calls += 1
        call_id = f"bench-{calls}"
        tiered.begin_call(call_id, voice)
        tiered.set_tier(call_id, VoiceTier.PREMIUM)
        started, first = time.perf_counter(), None
        async for _chunk in tiered.synthesize(text, call_id=call_id):
            if first is None:
                first = time.perf_counter() - started
        tier = tiered.tier_of(call_id)
        tiered.end_call(call_id)
        return first, tier

    try:
        healthy = [await utterance() for _ in range(10)]
        seen = len(standin.log()["requests"])
        standin.mode(busy_next=10**9)
        outage: list[tuple[float | None, VoiceTier]] = []
        began = time.perf_counter()
        while time.perf_counter() - began < outage_s:
            outage.append(await utterance())
            await asyncio.sleep(1.0)
        tried = len(standin.log()["requests"]) - seen
        standin.mode(busy_next=0)
        healed, back = time.perf_counter(), None
        while back is None:
            _first, tier = await utterance()
            if tier is VoiceTier.PREMIUM:
                back = time.perf_counter() - healed
            await asyncio.sleep(1.0)
    finally:
        await eleven.close()
        standin.kill()
    firsts = [f for f, _ in outage if f is not None]
    lost = sum(1 for f, _ in outage if f is None)
    local_n = sum(1 for _, tier in outage if tier is VoiceTier.LOCAL)
    print(f"elevenlabs 429 for {outage_s:.0f} s: {len(outage)} calls, {local_n} spoke in the "
          f"local voice; first audio median {ms(statistics.median(firsts))}, max "
          f"{ms(max(firsts))} (healthy premium median "
          f"{ms(statistics.median(f for f, _ in healthy if f is not None))}); {tried} requests "
          f"reached ElevenLabs (retries {s.retries}, circuit {s.breaker_failures} failures); "
          f"premium again {back:.1f} s after it recovered (breaker_recovery_s = "
          f"{s.breaker_recovery_s:.0f}); utterances without audio: {lost}")


async def postgres_down(outage_s: float) -> None:
    """Postgres unreachable for `outage_s` while 5 calls each write a turn every 0.5 s through
    the write-behind queue (the daemon's settings and policies): what spools, what comes back."""
    admin = DEFAULT_ADMIN_URL
    with temporary_database(admin) as url, tempfile.TemporaryDirectory() as tmp:
        direct = Database(url, Settings().database)
        await direct.open()
        await direct.upgrade("head")
        target = make_url(url)
        with FaultProxy(target.host or "127.0.0.1", target.port or 5432) as proxy:
            resilience = Resilience(ResilienceSettings())
            db = Database(target.set(port=proxy.port).render_as_string(hide_password=False),
                          Settings().database, resilience=resilience)
            await db.open()
            writer = WriteBehind(db, Path(tmp) / "spool",
                                 queue_size=Settings().database.write_queue_size)
            await writer.start()
            calls = [call_started() for _ in range(5)]
            seqs = dict.fromkeys((c.call_id for c in calls), 0)
            for call in calls:
                writer.submit(call)

            async def talk(seconds: float) -> None:
                until = time.perf_counter() + seconds
                while time.perf_counter() < until:
                    for call_id in seqs:
                        writer.submit(turn(call_id, seqs[call_id]))
                        seqs[call_id] += 1
                    await asyncio.sleep(0.5)

            await talk(5.0)
            await writer.flush(timeout=30)
            proxy.cut()
            cut_at, opened = time.perf_counter(), None
            talking = asyncio.create_task(talk(outage_s))
            while not talking.done():
                if opened is None and resilience.state("database") != "closed":
                    opened = time.perf_counter() - cut_at
                await asyncio.sleep(0.05)
            spooled = writer.stats().spooled
            proxy.heal()
            healed = time.perf_counter()
            await writer.flush(timeout=300)
            caught_up = time.perf_counter() - healed
            stats = writer.stats()
            await writer.stop()
            stored = {c.call_id: [t.seq for t in await CallRepository(direct).turns(c.call_id)]
                      for c in calls}
            await db.close()
        await direct.close()
    written = sum(seqs.values())
    lost = sum(len(set(range(seqs[k])) - set(v)) for k, v in stored.items())
    duplicates = sum(len(v) - len(set(v)) for v in stored.values())
    in_order = all(v == sorted(v) for v in stored.values())
    print(f"postgres down {outage_s:.0f} s: {written} turns of 5 calls written; circuit open "
          f"{opened or 0:.2f} s after the cut; {spooled} records spooled to disk; all committed "
          f"{caught_up:.1f} s after Postgres returned ({stats.replayed} replayed); lost: {lost}, "
          f"duplicated: {duplicates}, each call's turns in order: {in_order}")


CASES = ("redis", "webhooks", "llm", "llm_endpoint", "elevenlabs", "postgres", "kill9")
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
    parser.add_argument("--outage-s", type=float, default=60.0,
                        help="how long Redis and Postgres are away and ElevenLabs answers 429")
    parser.add_argument("--only", choices=CASES, action="append",
                        help="run only these cases (repeatable)")
    args = parser.parse_args()
    cases = set(args.only or CASES)
    if "redis" in cases:
        await redis_fault("cut", args.redis, hold_s=args.outage_s)  # Redis down for a minute
        for fault in ("stall", "reset"):
            await redis_fault(fault, args.redis)
    if "webhooks" in cases:
        await webhook_outage()
    if "llm" in cases:
        await llm_down()
    if "llm_endpoint" in cases:
        await llm_endpoint_killed()
    if "elevenlabs" in cases:
        await elevenlabs_429(args.outage_s)
    if "postgres" in cases:
        await postgres_down(args.outage_s)
    if "kill9" in cases:
        await asyncio.to_thread(kill_9)


if __name__ == "__main__":
    asyncio.run(main())

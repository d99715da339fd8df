"""The qualifying agent in real calls: reautod as a subprocess on the real small models, a
campaign that names a playbook (the real-estate example, seeded into the playbooks directory on
first start, with its qualifier's replies written by a named model), and one short simulated
call through the phone path (`reautoctl call simulate`, the lead's lines spoken by the real
voice). What a user then sees: the call's stages, its score and outcome in the store,
`reautoctl stats` counting it qualified, the metric moving, the named model loaded."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from reautod.config import DatabaseSettings
from reautod.control.client import ControlClient
from reautod.engines.catalog import PROFILES
from reautod.store.call_observer import call_uuid
from reautod.store.database import Database
from reautod.store.models import AgentTransition, Call, LeadScore, Turn
from tests.conversation.conftest import running_daemon
from tests.fixtures.daemon import DaemonProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

OWNER_LINE = "Yes, I'm the owner. I want to sell as soon as possible because we are downsizing."
QUALIFIER_GOAL = ("    goal: Learn whether they own the home, when they would sell, why, and their "
                  "price.\n")


@pytest.fixture(scope="module")
def small_daemon(small_models_dir: Path, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[DaemonProcess]:
    """reautod on the small models, with the reply model's GGUF also named "smollm2" (a second
    copy, loaded when a stage first asks for it)."""
    gguf = PROFILES["small"]["llm"].path_in(small_models_dir)
    yield from running_daemon(small_models_dir, tmp_path_factory,
                              f'[[llm_models.local]]\nname = "smollm2"\npath = "{gguf}"\n')


def ctl_json(d: DaemonProcess, *args: str, timeout: float = 60.0) -> Any:
    done = d.ctl("--json", *args, timeout=timeout)
    assert done.returncode == 0, f"{args}: {done.stderr}\n{d.log()[-3000:]}"
    return json.loads(done.stdout)


async def named_models(d: DaemonProcess) -> Any:
    async with ControlClient(d.socket_path) as client:
        return (await client.call("engines.status"))["named_models"]


Stored = tuple[Any, list[tuple[str | None, str]], list[int], str | None]


async def stored(d: DaemonProcess, call_id: str, timeout_s: float = 60.0) -> Stored:
    """The call's row once its outcome is written, its transitions, its scores and what the
    agent said first."""
    db = Database(f"sqlite+aiosqlite:///{d.workdir / 'state' / 'reautod.db'}", DatabaseSettings())
    await db.open()
    key = call_uuid(call_id)

    async def read(conn: AsyncConnection) -> Stored:
        call = (await conn.execute(select(Call.__table__).where(Call.id == key))).first()
        moves = await conn.execute(select(AgentTransition.from_agent, AgentTransition.to_agent)
                                   .where(AgentTransition.call_id == key)
                                   .order_by(AgentTransition.seq))
        scores = await conn.execute(select(LeadScore.score).where(LeadScore.call_id == key)
                                    .order_by(LeadScore.at))
        first = await conn.scalar(select(Turn.text).where(Turn.call_id == key,
                                                          Turn.speaker == "agent")
                                  .order_by(Turn.seq).limit(1))
        return call, [(f, t) for f, t in moves], [s for (s,) in scores], first

    try:
        for _ in range(int(timeout_s * 4)):
            call, moves, scores, first = await db.read(read)
            if call is not None and call.outcome is not None and call.ended_at is not None:
                return call, moves, scores, first
            await asyncio.sleep(0.25)
    finally:
        await db.close()
    raise AssertionError(f"call {call_id} has no outcome after {timeout_s}s:\n{d.log()[-3000:]}")


async def test_a_playbook_campaign_qualifies_a_simulated_lead(small_daemon: DaemonProcess
                                                              ) -> None:
    daemon = small_daemon
    playbooks = daemon.workdir / "state" / "playbooks"
    seeded = playbooks / "real-estate-sellers.yaml"
    assert seeded.is_file()  # seeded on first start
    # A copy whose qualifier names the model that writes its replies; the daemon checks the
    # name against its models.
    named = (seeded.read_text().replace("playbook: real-estate-sellers", "playbook: sellers-named")
             .replace(QUALIFIER_GOAL, QUALIFIER_GOAL + "    model: smollm2\n"))
    unknown = playbooks.parent / "unknown-model.yaml"
    unknown.write_text(named.replace("model: smollm2", "model: gpt-9"))
    refused = daemon.ctl("playbook", "validate", "--daemon", str(unknown))
    assert refused.returncode == 1 and "no language model named 'gpt-9' (there are: smollm2)" \
        in refused.stdout, refused.stdout + refused.stderr
    (playbooks / "sellers-named.yaml").write_text(named)
    listed = ctl_json(daemon, "playbook", "list")
    assert {p["name"] for p in listed["playbooks"]} >= {"real-estate-sellers", "solar-homeowners",
                                                        "sellers-named"}
    assert await named_models(daemon) == [{"name": "smollm2", "where": "local", "loaded": False}]
    created = daemon.ctl("campaign", "create", "sellers", "--set", "playbook=sellers-named")
    assert created.returncode == 0, created.stderr
    bad = daemon.ctl("campaign", "create", "typo", "--set", "playbook=Not A Name")
    assert bad.returncode != 0 and "playbook" in bad.stderr

    # At the phone's own pace: with --fast the simulated lead takes 0.75 s of quiet between two
    # lines of one reply, or 15 s without a reply, as its turn, which a loaded machine exceeds.
    result = ctl_json(daemon, "call", "simulate", "--campaign", "sellers",
                      "--say", "Yes, I have a minute.", "--say", OWNER_LINE, timeout=420)
    agent_lines = [t["text"] for t in result["turns"] if t["speaker"] == "agent"]
    assert agent_lines and "Lakeside Realty" in agent_lines[0]  # the playbook's greeter
    # the agent answered after the greeting; what the caller heard of it depends on when the
    # simulated lead spoke again, so the stage machine's own record below is what this test holds
    # the agent to (the approved question always follows the model's words: test_seam, test_agent)
    assert any(line.strip() for line in agent_lines[1:]), agent_lines

    call, moves, scores, first = await stored(daemon, result["call_id"])
    # 64.1200(b): right after naming the business, the opt-out offer (the campaign's default)
    assert first is not None and "Lakeside Realty. To stop these calls, say stop or press 9." \
        in first, first
    assert moves[:2] == [(None, "greeter"), ("greeter", "qualifier")]
    assert call.playbook == "sellers-named" and call.prompt_version is not None
    assert call.prompt_version.startswith("v1@") and call.prompt_variant in ("a", "warm-open")
    # owner + selling soon: 65 of 100, over the threshold of 60; the caller then hung up
    assert scores and scores[-1] >= 60, scores
    assert call.outcome == "qualified", (call.outcome, call.disposition)
    assert call.disposition is not None and "qualified" in call.disposition
    assert call.campaign_id is not None

    stats = ctl_json(daemon, "stats", "--campaign", "sellers")
    assert sum(day["qualified"] for day in stats["days"]) == 1, stats
    port = ctl_json(daemon, "status")["metrics_port"]
    metrics = await asyncio.to_thread(
        lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read())
    assert b"reautod_qualified_leads_total 1.0" in metrics
    # the qualifier's reply came from the named model, loaded for it
    assert await named_models(daemon) == [{"name": "smollm2", "where": "local", "loaded": True}]

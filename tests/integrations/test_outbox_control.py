"""`reautoctl outbox ...` against a real control server serving the outbox methods."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from reautod.control.cli import main
from reautod.control.client import ControlClient
from reautod.control.server import ControlServer
from reautod.errors import ReautodError
from reautod.integrations.control import OutboxStatusResult, outbox_methods
from reautod.observability.events import EventBus
from reautod.store.database import Database
from reautod.store.repositories import NewMessage, OutboxRepository
from tests.integrations.conftest import Clock

HOOK = "https://crm.example/hook"


@pytest.fixture
async def socket_path(db: Database, tmp_path: Path) -> AsyncIterator[str]:
    path = Path("/tmp") / f"rt-outbox-{uuid.uuid4().hex[:8]}.sock"
    server = ControlServer(path, outbox_methods(OutboxRepository(db), ["crm"]), EventBus())
    await server.start()
    try:
        yield str(path)
    finally:
        await server.close()


async def reautoctl(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = await asyncio.to_thread(main, list(argv))
    return code, capsys.readouterr().out


async def test_status_list_dead_retry_replay(
    db: Database, socket_path: str, capsys: pytest.CaptureFixture[str],
) -> None:
    repo, clock = OutboxRepository(db), Clock()
    dead_id, ok_id = await repo.enqueue_many([NewMessage("lead.scored", HOOK, {}, endpoint="crm"),
                                              NewMessage("call.completed", HOOK, {}, endpoint="crm")])
    await repo.claim_due(clock(), 10)
    await repo.failed(dead_id, "HTTP 400 Bad Request", retry_at=None)
    await repo.delivered(ok_id, clock())

    code, out = await reautoctl(capsys, "--socket", socket_path, "--json", "outbox", "status")
    status = OutboxStatusResult.model_validate(json.loads(out))
    assert code == 0 and status.dead_letters == 1 and status.by_status["delivered"] == 1
    code, out = await reautoctl(capsys, "--socket", socket_path, "outbox", "status")
    assert "dead letters" in out and "crm" in out

    code, out = await reautoctl(capsys, "--socket", socket_path, "outbox", "dead")
    assert str(dead_id) in out and "HTTP 400" in out
    code, out = await reautoctl(capsys, "--socket", socket_path, "outbox", "list", "--status", "dead")
    assert str(dead_id) in out and str(ok_id) not in out

    code, out = await reautoctl(capsys, "--socket", socket_path, "outbox", "retry", str(dead_id))
    assert code == 0 and "1 message(s) back in the queue" in out
    assert (await repo.get(dead_id)).status == "pending"
    code, out = await reautoctl(capsys, "--socket", socket_path, "outbox", "retry", str(uuid.uuid4()))
    assert code == 1
    since = (clock.now - timedelta(days=1)).date().isoformat()
    code, out = await reautoctl(capsys, "--socket", socket_path, "--json", "outbox", "replay",
                                "--since", since, "--endpoint", "crm")
    assert code == 0 and len(json.loads(out)["queued"]) == 1


async def test_bad_params_are_refused(socket_path: str) -> None:
    async with ControlClient(socket_path) as client:
        with pytest.raises(ReautodError, match="not both"):
            await client.call("outbox.retry", {})
        with pytest.raises(ReautodError, match="time zone"):
            await client.call("outbox.replay", {"since": "2026-01-01T00:00:00"})
        with pytest.raises(ReautodError):
            await client.call("outbox.list", {"status": "lost"})

"""Checkpoints and resuming without a daemon: the two stores, the recorder's life of a
checkpoint, the action URL's answers, the resume window's end and `call.recover`."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from twilio.request_validator import RequestValidator

from reautod.call_events import CallInfo, CallState, TurnRecord
from reautod.config import AgentSettings, Settings
from reautod.conversation import CallContext, CallerTurn, Generate, Line, Resumed
from reautod.errors import NotFoundError, UnavailableError, ValidationError
from reautod.live_settings import LiveSettings
from reautod.pipeline.agent import AgentConversations
from reautod.pipeline.resumed import ResumedConversation
from reautod.recovery.checkpoint import (
    CallCheckpoint,
    DirectoryCheckpoints,
    RedisCheckpoints,
    SaidLine,
)
from reautod.recovery.part import RecoveryPart
from reautod.recovery.recorder import CheckpointRecorder
from reautod.recovery.results import RecoverableCalls, RecoverAction, RecoverParams
from reautod.store.call_observer import call_uuid
from reautod.store.database import Database
from reautod.store.enums import CallStatus
from reautod.store.records import CallStarted
from reautod.store.repositories import CallRepository
from reautod.telephony.signatures import SIGNATURE_HEADER, TwilioSignatureValidator
from reautod.telephony.sim_options import SimulatorError
from reautod.telephony.sim_resume import ActionOptions, request_action, stream_in
from tests.fixtures.services import free_port

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
BASE = "https://reautod.example.com"
TOKEN = "recovery-token"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def info(call_id: str = "c1", sid: str | None = "CA1") -> CallInfo:
    return CallInfo(call_id=call_id, stream_sid="MZ1", call_sid=sid, lead_name="Ann",
                    campaign="fall", direction="outbound", state=CallState.LISTENING,
                    started_at=T0)


def turn(index: int, speaker: str, text: str, call_id: str = "c1") -> TurnRecord:
    return TurnRecord(call_id=call_id, index=index, speaker=speaker,  # type: ignore[arg-type]
                      text=text, confidence=None, started_at=T0, ended_at=T0)


def checkpoint(call_id: str = "c1", **changes: object) -> CallCheckpoint:
    base = CallCheckpoint(call_id=call_id, call_sid="CA1", lead_name="Ann", campaign="fall",
                          started_at=T0, updated_at=T0,
                          transcript=[SaidLine(index=1, speaker="agent", text="Hi Ann.")])
    return base.model_copy(update=changes)


# -- the stores ---------------------------------------------------------------------------------


async def test_directory_checkpoints_keep_replace_expire_and_skip_bad_files(tmp_path: Path) -> None:
    store = DirectoryCheckpoints(tmp_path / "cp", ttl_s=60)
    assert await store.all() == [] and await store.load("c1") is None
    await store.save(checkpoint())
    await store.save(checkpoint(resumes=2))
    await store.save(checkpoint("../../evil"))  # a hostile id never becomes a path
    assert {p.parent for p in (tmp_path / "cp").iterdir()} == {tmp_path / "cp"}
    assert (await store.load("c1")).resumes == 2  # type: ignore[union-attr]
    (tmp_path / "cp" / "junk.json").write_text("{not json")
    assert sorted(c.call_id for c in await store.all()) == ["../../evil", "c1"]
    old = next(p for p in (tmp_path / "cp").glob("*.json") if "c1" in p.read_text())
    os.utime(old, (0, 0))  # older than the TTL
    assert await store.load("c1") is None and not old.exists()
    await store.delete("../../evil")
    assert await store.all() == []
    await store.close()


async def test_redis_checkpoints_have_a_ttl(redis_url: str, redis_prefix: str) -> None:
    store = RedisCheckpoints(redis_url, prefix=redis_prefix, ttl_s=120)
    try:
        await store.save(checkpoint())
        assert (await store.load("c1")) == checkpoint()
        assert [c.call_id for c in await store.all()] == ["c1"]
        ttl = await store._redis.ttl(f"{redis_prefix}checkpoint:c1")
        assert 0 < ttl <= 120
        await store.delete("c1")
        assert await store.load("c1") is None and await store.all() == []
    finally:
        await store.close()
    down = RedisCheckpoints("redis://127.0.0.1:1/0", timeout_s=0.2)
    with pytest.raises(UnavailableError):
        await down.load("c1")
    with pytest.raises(UnavailableError):
        await down.all()
    await down.close()


# -- the recorder -------------------------------------------------------------------------------


def recorder(tmp_path: Path, clock: Clock, **calls: object) -> CheckpointRecorder:
    settings = Settings(calls={"resume_window_s": 60, **calls})
    return CheckpointRecorder(DirectoryCheckpoints(tmp_path / "cp"), lambda: settings.calls,
                              clock=clock)


async def test_a_checkpoint_follows_the_call_and_goes_when_it_ends(tmp_path: Path) -> None:
    rec = recorder(tmp_path, Clock())
    await rec.start()
    call = CallContext("c1", "Ann", "fall", "sell", "outbound", opening="Hi {lead_name}.")
    rec.watch(call, lambda: {"stage": "greeter"})
    rec.on_call_started(info())
    rec.on_turn(turn(1, "agent", "Hi Ann."))
    rec.on_turn(turn(2, "caller", "I might sell."))
    rec.on_turn(turn(1, "agent", "not this call's", call_id="other"))  # unknown: ignored
    await rec.flush()
    stored = await rec.store.load("c1")
    assert stored is not None and stored.goal == "sell" and stored.opening == "Hi {lead_name}."
    assert [(s.index, s.text) for s in stored.transcript] == [(1, "Hi Ann."), (2, "I might sell.")]
    assert stored.conversation == {"stage": "greeter"} and stored.lost_at is None
    rec.on_call_ended("c1", "stop", 3.0)  # the caller hung up: nothing to resume
    await rec.flush()
    assert await rec.store.load("c1") is None
    await rec.close()


async def test_a_lost_stream_keeps_it_for_the_window_and_resume_picks_up(tmp_path: Path) -> None:
    clock = Clock()
    rec = recorder(tmp_path, clock)
    await rec.start()
    rec.on_call_started(info())
    rec.on_turn(turn(1, "agent", "Hi Ann."))
    rec.on_turn(turn(2, "caller", "  we want to move by spring "))
    await rec.wait_ended("c1", 0.01)  # still live: waits out its timeout
    rec.on_call_ended("c1", "socket_closed", 3.0)
    await rec.flush()
    kept = await rec.store.load("c1")
    assert kept is not None and kept.lost_at == T0 and rec.resumable(kept)
    assert rec.resumable_until(kept) == T0 + timedelta(seconds=60)

    context = await rec.resume(CallContext("c1", "", None, None, "outbound"))
    assert context.lead_name == "Ann" and context.campaign == "fall"
    resumed = context.resumed
    assert resumed is not None and resumed.next_turn == 3
    assert resumed.line == "Sorry, we got cut off. You were telling me: we want to move by spring"
    assert resumed.history == (("agent", "Hi Ann."), ("caller", "  we want to move by spring "))
    assert rec.live("c1") and rec.resumable_until(kept) is None  # live again
    rec.give_back("c1")  # the new stream was refused (at capacity): resumable again
    assert not rec.live("c1")
    context = await rec.resume(CallContext("c1", "", None, None, "outbound"))
    assert context.resumed is not None and context.resumed.next_turn == 3
    rec.on_call_started(info(sid="CA1"))
    rec.on_call_ended("c1", "socket_closed", 1.0)
    clock.now = T0 + timedelta(seconds=61)  # the window passed
    with pytest.raises(NotFoundError):
        await rec.resume(CallContext("c1", "", None, None, "outbound"))
    await rec.close()


async def test_nothing_said_yet_gets_the_other_line_and_window_0_resumes_nothing(
        tmp_path: Path) -> None:
    rec = recorder(tmp_path, Clock())
    await rec.start()
    rec.on_call_started(info())
    rec.on_call_ended("c1", "socket_closed", 1.0)
    context = await rec.resume(CallContext("c1", "", None, None, "outbound"))
    assert context.resumed is not None
    assert context.resumed.line == "Sorry, we got cut off. Where were we?"
    await rec.close()
    off = recorder(tmp_path / "off", Clock(), resume_window_s=0)
    await off.start()
    off.on_call_started(info())
    off.on_call_ended("c1", "socket_closed", 1.0)
    await off.flush()
    assert await off.store.load("c1") is None
    await off.close()


async def test_a_resumed_conversation_says_the_line_with_its_history() -> None:
    call = CallContext("c1", "Ann", None, None, "outbound")
    inner = AgentConversations(lambda: AgentSettings()).start(call)
    rec_resumed = (await _resumed(call)).resumed
    assert rec_resumed is not None
    conversation = ResumedConversation(inner, rec_resumed)
    opening = await conversation.opening()
    assert opening is not None and opening.parts == (Line("Sorry, we got cut off."),)
    reply = await conversation.reply(CallerTurn("Where was I?", 0.9))
    part = reply.parts[0]
    assert isinstance(part, Generate)
    said = [(m.role, m.content) for m in part.messages[1:]]
    assert said == [("assistant", "Hi Ann."), ("user", "I want to sell. Where was I?")]
    assert conversation.checkpoint() == {}
    assert conversation.failure("x") == inner.failure("x")
    assert conversation.goodbye("x") == inner.goodbye("x")
    assert conversation.silence() == inner.silence()
    assert await conversation.keypress("5") is not None
    await conversation.ended("stop")


async def _resumed(call: CallContext) -> CallContext:
    return dataclasses.replace(call, resumed=Resumed(
        history=(("agent", "Hi Ann."), ("caller", "I want to sell.")),
        line="Sorry, we got cut off.", next_turn=3))


# -- the part: the action URL, the window's end, call.recover -----------------------------------


class FakeCarrier:
    def __init__(self) -> None:
        self.redirected: list[tuple[str, str]] = []
        self.hung_up: list[str] = []

    async def redirect(self, sid: str, twiml: str) -> None:
        self.redirected.append((sid, twiml))

    async def hangup(self, sid: str, *, before_answer: bool = False) -> bool:
        self.hung_up.append(sid)
        return True


class NoSessions:
    def session(self, call_id: str) -> object | None:
        return None


async def part_with(db: Database, tmp_path: Path, clock: Clock) -> tuple[RecoveryPart, FakeCarrier]:
    settings = LiveSettings(Settings(state_dir=tmp_path, calls={"resume_window_s": 60}))
    part = RecoveryPart(settings, tmp_path, db, clock=clock)
    carrier = FakeCarrier()
    part.attach(NoSessions(), carrier, TwilioSignatureValidator(TOKEN, BASE))
    await part.start()
    return part, carrier


async def open_call(db: Database, call_id: str) -> None:
    await CallRepository(db).write([CallStarted(call_uuid(call_id), T0,
                                                status=CallStatus.IN_PROGRESS)])


async def test_the_action_url_resumes_a_lost_call_and_hangs_up_an_ended_one(
        db: Database, tmp_path: Path) -> None:
    clock = Clock()
    part, _ = await part_with(db, tmp_path, clock)
    app = FastAPI()
    for router in part.routers():
        app.include_router(router)
    url = f"{BASE}/twilio/stream-ended"

    async def post(form: dict[str, str], signed: bool = True) -> httpx.Response:
        headers = {SIGNATURE_HEADER: RequestValidator(TOKEN).compute_signature(url, form)
                   if signed else "bad"}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url=BASE) as client:
            return await client.post("/twilio/stream-ended", data=form, headers=headers)

    await part.store.save(checkpoint())  # left by a run that died: resumable from start-up
    answer = await post({"CallSid": "CA1", "CallStatus": "in-progress"})
    assert answer.status_code == 200 and part.resumed == 1
    stream = stream_in(answer.text)
    assert stream is not None
    assert stream[0] == "wss://reautod.example.com/twilio/media"
    assert stream[1] == {"call_id": "c1", "campaign": "fall", "lead_name": "Ann",
                         "direction": "outbound", "resume": "1"}
    assert f'action="{url}"' in answer.text
    for form in ({"CallSid": "CA1", "CallStatus": "completed"}, {"CallSid": "CA-unknown"}):
        ended = await post(form)
        assert ended.status_code == 200 and "<Hangup" in ended.text and stream_in(ended.text) is None
    assert (await post({"CallSid": "CA1"}, signed=False)).status_code == 403
    await part.close()


async def test_the_window_end_closes_the_call_as_interrupted(db: Database, tmp_path: Path) -> None:
    clock = Clock()
    part, _ = await part_with(db, tmp_path, clock)
    await open_call(db, "c1")
    await part.store.save(checkpoint(lost_at=T0))
    assert await part.recoverable_ids() == {call_uuid("c1")}
    assert await part.expire() == 0  # within the window
    clock.now = T0 + timedelta(seconds=61)
    assert await part.recoverable_ids() == set()
    assert await part.expire() == 1 and part.closed == 1
    row = await CallRepository(db).get(call_uuid("c1"))
    assert row is not None and row.status == "failed" and row.error_code == "interrupted"
    assert await part.store.all() == []
    await part.close()


async def test_call_recover_lists_resumes_and_closes(db: Database, tmp_path: Path) -> None:
    clock = Clock()
    part, carrier = await part_with(db, tmp_path, clock)
    (method,) = part.control_methods()
    assert method.name == "call.recover" and method.changes_state
    await open_call(db, "c1")
    await part.store.save(checkpoint(conversation={"stage": "qualifier"}))
    listed = await method.handler(RecoverParams())
    assert isinstance(listed, RecoverableCalls) and listed.resume_window_s == 60
    (row,) = listed.calls
    assert (row.call_id, row.stage, row.turns, row.resumable) == ("c1", "qualifier", 1, True)

    resumed = (await method.handler(RecoverParams(resume="CA1"))).done
    assert isinstance(resumed, RecoverAction) and resumed.action == "resumed"
    ((sid, twiml),) = carrier.redirected
    assert sid == "CA1" and stream_in(twiml) is not None
    assert (await part.store.load("c1")).lost_at == T0  # type: ignore[union-attr]

    with pytest.raises(ValidationError):
        await method.handler(RecoverParams(resume="c1", close="c1"))
    with pytest.raises(NotFoundError):
        await method.handler(RecoverParams(close="nobody"))
    after = await method.handler(RecoverParams(close="c1"))
    assert isinstance(after.done, RecoverAction) and after.done.action == "closed"
    assert after.calls == []
    assert carrier.hung_up == ["CA1"] and await part.store.all() == []
    row_after = await CallRepository(db).get(call_uuid("c1"))
    assert row_after is not None and row_after.error_code == "interrupted"
    await part.close()


async def test_without_twilio_nothing_is_served_and_resume_by_hand_says_why(
        db: Database, tmp_path: Path) -> None:
    part = RecoveryPart(LiveSettings(Settings(state_dir=tmp_path)), tmp_path, db)
    part.attach(NoSessions(), None, None)
    assert part.routers() == []
    await part.store.save(checkpoint())
    with pytest.raises(UnavailableError):
        await part.resume_by_hand("c1")
    await part.close()
    await asyncio.sleep(0)


async def test_the_simulated_action_request_gives_up_after_its_timeout() -> None:
    url = f"http://127.0.0.1:{free_port()}/twilio/stream-ended"  # nobody listens
    with pytest.raises(SimulatorError, match="did not answer"):
        await request_action(ActionOptions(url=url, auth_token=TOKEN, timeout_s=0.3,
                                           retry_s=0.05), call_sid="CA1", account_sid="AC1")

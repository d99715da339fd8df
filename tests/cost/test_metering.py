"""Metering a call: the engines' usage per call (MeteredEngines over fake engines that report
timings like the real ones) and the cost observer (a meter per call, rows per turn carrying the
call's campaign, `cost.update` published, a phone line billed per started minute), and the TUI's
cost column reading what the observer publishes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from reautod.call_events import CallInfo, CallState, TurnRecord
from reautod.cost.ledger import CostLedger
from reautod.cost.metered import MeteredEngines
from reautod.cost.money import to_micros
from reautod.cost.observer import CostObserver
from reautod.cost.pricebook import load_price_books
from reautod.cost.results import CostUpdate
from reautod.cost.tracker import CostTracker
from reautod.engines.base import (
    AudioChunk,
    ChatMessage,
    EngineHealth,
    EngineState,
    RequestTiming,
    TokenChunk,
    Transcript,
)
from reautod.engines.registry import EngineSet
from reautod.engines.tiered import TieredTTS
from reautod.errors import NotFoundError
from reautod.store.call_observer import call_uuid
from reautod.store.enums import CostService
from tests.cost.fakes import Collect
from tui.model import LiveState, format_money

T0 = datetime(2026, 11, 21, 15, tzinfo=UTC)
BOOKS = load_price_books()


class STT:
    async def transcribe(self, audio: npt.NDArray[np.float32], *, call_id: str) -> Transcript:
        return Transcript("hello", 0.9, len(audio) / 16000, RequestTiming(0.5, 0.25))

    def health(self) -> EngineHealth:
        return EngineHealth("stt", EngineState.READY, "fake")


class LLM:
    """Three tokens, then the end chunk with the timing and the prompt length (like LlamaLLM)."""

    async def stream_chat(self, messages: list[ChatMessage], *, call_id: str,
                          max_tokens: int | None = None,
                          model: str | None = None) -> AsyncIterator[TokenChunk]:
        for word in ("Hi", " there", "!"):
            yield TokenChunk(word)
        yield TokenChunk("", timing=RequestTiming(0.1, 0.75), prompt_tokens=42)

    def health(self) -> EngineHealth:
        return EngineHealth("llm", EngineState.READY, "fake")


class TTS:
    sample_rate = 8000

    async def synthesize(self, text: str, *, call_id: str) -> AsyncIterator[AudioChunk]:
        for _ in range(4):  # 4 x 0.5 s of audio, 0.1 s of compute each
            yield AudioChunk(b"\0\0" * 4000, 8000, timing=RequestTiming(0.0, 0.1))

    def health(self) -> EngineHealth:
        return EngineHealth("tts", EngineState.READY, "fake")


def metered(tracker: CostTracker) -> MeteredEngines:
    """As the cost part builds them: the voice is a TieredTTS with no premium side."""
    engines = EngineSet(STT(), LLM(), TTS())
    return MeteredEngines(engines, tracker.usage_meter,
                          TieredTTS(engines.tts, None, on_speech=tracker.on_speech))


def tracker_with(sink: Collect) -> CostTracker:
    return CostTracker(BOOKS, CostLedger(sink), plan="pro", model="eleven_flash_v2_5",
                       clock=lambda: T0)


async def test_each_engine_request_lands_on_its_calls_meter() -> None:
    tracker = tracker_with(Collect())
    engines = metered(tracker)
    engines.require_ready()
    call = str(uuid.uuid4())
    tracker.begin_call(uuid.UUID(call), None)
    await engines.stt.transcribe(np.zeros(32000, dtype=np.float32), call_id=call)
    reply = [c.text async for c in engines.llm.stream_chat([], call_id=call)]
    assert "".join(reply) == "Hi there!"
    audio = [c async for c in engines.tts.synthesize("Hello there.", call_id=call)]
    assert len(audio) == 4 and engines.tts.sample_rate == 8000
    snap = tracker.meter(uuid.UUID(call)).snapshot()
    assert snap.stt_audio_s == 2.0
    assert (snap.llm_prompt_tokens, snap.llm_completion_tokens) == (42, 3)
    assert snap.tts_characters == {"local": 12} and snap.tts_audio_s == {"local": 2.0}
    book = BOOKS.at(T0)
    # compute seconds priced at the operator's hourly cost: 0.25 s STT, 0.75 s LLM, 0.4 s TTS
    assert snap.by_service == {
        "stt": to_micros(Decimal("0.25") * book.local_second("stt")),
        "llm": to_micros(Decimal("0.75") * book.local_second("llm")),
        "tts": to_micros(Decimal("0.4") * book.local_second("tts")),
    }
    assert snap.total_micros > 0


async def test_a_reply_cut_off_is_metered_for_the_tokens_it_produced() -> None:
    tracker = tracker_with(Collect())
    ticks = iter([10.0, 10.5])
    engines = metered(tracker)
    engines.llm.monotonic = lambda: next(ticks)
    stream = engines.llm.stream_chat([], call_id="sim-cut")
    assert (await anext(stream)).text == "Hi"
    await stream.aclose()  # a barge-in: the end chunk never comes
    meter = tracker.begin_call(call_uuid("sim-cut"), None)  # adopts the early usage
    snap = meter.snapshot()
    assert (snap.llm_prompt_tokens, snap.llm_completion_tokens) == (0, 1)
    assert snap.by_service["llm"] == to_micros(Decimal("0.5") * BOOKS.at(T0).local_second("llm"))


def info(call_id: str, *, call_sid: str | None = "CA1") -> CallInfo:
    return CallInfo(call_id=call_id, stream_sid="MZ1", call_sid=call_sid, lead_name="Ann",
                    campaign="spring", direction="outbound", state=CallState.LISTENING,
                    started_at=T0)


def turn(call_id: str, index: int, after_s: float) -> TurnRecord:
    return TurnRecord(call_id=call_id, index=index, speaker="agent", text="hi", confidence=None,
                      started_at=T0, ended_at=T0 + timedelta(seconds=after_s))


async def test_a_phone_call_is_billed_per_started_minute_for_its_campaign() -> None:
    sink = Collect()
    tracker = tracker_with(sink)
    published: list[CostUpdate] = []
    campaign = uuid.uuid4()
    looked_up = asyncio.Event()

    async def campaign_of(call_id: uuid.UUID) -> uuid.UUID | None:
        await looked_up.wait()
        return campaign

    observer = CostObserver(tracker, published.append, campaign_of)
    call = str(uuid.uuid4())
    observer.on_call_started(info(call))
    tracker.usage_meter(call).stt(1.0, 0.2)
    observer.on_turn(turn(call, 0, 20))
    assert published == [] and sink.records == []  # rows wait for the campaign
    looked_up.set()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    observer.on_turn(turn(call, 1, 70))  # into the second minute
    (update,) = published
    assert update.campaign_id == campaign and update.call_id == call
    assert update.ledger_call_id == uuid.UUID(call)
    voice = BOOKS.at(T0).voice_minute("outbound")
    telephony = [r for r in sink.costs() if r.provider == "twilio"]
    assert [r.quantity for r in telephony] == [Decimal(2)]
    assert all(r.campaign_id == campaign for r in sink.costs())
    observer.on_call_ended(call, "caller hung up", 130.0)
    await observer.close()
    final = published[-1]
    assert final.cost_micros == sum(r.amount_micros for r in sink.costs())
    assert sum(r.quantity for r in sink.costs() if r.provider == "twilio") == 3
    assert sum(r.amount_micros for r in sink.costs() if r.provider == "twilio") == to_micros(3 * voice)
    assert {r.service for r in sink.costs()} == {CostService.STT, CostService.TELEPHONY}
    try:
        tracker.meter(uuid.UUID(call))
        raise AssertionError("the meter outlived its call")
    except NotFoundError:
        pass


async def test_a_simulated_call_pays_only_for_local_compute() -> None:
    sink = Collect()
    tracker = tracker_with(sink)
    published: list[CostUpdate] = []

    async def no_campaign(call_id: uuid.UUID) -> uuid.UUID | None:
        return None

    observer = CostObserver(tracker, published.append, no_campaign)
    tracker.usage_meter("sim-abc").tts_local(20, 1.5, 0.3)  # the greeting, before the start
    observer.on_call_started(info("sim-abc"))
    await asyncio.sleep(0)
    observer.on_turn(turn("sim-abc", 0, 90))
    observer.on_call_ended("sim-abc", "caller hung up", 95.0)
    await observer.close()
    rows = sink.costs()
    assert {r.service for r in rows} == {CostService.TTS}
    assert all(r.call_id == call_uuid("sim-abc") and r.campaign_id is None for r in rows)
    assert published[-1].cost_micros == sum(r.amount_micros for r in rows) > 0
    assert published[-1].call_id == "sim-abc"  # as call.started named it, for the TUI


def test_the_tui_shows_the_cost_the_observer_publishes() -> None:
    sink = Collect()
    tracker = tracker_with(sink)
    published: list[CostUpdate] = []

    async def no_campaign(call_id: uuid.UUID) -> uuid.UUID | None:
        return None

    async def call() -> None:
        observer = CostObserver(tracker, published.append, no_campaign)
        observer.on_call_started(info("sim-tui"))
        await asyncio.sleep(0)
        tracker.usage_meter("sim-tui").llm(10, 5, 30.0)
        observer.on_turn(turn("sim-tui", 0, 5))
        tracker.usage_meter("sim-tui").llm(10, 5, 30.0)
        observer.on_call_ended("sim-tui", "caller hung up", 9.0)
        await observer.close()

    asyncio.run(call())
    state = LiveState(lambda: T0)
    ts = T0.isoformat()
    state.apply_event({"event": "call.started", "ts": ts, "data": info("sim-tui").wire()})
    state.apply_event({"event": "cost.update", "ts": ts,
                       "data": published[0].model_dump(mode="json")})
    live = state.calls["sim-tui"]
    assert live.cost_micros == published[0].cost_micros > 0
    state.apply_event({"event": "call.ended", "ts": ts,
                       "data": {"call_id": "sim-tui", "reason": "caller hung up", "duration_s": 9}})
    state.apply_event({"event": "cost.update", "ts": ts,  # the end's update, after call.ended
                       "data": published[-1].model_dump(mode="json")})
    assert list(state.calls) == []  # no live call made up from the late update
    ended = state.call("sim-tui")
    assert ended is not None and ended.cost_micros == published[-1].cost_micros
    assert format_money(ended.cost_micros) == "$0.01"  # 60 s of LLM at $0.45/h

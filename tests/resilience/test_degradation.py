"""The degradation steps that are not circuits: an engine out of memory lowers the live-call
limit (never a crash), a full disk stops a call's recording with an alert (never the call), and
an inbound caller the box cannot take is turned away politely while a slot is kept for callers."""

from __future__ import annotations

import asyncio
import errno
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from reautod.call_events import CallInfo, CallState
from reautod.config import Settings
from reautod.errors import EngineError, OverloadedError, StoreError
from reautod.observability.events import EventBus
from reautod.observability.metrics import Metrics
from reautod.pipeline.calls import CallManager
from reautod.pipeline.recording import GuardedSink
from reautod.resilience.inbound import InboundShedding
from reautod.resilience.memory import AdmissionLimit, is_out_of_memory
from reautod.resilience.part import ResiliencePart
from reautod.resilience.recording import AlarmedRecording
from reautod.resilience.settings import ResilienceSettings
from reautod.resilience.shedding import LoadGovernor
from reautod.store.enums import RecordingDirection
from reautod.store.recordings import CallRecorder
from reautod.topics import RecordingStopped
from tests.pipeline.conftest import RecordingObserver
from tests.pipeline.fakes import FakeAudioSink, FakeEngines, FakeLLM, FakeSTT, FakeTTS


class OutOfMemoryError(RuntimeError):
    """torch.cuda.OutOfMemoryError's name (the check reads names and messages, not torch)."""


@pytest.mark.parametrize("err", [
    OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB"),
    RuntimeError("CUDA failed with error out of memory"),  # CTranslate2
    RuntimeError("ggml_backend_cuda_buffer_type_alloc_buffer: failed to allocate 512.00 MiB"),
    RuntimeError("CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate(handle)"),
    MemoryError(),
])
def test_out_of_memory_errors_are_told_apart(err: Exception) -> None:
    assert is_out_of_memory(err)
    wrapped = EngineError(f"stt engine failed: {type(err).__name__}")
    wrapped.__cause__ = err  # what the engine scheduler raises: the cause is read too
    assert is_out_of_memory(wrapped)


@pytest.mark.parametrize("err", [RuntimeError("shape mismatch"), EngineError("timed out"),
                                 OSError(errno.ECONNRESET, "reset")])
def test_other_failures_are_not_out_of_memory(err: Exception) -> None:
    assert not is_out_of_memory(err)


def test_the_limit_drops_below_the_calls_held_and_recovers_one_call_at_a_time() -> None:
    now, changes, configured = [0.0], [], [8]
    limit = AdmissionLimit(lambda: configured[0], recover_s=60,
                           on_change=lambda n, why: changes.append((n, why)),
                           clock=lambda: now[0])
    assert limit.limit() == 8 and not limit.lowered()
    assert limit.out_of_memory("llm", live_calls=5) == 4
    assert limit.out_of_memory("stt", live_calls=1) == 1  # never under one call
    now[0] = 59.0
    assert limit.limit() == 1 and limit.lowered()
    now[0] = 150.0
    assert limit.limit() == 3  # two quiet periods: two calls more
    configured[0] = 4  # a reload lowered the setting: recovered once it is reached
    now[0] = 200.0
    assert limit.limit() == 4 and not limit.lowered()
    assert changes == [(4, "llm out of memory"), (1, "stt out of memory"), (3, "recovering"),
                       (4, "recovered")]


class FailingSink(FakeAudioSink):
    """A sink on a full disk: every write raises ENOSPC, as the file system does."""

    writes = 0

    def caller(self, pcm: bytes) -> None:
        self.writes += 1
        raise OSError(errno.ENOSPC, "No space left on device")


class FullDisk:
    def __init__(self) -> None:
        self.sink = FailingSink()

    async def open(self, info: CallInfo, sample_rate: int) -> FailingSink:
        return self.sink


def info(call_id: str = "c1") -> CallInfo:
    return CallInfo(call_id, "MZ1", "CA1", "", None, "inbound", CallState.LISTENING,
                    datetime.now(UTC))


async def test_a_full_disk_stops_the_recording_once_with_an_alert() -> None:
    bus, metrics = EventBus(), Metrics()
    part = ResiliencePart(ResilienceSettings(), metrics, bus)
    events = bus.subscribe(["recording"])
    disk = FullDisk()
    sink = await part.alarmed(disk).open(info(), 8000)
    assert sink is not None
    guarded = GuardedSink("c1", sink)
    for _ in range(5):  # the call goes on sending audio; nothing raises into it
        guarded.caller(b"\0" * 320)
    assert not guarded.recording and disk.sink.writes == 1
    event = await asyncio.wait_for(events.get(), 1)
    assert event.event == "recording.stopped"
    assert RecordingStopped.model_validate(event.data).reason == "disk_full"
    assert metrics.registry.get_sample_value("reautod_recordings_stopped_total",
                                             {"reason": "disk_full"}) == 1


async def test_an_unopenable_recording_raises_the_alarm_and_a_store_error() -> None:
    alarms: list[RecordingStopped] = []

    class NoRoom:
        async def open(self, info: CallInfo, sample_rate: int) -> FakeAudioSink:
            raise StoreError("cannot create recording", code="disk_full")

    with pytest.raises(StoreError) as refused:
        await AlarmedRecording(NoRoom(), alarms.append).open(info(), 8000)
    assert refused.value.code == "disk_full" and [a.reason for a in alarms] == ["disk_full"]


async def test_the_recorder_on_a_full_disk_says_so_on_the_next_write(tmp_path: Path) -> None:
    # the track files are /dev/full: the first flush fails with ENOSPC in the writer task
    recorder = CallRecorder(tmp_path, uuid.uuid4(), sample_rate=8000)
    recorder.directory.mkdir(parents=True)
    for direction in RecordingDirection:
        (recorder.directory / f"{direction.value}.wav.partial").symlink_to("/dev/full")
    await recorder.start()
    recorder.write(RecordingDirection.INBOUND, b"\0" * 64000)  # enough to wake the writer
    with pytest.raises(StoreError) as stopped:
        for _ in range(500):
            await asyncio.sleep(0.01)
            recorder.write(RecordingDirection.INBOUND, b"\0" * 320)
    assert stopped.value.code == "disk_full" and "No space left" in stopped.value.message
    with pytest.raises(StoreError):  # left partial, for the next start to finalise
        await recorder.close()


async def test_a_shed_inbound_call_is_counted_and_keeps_a_slot_for_callers() -> None:
    now = [0.0]
    metrics = Metrics()
    governor = LoadGovernor(slo_s=1.0, window_s=60, min_turns=3, max_queue=4,
                            inbound_reserve_s=60, clock=lambda: now[0])

    class Manager:
        full = True

        def check_admission(self) -> None:
            if self.full:
                raise OverloadedError("at capacity: 4 live calls (calls.max_concurrent = 4)")

    manager = Manager()
    gate = InboundShedding(lambda: manager, governor, metrics)
    assert gate.shed_inbound() == "at capacity: 4 live calls (calls.max_concurrent = 4)"
    assert metrics.registry.get_sample_value("reautod_inbound_shed_total",
                                             {"reason": "overloaded"}) == 1
    assert governor.reserving()
    held = governor.pace(3, active=3)  # a slot freed: it is kept for the caller, not dialed
    assert held.allowed == 2 and "inbound callers" in (held.reason or "")
    manager.full = False
    assert gate.shed_inbound() is None
    now[0] = 61.0
    assert not governor.reserving() and governor.pace(3, active=3).allowed == 3
    assert InboundShedding(lambda: None, governor, metrics).shed_inbound() is None


def test_gpu_memory_and_a_lowered_limit_hold_dials_back() -> None:
    used: list[float | None] = [0.95]
    limit = AdmissionLimit(lambda: 8, recover_s=300)
    governor = LoadGovernor(slo_s=1.0, window_s=60, min_turns=3, max_queue=4,
                            max_gpu_memory=0.9, gpu_memory=lambda: used[0], admission=limit,
                            inbound_reserve_s=60)
    held = governor.pace(4, active=2)
    assert held.allowed == 0 and held.reason == "GPU memory 95% used (max_gpu_memory = 90%)"
    used[0] = None  # no GPU: the signal says nothing
    assert governor.pace(4, active=2).allowed == 4
    limit.out_of_memory("llm", live_calls=4)  # now 3 calls at most, 2 live: room for one
    lowered = governor.pace(4, active=2)
    assert lowered.allowed == 1 and "lowered to 3" in (lowered.reason or "")
    governor.inbound_shed()  # and one of those kept for a caller
    assert governor.pace(4, active=2).allowed == 0


def test_the_call_manager_admits_by_the_lowered_limit() -> None:
    class Lowered:
        """An Admission whose limit the live calls fill (0: as if every slot were taken)."""

        room = 1

        def limit(self) -> int:
            return self.room

    admission = Lowered()
    manager = CallManager(FakeEngines(), Settings(calls={"max_concurrent": 2}),
                          RecordingObserver(), admission=admission)
    manager.check_admission()
    admission.room = 0
    with pytest.raises(OverloadedError) as refused:
        manager.check_admission()
    assert refused.value.message == ("at capacity: 0 live calls (calls.max_concurrent = 2, "
                                     "lowered to 0 after out of memory)")
    assert manager.refused["capacity"] == 1


async def test_every_engine_s_out_of_memory_is_typed_and_lowers_the_limit_once_each() -> None:
    bus, metrics = EventBus(), Metrics()
    part = ResiliencePart(ResilienceSettings(oom_recover_s=300), metrics, bus)
    events = bus.subscribe(["admission"])
    live = [6]
    limit = part.admission_limit(lambda: 8)
    oom = OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    fakes = FakeEngines(stt=FakeSTT(fail_with=oom, fail_next=1),
                        llm=FakeLLM(fail_with=RuntimeError("shape mismatch"), fail_next=1),
                        tts=FakeTTS(fail_with=MemoryError(), fail_next=1))
    engines = part.memory_guarded(fakes, lambda: live[0])
    with pytest.raises(EngineError) as stt:
        await engines.stt.transcribe(np.zeros(1600, dtype=np.float32), call_id="c1")
    assert stt.value.code == "engine_out_of_memory" and stt.value.__cause__ is oom
    with pytest.raises(RuntimeError, match="shape mismatch"):  # not memory: passed on as it was
        [c async for c in engines.llm.stream_chat([], call_id="c1")]
    live[0] = 3
    with pytest.raises(EngineError) as tts:
        [c async for c in engines.tts.synthesize("Hello.", call_id="c1")]
    assert tts.value.code == "engine_out_of_memory"
    assert limit.limit() == 2  # one fewer than the 3 calls held the second time
    # the next requests work; what the wrapper does not name reaches the inner engines
    assert (await engines.stt.transcribe(np.zeros(1600, dtype=np.float32), call_id="c1")).text
    assert engines.tts.sample_rate == fakes.tts.sample_rate
    engines.require_ready()
    changes = [(await asyncio.wait_for(events.get(), 1)).data for _ in range(2)]
    assert [(c.limit, c.configured, c.reason) for c in changes] == [
        (5, 8, "stt out of memory"), (2, 8, "tts out of memory")]
    sample = metrics.registry.get_sample_value
    assert sample("reautod_engine_out_of_memory_total", {"engine": "stt"}) == 1
    assert sample("reautod_engine_out_of_memory_total", {"engine": "tts"}) == 1
    assert sample("reautod_admission_limit", {}) == 2


def test_the_part_builds_its_pieces_in_order() -> None:
    part = ResiliencePart(ResilienceSettings(), Metrics(), EventBus())
    with pytest.raises(RuntimeError, match="admission_limit"):
        part.memory_guarded(FakeEngines(), lambda: 0)
    with pytest.raises(RuntimeError, match="load_governor"):
        part.inbound_shedding(lambda: None)
    part.admission_limit(lambda: 4)
    governor = part.load_governor(dict, gpu_memory=lambda: 0.5)
    assert governor.admission is part.admission and governor.inbound_reserve_s == 60
    assert part.inbound_shedding(lambda: None).shed_inbound() is None

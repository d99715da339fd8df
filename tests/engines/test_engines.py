"""Each engine really loaded and run on the random-weight test models, through `EngineSet`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import soundfile
import soxr

from reautod.config import Settings
from reautod.engines import EngineSet, EngineState
from reautod.engines.base import ChatMessage, TokenChunk
from reautod.engines.llm import LlamaLLM
from reautod.engines.stt import WhisperSTT
from reautod.engines.tts import PiperTTS
from reautod.errors import EngineError, OverloadedError, UnavailableError, ValidationError
from tests.speech import SPEECH_DIR

CHAT = [ChatMessage("system", "You are a helpful agent."), ChatMessage("user", "hello how are you")]


def speech_16k(name: str) -> npt.NDArray[np.float32]:
    data, rate = soundfile.read(SPEECH_DIR / name, dtype="float32", always_2d=True)
    mono = data.mean(axis=1)
    return np.asarray(soxr.resample(mono, rate, 16000), dtype=np.float32)


@pytest.fixture(scope="module")
def speech_files() -> list[str]:
    names = sorted(p.name for p in SPEECH_DIR.glob("*.wav"))
    if not names:
        pytest.skip(f"no speech samples in {SPEECH_DIR}")
    return names[:3]


@pytest.fixture(scope="module")
def utterance() -> npt.NDArray[np.float32]:
    """3 s of real speech at 16 kHz, or a voiced-like synthetic signal where none is shipped."""
    names = sorted(p.name for p in SPEECH_DIR.glob("*.wav"))
    if names:
        return speech_16k(names[0])[: 3 * 16000]
    t = np.arange(3 * 16000) / 16000
    envelope = 0.5 * (1 + np.sin(2 * np.pi * 3 * t))  # syllable-rate amplitude
    return (0.3 * envelope * np.sin(2 * np.pi * (120 + 40 * t) * t)).astype(np.float32)


@pytest.fixture
async def engines(test_model_overrides: dict[str, Any]) -> AsyncIterator[EngineSet]:
    engine_set = await EngineSet.load(Settings(**test_model_overrides))
    yield engine_set
    await engine_set.close()


async def test_all_three_load_ready(engines: EngineSet) -> None:
    assert engines.ready
    engines.require_ready()
    assert [h.state for h in engines.health()] == [EngineState.READY] * 3
    assert isinstance(engines.stt, WhisperSTT)
    assert isinstance(engines.llm, LlamaLLM)
    assert isinstance(engines.tts, PiperTTS)
    checks = engines.health_checks()
    assert sorted(checks) == ["llm", "stt", "tts"]
    assert all([(await check())[0] for check in checks.values()])


async def test_transcribes_real_speech(engines: EngineSet, speech_files: list[str]) -> None:
    for name in speech_files:
        audio = speech_16k(name)
        result = await engines.stt.transcribe(audio, call_id="call-1")
        assert isinstance(result.text, str)
        assert 0.0 <= result.confidence <= 1.0
        assert result.audio_s == pytest.approx(audio.size / 16000)
        assert result.timing.queue_wait_s >= 0 and result.timing.compute_s >= 0
    stats = engines.stats()["stt"]
    assert stats.requests == len(speech_files) and stats.completed == len(speech_files)


async def test_stt_rejects_bad_audio(engines: EngineSet) -> None:
    with pytest.raises(ValidationError, match="mono"):
        await engines.stt.transcribe(np.zeros((2, 100), np.float32), call_id="c")
    with pytest.raises(ValidationError, match="empty"):
        await engines.stt.transcribe(np.zeros(0, np.float32), call_id="c")
    with pytest.raises(ValidationError, match="NaN"):
        await engines.stt.transcribe(np.full(1600, np.nan, np.float32), call_id="c")
    with pytest.raises(ValidationError, match="float"):
        await engines.stt.transcribe(np.zeros(1600, np.int16), call_id="c")  # type: ignore[arg-type]


async def test_two_concurrent_callers_are_both_served(
    engines: EngineSet, utterance: npt.NDArray[np.float32]
) -> None:
    audio = utterance
    first, second = await asyncio.gather(
        engines.stt.transcribe(audio, call_id="a"), engines.stt.transcribe(audio, call_id="b"))
    assert isinstance(first.text, str) and isinstance(second.text, str)
    # one worker: the second waited for the first
    assert max(first.timing.queue_wait_s, second.timing.queue_wait_s) > 0
    replies = await asyncio.gather(*(collect(engines.llm.stream_chat(CHAT, call_id=c))
                                     for c in ("a", "b")))
    assert all(reply[-1].timing is not None for reply in replies)


async def collect(stream: AsyncIterator[TokenChunk]) -> list[TokenChunk]:
    return [chunk async for chunk in stream]


async def test_llm_streams_tokens_with_timing_on_last(engines: EngineSet) -> None:
    chunks = await collect(engines.llm.stream_chat(CHAT, call_id="c", max_tokens=12))
    text_chunks = [c for c in chunks if c.text]
    assert text_chunks, "the model produced no text"
    assert all(c.timing is None for c in chunks[:-1])
    last = chunks[-1]
    assert last.timing is not None and last.timing.compute_s >= 0
    # the prompt's length in tokens, for the cost meter: the chat template alone is several
    assert last.prompt_tokens is not None and len(CHAT) < last.prompt_tokens < 200
    assert isinstance(engines.llm, LlamaLLM)
    assert engines.llm.tokens_generated <= 12  # the cap holds; random weights never stop alone


async def test_llm_stops_within_a_token_on_cancel(engines: EngineSet) -> None:
    llm = engines.llm
    assert isinstance(llm, LlamaLLM)
    stream = llm.stream_chat(CHAT, call_id="c", max_tokens=150)
    first = await stream.__anext__()
    assert first.text
    await stream.aclose()  # sets the cancel flag the worker checks between tokens
    # How many tokens ran between the first chunk and the flag depends on the box's load (the
    # model makes ~1,000 tokens/s); what the engine promises is at most one token after it.
    at_cancel = llm.tokens_generated
    # let the worker settle; a generation that ignored the flag would add hundreds of tokens here
    await asyncio.sleep(0.3)
    assert llm.tokens_generated - at_cancel <= 1
    # the worker is free: another request is served
    second = await collect(llm.stream_chat(CHAT, call_id="d", max_tokens=5))
    assert second[-1].timing is not None
    assert engines.stats()["llm"].cancelled == 1


async def test_llm_cancelled_by_task_cancellation(engines: EngineSet) -> None:
    got_one = asyncio.Event()

    async def consume() -> None:
        async for _chunk in engines.llm.stream_chat(CHAT, call_id="c", max_tokens=150):
            got_one.set()
            await asyncio.sleep(3600)  # the caller barges in while we "play" the first token

    task = asyncio.create_task(consume())
    await asyncio.wait_for(got_one.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    chunks = await collect(engines.llm.stream_chat(CHAT, call_id="d", max_tokens=3))
    assert chunks[-1].timing is not None
    assert engines.stats()["llm"].cancelled == 1


async def test_llm_rejects_bad_messages(engines: EngineSet) -> None:
    with pytest.raises(ValidationError):
        await collect(engines.llm.stream_chat([], call_id="c"))
    with pytest.raises(ValidationError, match="role"):
        await collect(engines.llm.stream_chat([ChatMessage("robot", "x")],  # type: ignore[arg-type]
                                              call_id="c"))


async def test_tts_yields_int16_audio_per_sentence(engines: EngineSet) -> None:
    text = "Hello there. This is Alex from Acme Solar. Do you have a minute?"
    chunks = [c async for c in engines.tts.synthesize(text, call_id="c")]
    assert len(chunks) == 3
    for chunk in chunks:
        assert chunk.sample_rate == engines.tts.sample_rate
        assert len(chunk.pcm) > 0 and len(chunk.pcm) % 2 == 0
        samples = np.frombuffer(chunk.pcm, dtype=np.int16)
        assert np.abs(samples.astype(np.int32)).max() > 0
        assert chunk.timing is not None and chunk.timing.compute_s >= 0
    assert [c async for c in engines.tts.synthesize("   ", call_id="c")] == []


async def test_tts_stops_within_a_sentence_on_close(engines: EngineSet) -> None:
    text = " ".join(f"Sentence number {i} is here." for i in range(40))
    tts = engines.tts
    assert isinstance(tts, PiperTTS)
    stream = tts.synthesize(text, call_id="c")
    await stream.__anext__()
    await stream.aclose()  # type: ignore[attr-defined]  # sets the flag checked per sentence
    # The tiny voice makes a sentence in microseconds, so how many ran before the flag depends on
    # the box's load; the promise is at most one sentence after it.
    at_cancel = tts.sentences_synthesized
    await asyncio.sleep(0.3)  # a worker that ignored the flag would finish all 40 meanwhile
    assert tts.sentences_synthesized - at_cancel <= 1
    chunks = [c async for c in tts.synthesize("Next one.", call_id="d")]
    assert len(chunks) == 1
    stats = engines.stats()["tts"]
    # each request counted once: the first as cancelled, or as completed where the tiny voice
    # finished all 40 sentences before the close reached the worker
    assert (stats.cancelled, stats.completed) in ((1, 1), (0, 2))


async def test_full_queue_refuses_with_overloaded(
    test_model_overrides: dict[str, Any], utterance: npt.NDArray[np.float32]
) -> None:
    settings = Settings(**test_model_overrides, engines={"queue_size": 1})
    engine_set = await EngineSet.load(settings, warm_up=False)
    audio = utterance
    try:
        # All four are submitted before this task yields: one may be running, one waits in the
        # queue of 1, and the rest are refused at once.
        results = await asyncio.gather(
            *(engine_set.stt.transcribe(audio, call_id=f"c{i}") for i in range(4)),
            return_exceptions=True)
        refused = [r for r in results if isinstance(r, OverloadedError)]
        served = [r for r in results if not isinstance(r, BaseException)]
        assert len(refused) >= 2 and len(served) + len(refused) == 4
        assert engine_set.stats()["stt"].rejected == len(refused)
        assert "queue is full" in refused[0].message
    finally:
        await engine_set.close()


async def test_missing_models_leave_the_set_usable_with_reasons(tmp_path: Path) -> None:
    settings = Settings(models={"dir": str(tmp_path / "empty"), "profile": "test",
                                "device": "cpu"})
    engine_set = await EngineSet.load(settings)
    try:
        assert not engine_set.ready
        health = {h.name: h for h in engine_set.health()}
        for name in ("stt", "llm", "tts"):
            assert health[name].state == EngineState.MISSING
            assert "reautoctl models pull --test" in health[name].detail
            assert str(tmp_path / "empty") in health[name].detail
        with pytest.raises(UnavailableError, match="models pull --test") as info:
            engine_set.require_ready()
        assert "stt" in info.value.message and "tts" in info.value.message
        with pytest.raises(UnavailableError):
            await engine_set.stt.transcribe(np.zeros(1600, np.float32), call_id="c")
        with pytest.raises(UnavailableError):
            await collect(engine_set.llm.stream_chat(CHAT, call_id="c"))
        with pytest.raises(UnavailableError):
            [c async for c in engine_set.tts.synthesize("hi", call_id="c")]
        ok, detail = await engine_set.health_checks()["llm"]()
        assert not ok and "missing" in detail
        report = engine_set.report()
        assert report.ready is False and report.engines[0].state == "missing"
    finally:
        await engine_set.close()


async def test_missing_default_profile_names_its_pull_and_the_installed_one(
    test_models_dir: Path
) -> None:
    # after `models pull --test` on an offline machine, with no profile configured (small)
    engine_set = await EngineSet.load(Settings(models={"dir": str(test_models_dir)}))
    try:
        assert not engine_set.ready
        for health in engine_set.health():
            assert "run `reautoctl models pull --profile small`" in health.detail
            assert 'installed profile (test): set `[models] profile = "test"`' in health.detail
    finally:
        await engine_set.close()


async def test_gpu_profile_names_its_pull_command(tmp_path: Path) -> None:
    settings = Settings(models={"dir": str(tmp_path), "profile": "gpu", "device": "cpu"})
    engine_set = await EngineSet.load(settings)
    try:
        detail = engine_set.health()[1].detail
        assert "reautoctl models pull --profile gpu" in detail
        assert "Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf" in detail
    finally:
        await engine_set.close()


async def test_corrupt_model_is_failed_not_fatal(tmp_path: Path, test_models_dir: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF this is not a model")
    settings = Settings(models={"dir": str(test_models_dir), "profile": "test", "device": "cpu",
                                "llm": str(broken)})
    engine_set = await EngineSet.load(settings, warm_up=False)
    try:
        health = {h.name: h for h in engine_set.health()}
        assert health["llm"].state == EngineState.FAILED
        assert "failed to load" in health["llm"].detail
        assert health["stt"].state == EngineState.READY
        with pytest.raises(UnavailableError, match="llm"):
            engine_set.require_ready()
    finally:
        await engine_set.close()


async def test_metrics_receive_engine_events(test_model_overrides: dict[str, Any]) -> None:
    from reautod.observability.metrics import Metrics

    metrics = Metrics()
    engine_set = await EngineSet.load(Settings(**test_model_overrides), warm_up=False,
                                      observer=metrics)
    try:
        await engine_set.stt.transcribe(np.zeros(8000, np.float32), call_id="c")
        await collect(engine_set.llm.stream_chat(CHAT, call_id="c", max_tokens=3))
    finally:
        await engine_set.close()
    sample = metrics.registry.get_sample_value
    assert sample("reautod_engine_requests_total", {"engine": "stt"}) == 1
    assert sample("reautod_engine_requests_total", {"engine": "llm"}) == 1
    assert sample("reautod_engine_compute_seconds_count", {"engine": "llm"}) == 1
    assert sample("reautod_engine_queue_depth", {"engine": "stt"}) == 0


async def test_engines_status_method(tmp_path: Path) -> None:
    from reautod.engines.control import engine_methods
    from reautod.methods import NoParams

    settings = Settings(models={"dir": str(tmp_path), "profile": "cpu", "device": "cpu"})
    engine_set = await EngineSet.load(settings)
    try:
        [method] = engine_methods(engine_set)
        assert method.name == "engines.status"
        result = await method.handler(NoParams())
    finally:
        await engine_set.close()
    assert result.ready is False
    assert [e.name for e in result.engines] == ["stt", "llm", "tts"]
    assert all("reautoctl models pull --profile cpu" in e.detail for e in result.engines)
    assert result.engines[0].stats.requests == 0


async def test_engine_past_its_timeout_fails_visibly(
    test_model_overrides: dict[str, Any], utterance: npt.NDArray[np.float32]
) -> None:
    settings = Settings(**test_model_overrides,
                        engines={"stt_timeout_s": 1e-6, "llm_timeout_s": 1e-6})
    engine_set = await EngineSet.load(settings, warm_up=False)
    try:
        with pytest.raises(EngineError) as info:
            await engine_set.stt.transcribe(utterance, call_id="c")
        assert info.value.code == "engine_timeout"
        with pytest.raises(EngineError):
            await collect(engine_set.llm.stream_chat(CHAT, call_id="c", max_tokens=50))
        health = {h.name: h for h in engine_set.health()}
        assert health["stt"].state == EngineState.FAILED and "timed out" in health["stt"].detail
        assert health["stt"].failures == 1
        ok, detail = await engine_set.health_checks()["llm"]()
        assert not ok and "timed out" in detail
        engine_set.require_ready()  # loaded engines still take calls; each turn may fail alone
    finally:
        await engine_set.close()


async def test_stt_cancelled_while_queued_is_never_run(
    engines: EngineSet, utterance: npt.NDArray[np.float32]
) -> None:
    first = asyncio.create_task(engines.stt.transcribe(utterance, call_id="a"))
    second = asyncio.create_task(engines.stt.transcribe(utterance, call_id="b"))
    await asyncio.sleep(0)  # both submitted; the second waits behind the first
    second.cancel()
    with pytest.raises(asyncio.CancelledError):
        await second
    assert isinstance((await first).text, str)
    stats = engines.stats()["stt"]
    assert (stats.requests, stats.completed, stats.cancelled) == (2, 1, 1)

"""One lean conversation with the real SmolLM2-135M (llama.cpp) as the model: it rambles and
ignores instructions, and the decisions are still right (phrases decide; its constrained JSON
only fills a gap)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reautod.dialogue.agent import AgentFactory
from reautod.dialogue.llm_extract import LlamaJsonModel
from reautod.dialogue.vocabulary import Outcome
from reautod.engines.llm import LlamaLLM
from reautod.store.repositories import AppointmentRepository
from tests.dialogue.conftest import Rig
from tests.dialogue.fakes import NOW, clock, converse

pytestmark = pytest.mark.slow


@pytest.fixture
async def models(smollm2: Path) -> AsyncIterator[tuple[LlamaLLM, LlamaJsonModel]]:
    llm = LlamaLLM.load(smollm2, n_ctx=2048, n_gpu_layers=0, n_threads=1, queue_size=4,
                        timeout_s=60, max_tokens=40)
    extractor = LlamaJsonModel.load(smollm2, n_threads=1, timeout_s=60)
    try:
        yield llm, extractor
    finally:
        await llm.close()
        await extractor.close()


async def test_decisions_hold_with_the_real_tiny_model(
        rig: Rig, models: tuple[LlamaLLM, LlamaJsonModel]) -> None:
    llm, extractor = models
    factory = AgentFactory(records=rig.records, effects=rig.effects, json_model=extractor,
                           clock=clock)
    agent = await rig.agent("real-estate-sellers", factory)
    # The model's JSON may take a while on a busy CPU; the playbook's budget is for a GPU box.
    agent.playbook = agent.playbook.model_copy(update={"model": agent.playbook.model.model_copy(
        update={"extract_timeout_s": 10.0})})
    talk = await converse(agent, [
        "Yes, I have a minute.",
        "Yes, I'm the owner.",
        "Well, after the kids finish school, I suppose.",  # no phrase: the model may fill it
        "We're moving closer to our grandkids.",
        "Maybe around four hundred thousand.",
        "Tuesday at three works.",
        "Yes please.",
    ], llm)
    assert talk.result.outcome is Outcome.BOOKED
    assert rig.records.transitions()[-2:] == [("qualifier", "scheduler"), ("scheduler", "closer")]
    assert agent.state.facts["price"].value == 400_000
    # Whatever the model guessed for the timeline, it is one of the options, marked as a guess.
    timeline = agent.state.facts.get("timeline")
    assert timeline is None or (timeline.evidence == "model" and
                                timeline.value in ("soon", "months", "later"))
    [row] = await AppointmentRepository(rig.db).between(NOW, datetime(2027, 1, 1, tzinfo=UTC))
    assert row.starts_at == datetime(2026, 12, 15, 21, 0, tzinfo=UTC)
    generated = [h for r, h in zip(talk.replies, talk.heard, strict=True) if r.llm is not None]
    assert generated and all(h.strip() for h in generated)  # the model spoke, words unchecked

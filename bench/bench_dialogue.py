"""The qualifying agent's conversation report: personas x runs -> outcome accuracy, turns per
call, and how long the agent takes to decide a reply (the part of a turn that is ours).

Each run plays every persona of the real-estate example playbook through a fresh `CallAgent`
(SQLite store for the slots, the model's part of each reply left to the pipeline, as in a call).
Latency of `respond()` is printed as percentiles, with the reference measured in the same run:
the deterministic reading of the same turns alone (`Extractor.analyze` in a thread), so the
ratio is the agent's own overhead over reading the words.

    python bench/bench_dialogue.py [--runs 20] [--json-model path/to/model.gguf]

`--json-model` adds the model's constrained-JSON supplement (asked only where phrases find
nothing), as a GPU box would run it.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from reautod.config import DatabaseSettings
from reautod.dialogue.agent import AgentFactory
from reautod.dialogue.extraction import Extractor
from reautod.dialogue.llm_extract import JsonModel, LlamaJsonModel
from reautod.dialogue.playbook_file import load_playbook_file
from reautod.dialogue.ports import AgentCall, LeadChanges, LeadContext
from reautod.dialogue.replies import After, EndCause
from reautod.dialogue.slots import CampaignSlots
from reautod.dialogue.timeparse import warm_up
from reautod.store.database import Database
from reautod.store.records import CallStarted, Record
from reautod.store.repositories import (
    AppointmentRepository,
    CallRepository,
    CampaignRepository,
    ContactInput,
    ContactRepository,
)

PLAYBOOK = Path(__file__).resolve().parent.parent / "reautod/dialogue/examples/real-estate-sellers.yaml"
NOW = datetime(2026, 12, 8, 16, 0, tzinfo=UTC)  # a Tuesday, 10:00 in Chicago
PERSONAS: dict[str, tuple[str, list[str]]] = {
    "books": ("booked", ["Sure, go ahead.", "Yes, I'm the owner.", "In a few months probably.",
                         "We want a smaller place.", "About three hundred thousand.",
                         "Thursday at 10 am", "Yes."]),
    "callback": ("callback", ["I'm in a meeting, call me back tomorrow at 2.", "Yes, that works."]),
    "objects": ("booked", ["The market is bad right now.", "I already have a realtor.",
                           "Fine, go ahead.", "I own it.", "As soon as possible.",
                           "Divorce, honestly.", "Maybe 450k.", "Friday morning",
                           "The first one.", "Yes."]),
    "not_interested": ("not_interested", ["Not interested.", "No thank you, really not interested."]),
    "opt_out": ("opted_out", ["Take me off your list."]),
    "robot": ("qualified", ["Are you a real person?", "Okay, sure.", "Yes we own it.",
                            "Next year maybe.", "Just curious.", "Around 600 thousand."]),
    "wrong_person": ("wrong_person", ["You have the wrong number."]),
}
# No phrase for the timeline: with --json-model the model is asked; booked whatever it guesses.
WITH_MODEL = {"books_unclear": ("booked", ["Sure.", "I'm the owner.", "Once the kids finish school.",
                                           "We want a smaller place.", "About 300k.",
                                           "Thursday at 10 am", "Yes."])}


class _Sink:
    def submit(self, record: Record) -> bool:
        return True


class _Effects:
    async def opt_out(self, lead: LeadContext, *, reason: str) -> None:
        return None

    async def schedule_callback(self, lead: LeadContext, at: datetime, *, reason: str) -> None:
        return None

    async def update_lead(self, lead: LeadContext, changes: LeadChanges) -> None:
        return None


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class TextRun:
    """Personas x runs typed straight into the agent: what each call ended as, and timings."""

    calls: int = 0
    right: int = 0
    turns: list[int] = field(default_factory=list)
    agent_s: list[float] = field(default_factory=list)  # respond() per caller turn
    reading_s: list[float] = field(default_factory=list)  # Extractor.analyze of the same turn
    outcomes: Counter[str] = field(default_factory=Counter)


async def run_text(runs: int, json_model: JsonModel | None = None,
                   personas: dict[str, tuple[str, list[str]]] | None = None) -> TextRun:
    """Play `personas` (default PERSONAS) `runs` times through fresh CallAgents."""
    loaded = load_playbook_file(PLAYBOOK)
    booking = loaded.playbook.booking
    assert booking is not None
    await asyncio.to_thread(warm_up)
    extractor = Extractor(loaded.playbook)
    out = TextRun()
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite+aiosqlite:///{tmp}/bench.db", DatabaseSettings())
        await db.open()
        await db.upgrade("head")
        campaign = await CampaignRepository(db).create("bench")
        contact = await ContactRepository(db).upsert(ContactInput("+13125550123", name="Dana"))
        factory = AgentFactory(records=_Sink(), effects=_Effects(), json_model=json_model,
                               clock=lambda: NOW)
        for _run in range(runs):
            slots = CampaignSlots(booking, AppointmentRepository(db), campaign.id, clock=lambda: NOW)
            for name, (expected, lines) in (personas or PERSONAS).items():
                call_id = uuid.uuid4()
                await CallRepository(db).write([CallStarted(call_id, NOW)])
                lead = LeadContext(phone=contact.phone_e164, timezone="America/Chicago",
                                   lead_id=None, contact_id=contact.id, campaign_id=campaign.id,
                                   name="Dana", custom={"street": "Maple Street"})
                agent = factory.start(AgentCall(call_id, lead), loaded, scheduler=slots)
                reply = await agent.opening()
                for said in lines:
                    if reply.after is not After.LISTEN:
                        break
                    started = time.perf_counter()
                    reply = await agent.respond(said)
                    out.agent_s.append(time.perf_counter() - started)
                    started = time.perf_counter()
                    await asyncio.to_thread(extractor.analyze, said, timezone="America/Chicago",
                                            now=NOW)
                    out.reading_s.append(time.perf_counter() - started)
                    if reply.llm is not None:
                        agent.heard(reply.id, reply.text)  # the model's words left out
                cause = EndCause.AGENT if reply.after is not After.LISTEN else EndCause.CALLER_HUNG_UP
                result = await agent.end(cause)
                out.outcomes[f"{name}: {result.outcome.value}"] += 1
                out.right += result.outcome.value == expected
                out.calls += 1
                out.turns.append(agent.state.turns)
            # Every run books the same times: free them for the next.
            await db.transaction(lambda conn: conn.exec_driver_sql("DELETE FROM appointments"))
        await db.close()
    return out


async def main(runs: int, json_model_path: Path | None) -> None:
    json_model: JsonModel | None = None
    if json_model_path is not None:
        json_model = await asyncio.to_thread(LlamaJsonModel.load, json_model_path)
    text = await run_text(runs, json_model, PERSONAS | (WITH_MODEL if json_model else {}))
    calls, right, turns = text.calls, text.right, text.turns
    print(f"personas x runs: {calls // runs} x {runs} = {calls} calls"
          f"{' (with the model JSON supplement)' if json_model else ''}")
    print(f"outcome accuracy: {right}/{calls} = {right / calls:.1%}")
    print(f"caller turns per call: mean {statistics.mean(turns):.1f}, max {max(turns)}")
    for label, values in (("agent respond()", text.agent_s),
                          ("reading alone (reference)", text.reading_s)):
        ms = [v * 1000 for v in values]
        print(f"{label:26} p50 {_pct(ms, .5):6.2f} ms  p95 {_pct(ms, .95):6.2f} ms  "
              f"p99 {_pct(ms, .99):6.2f} ms  (n={len(ms)})")
    print(f"ratio agent / reading at p50: {_pct(text.agent_s, .5) / _pct(text.reading_s, .5):.2f}")
    if right != calls:
        print("wrong outcomes:", dict(text.outcomes))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--json-model", type=Path, help="a GGUF for the constrained-JSON supplement")
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.json_model))

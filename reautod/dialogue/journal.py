"""Where one call's agent writes down what happened: records for the store (write-behind) and
events for the observer. Every record carries a client id and a per-call sequence number, so a
replayed spool writes nothing twice."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from reautod.dialogue.ports import AgentObserver, LeadContext, RecordSink
from reautod.dialogue.scoring import Score
from reautod.dialogue.vocabulary import Tool
from reautod.store.enums import DecisionStatus
from reautod.store.records import (
    AgentDecisionRecord,
    AgentTransitionRecord,
    PlaybookAssigned,
    Record,
    ScoreUpdate,
)

log = logging.getLogger(__name__)


class CallJournal:
    def __init__(self, call_id: uuid.UUID, lead: LeadContext, sink: RecordSink,
                 observer: AgentObserver | None, clock: Callable[[], datetime]) -> None:
        self.call_id = call_id
        self.lead = lead
        self._sink = sink
        self._observer = observer
        self._clock = clock
        self._transitions = 0
        self._decisions = 0
        self.refused = 0  # records the sink did not take (its queue was full)

    def _submit(self, record: Record) -> None:
        if not self._sink.submit(record):
            self.refused += 1
            log.error("call %s: the store refused a %s record", self.call_id, record.kind)

    def assigned(self, playbook: str, version: str, variant: str) -> None:
        self._submit(PlaybookAssigned(self.call_id, playbook, version, variant))

    def transition(self, from_stage: str | None, to_stage: str, reason: str) -> None:
        self._submit(AgentTransitionRecord(uuid.uuid4(), self.call_id, self._transitions,
                                           to_stage, self._clock(), from_stage, reason))
        self._transitions += 1
        if self._observer is not None:
            self._observer.transition(self.call_id, from_stage, to_stage, reason)

    def scored(self, score: Score) -> None:
        self._submit(ScoreUpdate(uuid.uuid4(), score.score, self._clock(), call_id=self.call_id,
                                 contact_id=self.lead.contact_id, lead_id=self.lead.lead_id,
                                 factors=score.factors_json(), reason=score.reason()))
        if self._observer is not None:
            self._observer.scored(self.call_id, score.score, score.qualified)

    def decision(self, stage: str, tool: Tool, status: DecisionStatus, *,
                 args: dict[str, Any] | None = None, evidence: dict[str, Any] | None = None,
                 detail: str | None = None) -> None:
        self._submit(AgentDecisionRecord(uuid.uuid4(), self.call_id, self._decisions, stage,
                                         tool.value, status, self._clock(), args or {},
                                         evidence or {}, detail))
        self._decisions += 1

    def ended(self, outcome: str, booked: bool) -> None:
        if self._observer is not None:
            self._observer.ended(self.call_id, outcome, booked)

"""Typed results of the dialogue's control methods, shared by the daemon, reautoctl and the TUI."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field


class Result(BaseModel):
    model_config = ConfigDict(frozen=True)


class Problem(Result):
    line: int | None
    path: str
    message: str


class VariantInfo(Result):
    name: str
    weight: int


class PlaybookSummary(Result):
    """One playbook file: valid (name, version) or not (problems)."""

    file: str
    name: str | None = None
    label: str | None = None
    version: str | None = None
    stages: list[str] = []
    variants: list[VariantInfo] = []
    problems: list[Problem] = []


class PlaybookList(Result):
    directory: str
    playbooks: list[PlaybookSummary]


class ExitInfo(Result):
    when: str
    then: str  # "-> stage" or "end: outcome"


class StageInfo(Result):
    name: str
    goal: str
    learn: list[str]
    tools: list[str]
    exits: list[ExitInfo]


class LibraryInfo(Result):
    id: str
    kind: str
    triggers: int


class PlaybookDetail(Result):
    summary: PlaybookSummary
    description: str
    start: str
    threshold: int
    stage_details: list[StageInfo]
    facts: dict[str, str]  # name -> type
    criteria: dict[str, float]  # fact -> weight
    library: list[LibraryInfo]
    booking_timezone: str | None


class ValidationResult(Result):
    valid: bool
    source: str
    name: str | None = None
    version: str | None = None
    problems: list[Problem] = []


class VariantRow(Result):
    variant: str
    calls: int
    qualified: int
    booked: int
    qualified_rate: float
    conversion: float  # the report's metric over calls


class Comparison(Result):
    variant: str
    against: str  # the control: the playbook's first variant
    method: Literal["z-test", "fisher-exact", "none"]
    p_value: float | None
    statistic: float | None
    significant: bool
    note: str = ""


class AbReport(Result):
    playbook: str
    version: str | None  # None: every version together
    metric: Literal["booked", "qualified"]
    alpha: float
    variants: list[VariantRow]
    comparisons: list[Comparison]


class AgentScoreEvent(Result):
    """The `agent.score` event: a live call's lead score as the agent set it (the TUI parses it)."""

    TOPIC: ClassVar[str] = "agent.score"

    call_id: str = Field(min_length=1)
    score: int = Field(ge=0, le=100)
    qualified: bool

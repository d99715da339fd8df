"""A campaign's conversation as data: the playbook schema and its cross-checks.

`Playbook` is the validated form of a playbook file (reautod.dialogue.playbook_file reads YAML
and maps every problem back to its line). Structure is checked by pydantic; `problems()` checks
what pydantic cannot see: references between sections (stages, facts, variants), which fields
each template may use, and that the tools a stage lists can work. Every problem carries the path
of the value it is about, so the loader can name the line.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from datetime import time
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from reautod.dialogue.templates import AGENT_FIELDS, LEAD_FIELDS, TemplateError, check_template
from reautod.dialogue.vocabulary import EXIT_OUTCOMES, Intent, Outcome, Tool

Path = tuple[str | int, ...]
Problem = tuple[Path, str]

SLUG = r"^[a-z][a-z0-9_-]{0,47}$"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")

Slug = Annotated[str, Field(pattern=SLUG)]
Phrase = Annotated[str, Field(min_length=1, max_length=200)]
Line = Annotated[str, Field(min_length=1, max_length=1000)]
# A named language model: an `[llm_models] local` name or an `[llm_pool]` endpoint's model.
ModelName = Annotated[str, Field(pattern=r"^[^\s\x00-\x1f\x7f]{1,128}$")]


def _listify(value: object) -> object:
    """A single value where a list is expected reads as a list of one (`intent: affirm`)."""
    return [value] if isinstance(value, str | int | float) else value


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgentInfo(Strict):
    name: str = Field(min_length=1, max_length=60)
    business: str = Field(min_length=1, max_length=120)


class Fact(Strict):
    """Something the agent must learn: how to ask for it and how an answer is recognised."""

    type: Literal["yes_no", "choice", "number", "text"]
    ask: Line
    description: str = Field("", max_length=300)  # for the model, when it helps extract
    # choice / yes_no: option -> phrases that mean it (yes_no also takes plain yes and no).
    options: dict[Slug, Annotated[list[Phrase], BeforeValidator(_listify)]] = {}
    unit: str | None = Field(None, max_length=20)  # number: what it counts (spoken back)

    @model_validator(mode="after")
    def _options(self) -> Fact:
        if self.type == "choice" and len(self.options) < 2:
            raise ValueError("a choice fact needs at least two options")
        if self.type == "yes_no" and not set(self.options) <= {"yes", "no"}:
            raise ValueError("a yes_no fact's options are only yes and no")
        if self.type in ("number", "text") and self.options:
            raise ValueError(f"a {self.type} fact has no options")
        return self

    def values(self) -> list[str]:
        """The values this fact can take, where it is a closed set."""
        if self.type == "yes_no":
            return ["yes", "no"]
        return list(self.options)


class Condition(Strict):
    """When an exit applies; every condition given must hold (an empty `when` always holds)."""

    intent: Annotated[list[Intent], BeforeValidator(_listify)] | None = None  # any of them
    learned: Annotated[list[str], BeforeValidator(_listify)] | None = None  # all known
    fact: dict[str, str | float] | None = None  # each fact has this value
    qualified: bool | None = None  # score at or above the threshold, nothing disqualifying
    disqualified: bool | None = None
    score_at_least: int | None = Field(None, ge=0, le=100)
    score_below: int | None = Field(None, ge=0, le=101)
    objections_at_least: int | None = Field(None, ge=1)
    turns_at_least: int | None = Field(None, ge=1)  # caller turns in this stage
    booked: bool | None = None
    callback: bool | None = None


class Exit(Strict):
    """Leave the stage: to another stage, or end the call (`scored`: qualified or not, by score)."""

    when: Condition = Condition()
    to: str | None = None
    end: Outcome | Literal["scored"] | None = None
    say: Line | None = None  # said first (an approved line)

    @model_validator(mode="after")
    def _one_target(self) -> Exit:
        if (self.to is None) == (self.end is None):
            raise ValueError("an exit has exactly one of `to` (a stage) or `end` (an outcome)")
        if self.end is not None and self.end != "scored" and self.end not in EXIT_OUTCOMES:
            allowed = ", ".join(sorted(["scored", *EXIT_OUTCOMES]))
            raise ValueError(f"an exit cannot end with {self.end}; use one of {allowed} "
                             "(bookings, callbacks and opt-outs end through their tools)")
        return self


class Stage(Strict):
    goal: str = Field(min_length=1, max_length=500)
    prompt: str = Field("", max_length=4000)  # added to the system prompt in this stage
    enter: Line | None = None  # said on entering (the start stage's is the call's opening)
    learn: list[str] = []
    tools: list[Tool] = []
    exits: list[Exit] = []
    # How the agent speaks when nothing approved applies: the model ("llm"), or the next
    # question of `learn` as written ("scripted").
    reply: Literal["llm", "scripted"] = "llm"
    model: ModelName | None = None  # the named model that writes this stage's replies


class Range(Strict):
    at_least: float | None = None  # None: any value (a last, catch-all range)
    points: int = Field(ge=0, le=100)


class Criterion(Strict):
    """One weighted part of the score: points for the fact's value, 0 while it is unknown."""

    fact: str
    weight: float = Field(gt=0, le=1000)
    points: dict[str, int] = {}  # yes_no / choice: value -> 0..100
    ranges: list[Range] = []  # number: the first range the value reaches
    answered: int | None = Field(None, ge=0, le=100)  # text: points for any answer
    disqualify: list[str] = []  # values that make the lead not qualified, whatever the score

    @field_validator("points")
    @classmethod
    def _points(cls, points: dict[str, int]) -> dict[str, int]:
        for value, p in points.items():
            if not 0 <= p <= 100:
                raise ValueError(f"points for {value!r} must be 0..100")
        return points


class Qualification(Strict):
    threshold: int = Field(60, ge=0, le=100)
    criteria: list[Criterion] = Field(min_length=1)


class LibraryEntry(Strict):
    """An approved answer and the phrases that call for it."""

    id: Slug
    kind: Literal["faq", "objection"]
    triggers: Annotated[list[Phrase], BeforeValidator(_listify)] = Field(min_length=1)
    answer: Line
    # The turn also counts as this intent (e.g. "not interested" is an objection and ends
    # the call through an exit on `intent: not_interested`).
    intent: Literal[Intent.NOT_INTERESTED, Intent.CALLBACK_REQUEST, Intent.HUMAN_REQUEST] | None = None


class Compliance(Strict):
    """Lines the law or honesty requires; approved as written."""

    disclosure: Line  # the answer to "are you a robot?"
    disclosure_triggers: list[Phrase] = []  # more ways to ask it, besides the built-in ones
    opt_out: Line  # said before hanging up on an opt-out
    goodbye: Line
    fallback: Line  # when the model fails or says nothing usable
    transfer: Line = "Sure, I'll connect you with a person now."
    no_transfer: Line = "I can't connect you right now, but I can have someone call you back."


class BookingSettings(Strict):
    """The campaign's own appointment slots (business hours in the agent's timezone)."""

    timezone: str
    hours: dict[str, str]  # mon..sun -> "09:00-17:00"
    slot_minutes: int = Field(30, ge=5, le=480)
    buffer_minutes: int = Field(0, ge=0, le=240)
    max_per_slot: int = Field(1, ge=1, le=100)
    min_notice_minutes: int = Field(60, ge=0, le=10_080)
    horizon_days: int = Field(14, ge=1, le=120)
    offer: Line = "I have {slots}. Which works best for you?"
    confirm: Line = "Just to confirm, {when} your time. Shall I book it?"
    booked: Line = "You're all set for {when} your time."
    unavailable: Line = "Sorry, that time isn't available. I have {slots}."
    ask_time: Line = "What day and time would work best for you?"
    none_free: Line = "I don't have any open times in the next few days. Can someone call you back?"

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise ValueError(f"unknown time zone {value!r} (use an IANA name like America/Chicago)") from err
        return value

    @field_validator("hours")
    @classmethod
    def _hours(cls, hours: dict[str, str]) -> dict[str, str]:
        if not hours:
            raise ValueError("booking hours need at least one day")
        for day, span in hours.items():
            if day not in WEEKDAYS:
                raise ValueError(f"unknown day {day!r} (use {', '.join(WEEKDAYS)})")
            parse_hours(span)
        return hours

    def day_hours(self) -> dict[int, tuple[time, time]]:
        """Weekday (0 = Monday) -> (open, close) in the agent's timezone."""
        return {WEEKDAYS.index(d): parse_hours(span) for d, span in self.hours.items()}


def parse_hours(span: str) -> tuple[time, time]:
    """"09:00-17:00" -> (09:00, 17:00); ValueError if malformed or not increasing."""
    m = _HOURS.match(span.replace(" ", ""))
    if m is None:
        raise ValueError(f"hours {span!r} must look like 09:00-17:00")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
        raise ValueError(f"hours {span!r} are not times of day")
    start = time(h1, m1)
    end = time(23, 59, 59) if h2 == 24 else time(h2, m2)
    if end <= start:
        raise ValueError(f"hours {span!r} end before they start")
    return start, end


class CallbackLines(Strict):
    ask_time: Line = "Of course. When would be a better time to call you back?"
    confirm: Line = "I'll call you back {when} your time. Does that work?"
    scheduled: Line = "Great, I'll call you {when}. Talk to you then. Goodbye!"
    outside_window: Line = "I can't call at that time. The earliest I can is {when} your time. Does that work?"


class StageOverride(Strict):
    goal: str | None = Field(None, min_length=1, max_length=500)
    prompt: str | None = Field(None, max_length=4000)
    enter: Line | None = None


class Variant(Strict):
    """An A/B arm: a weight and what it says differently."""

    name: Slug
    weight: int = Field(ge=0, le=10_000)
    system_prompt: str | None = Field(None, max_length=8000)
    stages: dict[str, StageOverride] = {}


class ModelUse(Strict):
    # The named model that writes the replies of stages naming none; None: the daemon's reply
    # model (a stage's `model` wins).
    name: ModelName | None = None
    max_tokens: int = Field(60, ge=8, le=1024)  # per generated reply
    extract: bool = True  # ask the model (constrained JSON) when phrases find nothing
    extract_timeout_s: float = Field(1.5, gt=0, le=10)


def _default_variants() -> list[Variant]:
    return [Variant(name="a", weight=1)]


class Playbook(Strict):
    playbook: Slug
    label: str = Field(min_length=1, max_length=40, pattern=r"^[^\s@]+$")
    description: str = Field("", max_length=2000)
    agent: AgentInfo
    lead_fields: list[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]] = []
    system_prompt: str = Field(min_length=1, max_length=8000)
    start: str
    facts: dict[Slug, Fact] = {}
    stages: dict[Slug, Stage] = Field(min_length=1)
    qualification: Qualification
    library: list[LibraryEntry] = []
    compliance: Compliance
    booking: BookingSettings | None = None
    callback: CallbackLines = CallbackLines()
    phrases: dict[Intent, list[Phrase]] = {}  # more trigger phrases for built-in intents
    variants: list[Variant] = Field(default_factory=_default_variants, min_length=1)
    model: ModelUse = ModelUse()

    def problems(self, models: Collection[str] | None = None) -> list[Problem]:
        """Everything wrong across sections, each with the path of the value it is about.
        `models`: the language model names this daemon has (None: model names are not checked)."""
        found = list(_cross_check(self))
        if models is not None:
            found += _check_models(self, models)
        return found

    def model_for(self, stage: str) -> str | None:
        """The named model that writes stage `stage`'s replies (None: the reply model)."""
        return self.stages[stage].model or self.model.name

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(name)


# --- cross-section checks ----------------------------------------------------------------------

_LINE_FIELDS = sorted(LEAD_FIELDS | AGENT_FIELDS | {"lead.custom"})
_AGENT_ONLY = sorted(AGENT_FIELDS)


def _template(text: str | None, path: Path, allowed: list[str], custom: list[str]) -> Iterator[Problem]:
    if text is None:
        return
    try:
        check_template(text, allowed, custom)
    except TemplateError as err:
        yield path, str(err)


def _cross_check(pb: Playbook) -> Iterator[Problem]:
    stages, facts, custom = set(pb.stages), set(pb.facts), pb.lead_fields
    if pb.start not in stages:
        yield ("start",), f"start stage {pb.start!r} is not one of the stages ({', '.join(pb.stages)})"
    yield from _template(pb.system_prompt, ("system_prompt",), _LINE_FIELDS, custom)
    for name, fact in pb.facts.items():
        yield from _template(fact.ask, ("facts", name, "ask"), _LINE_FIELDS, custom)
    booking_tools = False
    for name, stage in pb.stages.items():
        at: Path = ("stages", name)
        yield from _template(stage.prompt, (*at, "prompt"), _LINE_FIELDS, custom)
        yield from _template(stage.enter, (*at, "enter"), [*_LINE_FIELDS, "slots"], custom)
        for i, learned in enumerate(stage.learn):
            if learned not in facts:
                yield (*at, "learn", i), f"unknown fact {learned!r}"
        booking_tools |= Tool.BOOK_APPOINTMENT in stage.tools
        if "{slots}" in (stage.enter or "") and Tool.BOOK_APPOINTMENT not in stage.tools:
            yield (*at, "enter"), "{slots} is only known in a stage with the book_appointment tool"
        for j, ex in enumerate(stage.exits):
            yield from _check_exit(pb, (*at, "exits", j), ex)
    if booking_tools and pb.booking is None:
        yield ("stages",), "a stage uses book_appointment, so the playbook needs a booking section"
    if pb.booking is not None:
        for key in ("offer", "unavailable"):
            yield from _template(getattr(pb.booking, key), ("booking", key), ["slots"], [])
        for key in ("confirm", "booked"):
            yield from _template(getattr(pb.booking, key), ("booking", key), ["when"], [])
        for key in ("ask_time", "none_free"):
            yield from _template(getattr(pb.booking, key), ("booking", key), [], [])
    for key in ("confirm", "scheduled", "outside_window"):
        yield from _template(getattr(pb.callback, key), ("callback", key), ["when"], [])
    yield from _template(pb.callback.ask_time, ("callback", "ask_time"), _AGENT_ONLY, [])
    for key in ("disclosure", "opt_out", "goodbye", "fallback", "transfer", "no_transfer"):
        # Approved lines are synthesized once per playbook version: nothing lead-specific.
        yield from _template(getattr(pb.compliance, key), ("compliance", key), _AGENT_ONLY, [])
    seen: set[str] = set()
    for i, entry in enumerate(pb.library):
        if entry.id in seen:
            yield ("library", i, "id"), f"library id {entry.id!r} is used twice"
        seen.add(entry.id)
        yield from _template(entry.answer, ("library", i, "answer"), _AGENT_ONLY, [])
    yield from _check_scoring(pb)
    yield from _check_variants(pb, stages, custom)


def _check_models(pb: Playbook, models: Collection[str]) -> Iterator[Problem]:
    there = f"(there are: {', '.join(sorted(models))})" if models else (
        "(none is configured: [llm_models] local, [llm_pool] endpoints)")
    named: list[tuple[Path, str | None]] = [(("model", "name"), pb.model.name)]
    named += [(("stages", name, "model"), stage.model) for name, stage in pb.stages.items()]
    for at, name in named:
        if name is not None and name not in models:
            yield at, f"no language model named {name!r} {there}"


def _check_exit(pb: Playbook, at: Path, ex: Exit) -> Iterator[Problem]:
    if ex.to is not None and ex.to not in pb.stages:
        yield (*at, "to"), f"unknown stage {ex.to!r}"
    yield from _template(ex.say, (*at, "say"), _LINE_FIELDS, pb.lead_fields)
    cond = ex.when
    for i, fact in enumerate(cond.learned or []):
        if fact not in pb.facts:
            yield (*at, "when", "learned", i), f"unknown fact {fact!r}"
    for fact, value in (cond.fact or {}).items():
        if fact not in pb.facts:
            yield (*at, "when", "fact", fact), f"unknown fact {fact!r}"
            continue
        known = pb.facts[fact].values()
        if known and str(value) not in known:
            yield (*at, "when", "fact", fact), f"{fact} is one of {', '.join(known)}, not {value!r}"


def _check_scoring(pb: Playbook) -> Iterator[Problem]:
    for i, c in enumerate(pb.qualification.criteria):
        at: Path = ("qualification", "criteria", i)
        fact = pb.facts.get(c.fact)
        if fact is None:
            yield (*at, "fact"), f"unknown fact {c.fact!r}"
            continue
        values = fact.values()
        if fact.type in ("yes_no", "choice"):
            if not c.points:
                yield at, f"{c.fact} is a {fact.type} fact: give points for its values"
            for value in [*c.points, *c.disqualify]:
                if value not in values:
                    yield at, f"{c.fact} has no value {value!r} (values: {', '.join(values)})"
        elif fact.type == "number" and not c.ranges:
            yield at, f"{c.fact} is a number fact: give ranges"
        elif fact.type == "text" and c.answered is None:
            yield at, f"{c.fact} is a text fact: give `answered` points"


def _check_variants(pb: Playbook, stages: set[str], custom: list[str]) -> Iterator[Problem]:
    names: set[str] = set()
    for i, v in enumerate(pb.variants):
        at: Path = ("variants", i)
        if v.name in names:
            yield (*at, "name"), f"variant {v.name!r} is named twice"
        names.add(v.name)
        yield from _template(v.system_prompt, (*at, "system_prompt"), _LINE_FIELDS, custom)
        for stage, override in v.stages.items():
            if stage not in stages:
                yield (*at, "stages", stage), f"unknown stage {stage!r}"
                continue
            yield from _template(override.prompt, (*at, "stages", stage, "prompt"), _LINE_FIELDS, custom)
            yield from _template(override.enter, (*at, "stages", stage, "enter"),
                                 [*_LINE_FIELDS, "slots"], custom)
    if sum(v.weight for v in pb.variants) <= 0:
        yield ("variants",), "at least one variant needs a weight above 0"

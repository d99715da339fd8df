"""Control-socket methods of the dialogue: playbook.list / show / validate / ab_report."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from reautod.dialogue.library import PlaybookFile, PlaybookLibrary
from reautod.dialogue.playbook_file import (
    LoadedPlaybook,
    PlaybookError,
    load_playbook_file,
    parse_playbook,
)
from reautod.dialogue.results import (
    AbReport,
    Comparison,
    ExitInfo,
    LibraryInfo,
    PlaybookDetail,
    PlaybookList,
    PlaybookSummary,
    Problem,
    StageInfo,
    ValidationResult,
    VariantInfo,
    VariantRow,
)
from reautod.dialogue.significance import compare
from reautod.dialogue.stages import describe
from reautod.errors import NotFoundError
from reautod.methods import Method, NoParams
from reautod.store.database import Database
from reautod.store.repositories import ExperimentRepository, VariantCounts

ALPHA = 0.05
Metric = Literal["booked", "qualified"]


class NameParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)


class ValidateParams(BaseModel):
    """Validate YAML sent in the request (`text`) or a file the daemon reads (`path`)."""

    model_config = ConfigDict(extra="forbid")
    text: str | None = Field(None, max_length=512 * 1024)
    path: str | None = None
    source: str = Field("<request>", max_length=500)

    @model_validator(mode="after")
    def _one(self) -> ValidateParams:
        if (self.text is None) == (self.path is None):
            raise ValueError("give exactly one of text or path")
        return self


class AbReportParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)
    version: str | None = None  # default: the playbook's current version; "all": every version
    metric: Metric = "booked"


def problems_of(err: PlaybookError) -> list[Problem]:
    return [Problem(line=p.line, path=p.path, message=p.message) for p in err.problems]


def summary(entry: PlaybookFile) -> PlaybookSummary:
    if entry.loaded is None:
        return PlaybookSummary(file=str(entry.file),
                               problems=problems_of(entry.error) if entry.error else [])
    pb = entry.loaded.playbook
    return PlaybookSummary(file=str(entry.file), name=pb.playbook, label=pb.label,
                           version=entry.loaded.version, stages=list(pb.stages),
                           variants=[VariantInfo(name=v.name, weight=v.weight) for v in pb.variants])


def detail(entry: PlaybookFile, loaded: LoadedPlaybook) -> PlaybookDetail:
    pb = loaded.playbook
    stages = [
        StageInfo(name=name, goal=st.goal, learn=st.learn, tools=[t.value for t in st.tools],
                  exits=[ExitInfo(when=describe(ex.when),
                                  then=f"-> {ex.to}" if ex.to else f"end: {ex.end}")
                         for ex in st.exits])
        for name, st in pb.stages.items()
    ]
    return PlaybookDetail(
        summary=summary(entry), description=pb.description, start=pb.start,
        threshold=pb.qualification.threshold, stage_details=stages,
        facts={n: f.type for n, f in pb.facts.items()},
        criteria={c.fact: c.weight for c in pb.qualification.criteria},
        library=[LibraryInfo(id=e.id, kind=e.kind, triggers=len(e.triggers)) for e in pb.library],
        booking_timezone=pb.booking.timezone if pb.booking else None)


def validate_text(text: str | None, path: str | None, source: str,
                  models: Collection[str] | None) -> ValidationResult:
    """Validate a playbook (blocking when it reads `path`); `models`: the language model names
    there are, which its `model` names must be among (None: not checked)."""
    label = path or source
    try:
        loaded = (load_playbook_file(Path(path), models) if path
                  else parse_playbook(text or "", source=source, models=models))
    except PlaybookError as err:
        return ValidationResult(valid=False, source=label, problems=problems_of(err))
    return ValidationResult(valid=True, source=label, name=loaded.name, version=loaded.version)


def ab_report(playbook: str, counts: list[VariantCounts], *, version: str | None,
              variant_order: list[str], metric: Metric, alpha: float = ALPHA) -> AbReport:
    """Per variant: calls, qualified, booked, conversion; each variant tested against the first."""
    merged: dict[str, list[int]] = {}
    for c in counts:
        row = merged.setdefault(c.variant, [0, 0, 0])
        row[0] += c.calls
        row[1] += c.qualified
        row[2] += c.booked
    order = [v for v in variant_order if v in merged] + sorted(set(merged) - set(variant_order))
    rows: list[VariantRow] = []
    for name in order:
        n, q, b = merged[name]
        hits = b if metric == "booked" else q
        rows.append(VariantRow(variant=name, calls=n, qualified=q, booked=b,
                               qualified_rate=q / n if n else 0.0,
                               conversion=hits / n if n else 0.0))
    comparisons = []
    if rows:
        control = rows[0]
        base = control.booked if metric == "booked" else control.qualified
        for arm in rows[1:]:
            hits = arm.booked if metric == "booked" else arm.qualified
            test = compare(base, control.calls, hits, arm.calls)
            comparisons.append(Comparison(
                variant=arm.variant, against=control.variant, method=test.method,
                p_value=test.p_value, statistic=test.statistic,
                significant=test.p_value is not None and test.p_value < alpha, note=test.note))
    return AbReport(playbook=playbook, version=version, metric=metric, alpha=alpha,
                    variants=rows, comparisons=comparisons)


def dialogue_methods(library: PlaybookLibrary, db: Database) -> list[Method]:
    experiments = ExperimentRepository(db)

    async def list_(_params: NoParams) -> PlaybookList:
        entries = await asyncio.to_thread(library.entries)
        return PlaybookList(directory=str(library.directory), playbooks=[summary(e) for e in entries])

    async def show(params: NameParams) -> PlaybookDetail:
        loaded = await asyncio.to_thread(library.get, params.name)
        entry = PlaybookFile(Path(loaded.source), loaded, None)
        return detail(entry, loaded)

    async def validate(params: ValidateParams) -> ValidationResult:
        return await asyncio.to_thread(validate_text, params.text, params.path, params.source,
                                       library.models)

    async def report(params: AbReportParams) -> AbReport:
        version: str | None = params.version
        order: list[str] = []
        try:
            loaded = await asyncio.to_thread(library.get, params.name)
            order = [v.name for v in loaded.playbook.variants]
            version = loaded.version if version is None else version
        except (PlaybookError, NotFoundError):
            pass  # a playbook whose file is gone or broken still has its calls to report
        version = None if version == "all" else version
        counts = await experiments.variant_counts(params.name, version)
        return ab_report(params.name, counts, version=version, variant_order=order,
                         metric=params.metric)

    return [
        Method("playbook.list", list_, NoParams, summary="playbook files: name, version, problems"),
        Method("playbook.show", show, NameParams, summary="a playbook's stages, facts, scoring"),
        Method("playbook.validate", validate, ValidateParams,
               summary="validate playbook YAML; problems name their line"),
        Method("playbook.ab_report", report, AbReportParams,
               summary="per variant calls, qualified, booked, conversion, significance"),
    ]

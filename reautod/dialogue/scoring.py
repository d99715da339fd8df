"""The lead score: 0-100 from the playbook's weighted criteria, with a reason for every point.

score = round(sum(weight_i * points_i) / sum(weight_i)), where points_i (0-100) come from the
fact's value (an unknown fact gives 0). A criterion's `disqualify` values make the lead not
qualified whatever the score; `qualified` is score >= threshold and nothing disqualifying.
Pure: the same facts always give the same score and reasons (explainable, stored with its inputs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reautod.dialogue.playbook import Criterion, Qualification


@dataclass(frozen=True)
class Factor:
    fact: str
    value: str | float | None
    weight: float
    points: int  # 0..100 for this criterion
    reason: str


@dataclass(frozen=True)
class Score:
    score: int
    qualified: bool
    disqualified_by: str | None  # the fact whose value disqualifies
    factors: tuple[Factor, ...]

    def reason(self) -> str:
        """One line a person reads: the verdict, then each criterion."""
        if self.disqualified_by is not None:
            verdict = f"not qualified: {self.disqualified_by}"
        else:
            verdict = "qualified" if self.qualified else "below threshold"
        return f"{self.score}/100 {verdict}; " + "; ".join(f.reason for f in self.factors)

    def factors_json(self) -> dict[str, Any]:
        return {f.fact: {"value": f.value, "weight": f.weight, "points": f.points}
                for f in self.factors}


def _points(c: Criterion, value: str | float | None) -> tuple[int, str]:
    if value is None:
        return 0, f"{c.fact} unknown"
    if c.points:
        p = c.points.get(str(value), 0)
        return p, f"{c.fact}={value} -> {p}"
    if c.ranges:
        try:
            number = float(value)
        except (TypeError, ValueError):
            return 0, f"{c.fact}={value!r} is not a number -> 0"
        for r in c.ranges:
            if r.at_least is None or number >= r.at_least:
                return r.points, f"{c.fact}={number:g} -> {r.points}"
        return 0, f"{c.fact}={number:g} below every range -> 0"
    p = c.answered or 0
    return p, f"{c.fact} answered -> {p}"


def score(qualification: Qualification, facts: Mapping[str, str | float]) -> Score:
    """Score the facts learned so far."""
    factors: list[Factor] = []
    total_weight = sum(c.weight for c in qualification.criteria)
    weighted = 0.0
    disqualified_by: str | None = None
    for c in qualification.criteria:
        value = facts.get(c.fact)
        points, why = _points(c, value)
        weighted += c.weight * points
        factors.append(Factor(c.fact, value, c.weight, points, why))
        if value is not None and str(value) in c.disqualify and disqualified_by is None:
            disqualified_by = f"{c.fact}={value}"
    result = round(weighted / total_weight)
    qualified = disqualified_by is None and result >= qualification.threshold
    return Score(result, qualified, disqualified_by, tuple(factors))

"""The pure decisions: A/B assignment, the significance tests, the score, the stage rule."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest

from reautod.dialogue.playbook import Condition, Variant
from reautod.dialogue.scoring import score
from reautod.dialogue.significance import compare, fisher_exact, z_test
from reautod.dialogue.stages import Situation, describe, exit_for, holds
from reautod.dialogue.variants import apply_variant, assign_variant, bucket
from reautod.dialogue.vocabulary import Intent, Outcome
from reautod.store.enums import CallOutcome
from tests.dialogue.fakes import example

PLAYBOOK = example("real-estate-sellers").playbook


def test_assignment_is_stable_across_processes() -> None:
    ids = [f"lead-{i}" for i in range(200)]
    here = [assign_variant(PLAYBOOK, i).name for i in ids]
    code = ("import sys; from reautod.dialogue.variants import assign_variant; "
            "from tests.dialogue.fakes import example; pb = example('real-estate-sellers').playbook; "
            "print(','.join(assign_variant(pb, f'lead-{i}').name for i in range(200)))")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": "12345", "PATH": ""})
    assert other.stdout.strip().split(",") == here
    # Pinned: a change to the hash would move every lead to another arm mid-experiment.
    assert bucket("real-estate-sellers", "lead-0") == pytest.approx(0.913830228372, abs=1e-12)
    counts = Counter(here)
    assert set(counts) == {"a", "warm-open"} and 70 <= counts["a"] <= 130


def test_weights_steer_assignment() -> None:
    stopped = PLAYBOOK.model_copy(update={"variants": [Variant(name="a", weight=0),
                                                       Variant(name="b", weight=3)]})
    assert {assign_variant(stopped, f"x{i}").name for i in range(100)} == {"b"}
    arm = apply_variant(PLAYBOOK, PLAYBOOK.variant("warm-open"))
    assert "lot of interest" in (arm.stages["greeter"].enter or "")
    assert arm.stages["greeter"].goal == PLAYBOOK.stages["greeter"].goal
    assert arm.stages["qualifier"] is PLAYBOOK.stages["qualifier"]


def test_significance_against_known_values() -> None:
    # SciPy's fisher_exact documentation example, and the lady tasting tea (17/35).
    assert fisher_exact(8, 10, 1, 6).p_value == pytest.approx(0.034965034965035, rel=1e-12)
    assert fisher_exact(8, 10, 1, 6).statistic == 20.0
    assert fisher_exact(3, 4, 1, 4).p_value == pytest.approx(17 / 35, rel=1e-12)
    # R: prop.test(c(200, 250), c(1000, 1000), correct = FALSE): X-squared 7.1685, p 0.007419.
    result = z_test(200, 1000, 250, 1000)
    assert result.statistic is not None and result.statistic ** 2 == pytest.approx(7.1685, abs=1e-4)
    assert result.p_value == pytest.approx(0.007419, abs=1e-6)
    assert compare(8, 10, 1, 6).method == "fisher-exact"  # small expected counts
    assert compare(200, 1000, 250, 1000).method == "z-test"
    assert compare(0, 0, 3, 10).p_value is None
    assert z_test(0, 50, 0, 50).p_value == 1.0
    with pytest.raises(ValueError):
        z_test(5, 4, 1, 2)


def test_score_with_reasons() -> None:
    q = PLAYBOOK.qualification
    empty = score(q, {})
    assert (empty.score, empty.qualified) == (0, False)
    full = score(q, {"is_owner": "yes", "timeline": "months", "motivation": "x", "price": 350000})
    assert full.score == 90 and full.qualified  # 30 + 24.5 + 15 + 20 = 89.5
    assert "timeline=months -> 70" in full.reason()
    assert full.factors_json()["price"] == {"value": 350000, "weight": 20, "points": 100}
    renter = score(q, {"is_owner": "no", "timeline": "soon", "motivation": "x", "price": 9e5})
    assert renter.disqualified_by == "is_owner=no" and not renter.qualified
    assert renter.reason().startswith("70/100 not qualified: is_owner=no")
    assert score(q, {"price": "lots"}).factors[3].points == 0


def _situation(**kw: object) -> Situation:
    base: dict[str, object] = dict(intents=frozenset({Intent.AFFIRM}), facts={},
                                   score=score(PLAYBOOK.qualification, {}), objections=0,
                                   stage_turns=1, booked=False, callback=False)
    base.update(kw)
    return Situation(**base)  # type: ignore[arg-type]


def test_stage_rule() -> None:
    greeter = PLAYBOOK.stages["greeter"]
    assert (exit_for(greeter, _situation()) or greeter).to == "qualifier"  # type: ignore[union-attr]
    wrong = exit_for(greeter, _situation(intents=frozenset({Intent.WRONG_PERSON, Intent.AFFIRM})))
    assert wrong is not None and wrong.end == Outcome.WRONG_PERSON  # the first exit that holds
    # Entering a stage (no turn): intent and turn-count conditions never hold.
    assert exit_for(greeter, _situation(intents=None, stage_turns=5)) is None
    assert holds(Condition(), _situation(intents=None))
    assert holds(Condition(learned=["price"], score_below=50), _situation(facts={"price": 1.0}))
    assert not holds(Condition(fact={"is_owner": "no"}), _situation(facts={"is_owner": "yes"}))
    assert holds(Condition(objections_at_least=2, booked=False), _situation(objections=2))
    assert describe(Condition(intent=[Intent.AFFIRM], fact={"a": "b"})) == "intent=affirm, fact=a=b"
    assert describe(Condition()) == "always"


def test_outcomes_are_store_outcomes() -> None:
    assert {o.value for o in Outcome} <= {o.value for o in CallOutcome}
    assert "dnc_request" not in {o.value for o in CallOutcome}  # renamed opted_out (0006)

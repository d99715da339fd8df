"""Playbook files: the examples validate; bad files give every problem with its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from reautod.dialogue.playbook_file import (
    MAX_FILE_BYTES,
    PlaybookError,
    load_playbook_file,
    parse_playbook,
)
from tests.dialogue.fakes import EXAMPLES, example

REAL_ESTATE = (EXAMPLES / "real-estate-sellers.yaml").read_text()


def problems(text: str) -> list[tuple[int | None, str, str]]:
    with pytest.raises(PlaybookError) as caught:
        parse_playbook(text)
    return [(p.line, p.path, p.message) for p in caught.value.problems]


def line_of(text: str, needle: str, nth: int = 1) -> int:
    """1-based line of the nth line containing `needle`."""
    hits = [i + 1 for i, line in enumerate(text.splitlines()) if needle in line]
    return hits[nth - 1]


@pytest.mark.parametrize("name", ["real-estate-sellers", "real-estate-inbound", "solar-homeowners"])
def test_examples_are_valid(name: str) -> None:
    loaded = example(name)
    assert loaded.name == name
    assert loaded.version == f"v1@{loaded.content_hash[:12]}"
    assert loaded.playbook.facts  # and yes/no options stay words, not booleans
    owner = next(f for f in loaded.playbook.facts.values() if f.type == "yes_no")
    assert set(owner.options) <= {"yes", "no"}


def test_version_follows_content_not_layout() -> None:
    base = parse_playbook(REAL_ESTATE)
    reformatted = parse_playbook("# a new comment\n" + REAL_ESTATE.replace("label: v1", "label:   v1"))
    assert reformatted.version == base.version
    edited = parse_playbook(REAL_ESTATE.replace("Great, thanks.", "Great, thank you."))
    assert edited.version != base.version and edited.version.startswith("v1@")


def test_structural_problems_name_their_lines() -> None:
    text = (REAL_ESTATE
            .replace("  threshold: 60", "  threshold: 160")
            .replace("    goal: Book a 20-minute call", "    gaol: Book a 20-minute call")
            .replace("      weight: 35", "      weight: -1"))
    found = problems(text)
    assert (line_of(text, "threshold: 160"), "qualification.threshold",
            "Input should be less than or equal to 100") in found
    assert (line_of(text, "gaol:"), "stages.scheduler.gaol",
            "unknown key (check its spelling and indentation)") in found
    assert any(p[1] == "stages.scheduler.goal" and p[2] == "required, missing" for p in found)
    assert any(p[0] == line_of(text, "weight: -1") for p in found)


def test_references_and_templates_are_checked_with_lines() -> None:
    text = (REAL_ESTATE
            .replace("learn: [is_owner, timeline, motivation, price]",
                     "learn: [is_owner, timeline, motivaton, price]")
            .replace("        to: scheduler\n", "        to: schedulr\n", 1)
            .replace("{lead.custom.street}][ in {lead.city}]", "{lead.custom.stret}][ in {lead.city}]")
            .replace("points: {soon: 100, months: 70, later: 10}",
                     "points: {soon: 100, monthz: 70, later: 10}")
            .replace("answer: This is {agent.name},", "answer: Hi {lead.name}, this is {agent.name},"))
    found = problems(text)
    assert (line_of(text, "motivaton"), "stages.qualifier.learn.2", "unknown fact 'motivaton'") in found
    assert (line_of(text, "to: schedulr"), "stages.qualifier.exits.3.to",
            "unknown stage 'schedulr'") in found
    assert (line_of(text, "system_prompt:"), "system_prompt",
            "{lead.custom.stret}: custom column 'stret' is not in lead_fields") in found
    assert any(p[1] == "qualification.criteria.1" and "no value 'monthz'" in p[2] for p in found)
    # Approved answers are synthesized once per version: no lead data in them.
    assert any(p[0] == line_of(text, "Hi {lead.name}, this is") and "unknown field {lead.name}"
               in p[2] for p in found)


@pytest.mark.parametrize(("text", "line", "message"), [
    ("playbook: a\nplaybook: b\n", 2, "duplicate key"),
    ("playbook: a\n  label: [\n", 2, "not valid YAML"),
    ("- just\n- a list\n", 1, "a playbook is a mapping of sections"),
    ("", None, "the file is empty"),
])
def test_files_that_are_not_playbooks(text: str, line: int | None, message: str) -> None:
    [(got_line, _path, got)] = problems(text)
    assert got_line == line and message in got


def test_cross_section_rules() -> None:
    no_booking = REAL_ESTATE[:REAL_ESTATE.index("booking:\n")] + REAL_ESTATE[REAL_ESTATE.index("variants:"):]
    assert ("stages" in [p[1] for p in problems(no_booking) if "needs a booking section" in p[2]])
    both = REAL_ESTATE.replace("      - end: scored\n", "      - end: scored\n        to: greeter\n")
    assert any("exactly one of `to`" in p[2] for p in problems(both))
    bad_end = REAL_ESTATE.replace("      - end: scored\n", "      - end: booked\n")
    assert any("cannot end with booked" in p[2] for p in problems(bad_end))
    hours = REAL_ESTATE.replace('fri: "09:00-16:00"', 'fri: "16:00-09:00"').replace(
        "timezone: America/Chicago", "timezone: Mars/Olympus")
    found = problems(hours)
    assert any("end before they start" in p[2] for p in found)
    assert any("unknown time zone" in p[2] for p in found)
    weights = REAL_ESTATE.replace("    weight: 50\n", "    weight: 0\n")
    assert any("at least one variant needs a weight" in p[2] for p in problems(weights))


def test_file_limits(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (MAX_FILE_BYTES + 1))
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"playbook: \xff\n")
    for path, message in ((big, "the limit is"), (binary, "not UTF-8"),
                          (tmp_path / "missing.yaml", "cannot read")):
        with pytest.raises(PlaybookError) as caught:
            load_playbook_file(path)
        assert message in str(caught.value)


QUALIFIER_GOAL = ("    goal: Learn whether they own the home, when they would sell, why, and their "
                  "price.\n")


def test_a_stage_or_the_playbook_names_the_model_that_writes_its_replies() -> None:
    text = (REAL_ESTATE.replace(QUALIFIER_GOAL, QUALIFIER_GOAL + "    model: smart\n")
            + "model:\n  name: fast\n")
    playbook = parse_playbook(text, models={"fast", "smart"}).playbook
    assert playbook.model_for("qualifier") == "smart" and playbook.model_for("greeter") == "fast"
    assert parse_playbook(REAL_ESTATE).playbook.model_for("qualifier") is None
    # A name the daemon has no model of is a problem on its line; without the daemon's names
    # (None) names are not checked.
    with pytest.raises(PlaybookError) as caught:
        parse_playbook(text, models={"fast", "tiny"})
    assert [(p.line, p.path, p.message) for p in caught.value.problems] == [
        (line_of(text, "model: smart"), "stages.qualifier.model",
         "no language model named 'smart' (there are: fast, tiny)")]
    with pytest.raises(PlaybookError) as caught:
        parse_playbook(text, models=set())
    assert [p.path for p in caught.value.problems] == ["stages.qualifier.model", "model.name"]
    assert "none is configured" in caught.value.problems[0].message
    assert parse_playbook(text).playbook.model_for("closer") == "fast"
    spaced = REAL_ESTATE.replace(QUALIFIER_GOAL, QUALIFIER_GOAL + '    model: "two words"\n')
    assert [p[1] for p in problems(spaced)] == ["stages.qualifier.model"]

"""`playbook.*` control methods and `reautoctl playbook`: typed results rendered by the CLI."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from reautod.control.cli import main
from reautod.control.commands.playbook import render_ab_report, render_list, render_show
from reautod.dialogue.control import dialogue_methods
from reautod.dialogue.library import PlaybookLibrary
from reautod.dialogue.playbook_file import PlaybookError
from reautod.dialogue.results import AbReport, PlaybookDetail, PlaybookList
from reautod.errors import NotFoundError
from reautod.methods import Method
from reautod.store.database import Database
from reautod.store.enums import CallOutcome
from reautod.store.records import CallEnded, CallStarted, PlaybookAssigned
from reautod.store.repositories import CallRepository
from tests.dialogue.fakes import EXAMPLES, NOW, example
from tests.store.conftest import TEST_DB_SETTINGS


@pytest.fixture
async def methods(tmp_path: Path) -> AsyncIterator[tuple[dict[str, Method], Database, Path]]:
    books = tmp_path / "playbooks"
    books.mkdir()
    shutil.copy(EXAMPLES / "real-estate-sellers.yaml", books)
    (books / "broken.yaml").write_text("playbook: broken\n  label: x\n")
    (books / "notes.txt").write_text("not a playbook")
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'c.db'}", TEST_DB_SETTINGS)
    await db.open()
    await db.upgrade("head")
    try:
        yield {m.name: m for m in dialogue_methods(PlaybookLibrary(books), db)}, db, books
    finally:
        await db.close()


async def call(method: Method, **params: object) -> dict:  # type: ignore[type-arg]
    result = await method.handler(method.params.model_validate(params))
    return result.model_dump(mode="json")  # what the socket carries


async def test_list_show_validate(methods: tuple[dict[str, Method], Database, Path]) -> None:
    table, _db, books = methods
    listing = await call(table["playbook.list"])
    [broken, good] = listing["playbooks"]
    assert good["name"] == "real-estate-sellers" and good["version"] == example("real-estate-sellers").version
    assert broken["name"] is None and broken["problems"][0]["line"] == 2
    rendered = render_list(PlaybookList.model_validate(listing))
    assert "INVALID" in rendered and "real-estate-sellers" in rendered
    shown = await call(table["playbook.show"], name="real-estate-sellers")
    assert [s["name"] for s in shown["stage_details"]] == ["greeter", "qualifier", "objections",
                                                           "scheduler", "closer"]
    text = render_show(PlaybookDetail.model_validate(shown))
    assert "intent=wrong_person end: wrong_person" in text and "America/Chicago" in text
    with pytest.raises(NotFoundError):
        await call(table["playbook.show"], name="nope")
    with pytest.raises(PlaybookError):
        await call(table["playbook.show"], name="broken")
    ok = await call(table["playbook.validate"], text=(EXAMPLES / "solar-homeowners.yaml").read_text())
    assert ok["valid"] and ok["name"] == "solar-homeowners"
    bad = await call(table["playbook.validate"], path=str(books / "broken.yaml"))
    assert not bad["valid"] and bad["problems"][0]["line"] == 2
    with pytest.raises(ValueError):
        table["playbook.validate"].params.model_validate({})


async def test_ab_report(methods: tuple[dict[str, Method], Database, Path]) -> None:
    table, db, _books = methods
    version = example("real-estate-sellers").version
    records = []
    for variant, calls, booked in (("a", 40, 4), ("warm-open", 40, 14)):
        for i in range(calls):
            call_id = uuid.uuid4()
            outcome = CallOutcome.BOOKED if i < booked else CallOutcome.NOT_INTERESTED
            records += [CallStarted(call_id, NOW),
                        PlaybookAssigned(call_id, "real-estate-sellers", version, variant),
                        CallEnded(call_id, NOW, outcome=outcome)]
    unfinished = uuid.uuid4()  # no outcome yet: not counted
    records += [CallStarted(unfinished, NOW),
                PlaybookAssigned(unfinished, "real-estate-sellers", version, "a")]
    await CallRepository(db).write(records)
    report = await call(table["playbook.ab_report"], name="real-estate-sellers")
    assert report["version"] == version
    assert [(v["variant"], v["calls"], v["booked"], v["conversion"]) for v in report["variants"]] == \
        [("a", 40, 4, 0.1), ("warm-open", 40, 14, 0.35)]
    [test] = report["comparisons"]
    assert test["method"] == "z-test" and test["significant"] and test["p_value"] < 0.01
    rendered = render_ab_report(AbReport.model_validate(report))
    assert "35.0%" in rendered and "yes" in rendered
    everything = await call(table["playbook.ab_report"], name="real-estate-sellers", version="all",
                            metric="qualified")
    assert everything["version"] is None and everything["metric"] == "qualified"
    gone = await call(table["playbook.ab_report"], name="retired-playbook")
    assert gone["variants"] == [] and "no finished calls" in render_ab_report(
        AbReport.model_validate(gone))


def test_reautoctl_validate_needs_no_daemon(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["playbook", "validate", str(EXAMPLES / "real-estate-sellers.yaml")]) == 0
    assert "valid playbook real-estate-sellers, version v1@" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text((EXAMPLES / "solar-homeowners.yaml").read_text().replace("to: qualifier", "to: qualifer"))
    assert main(["playbook", "validate", str(bad), "--json"]) == 1
    out = capsys.readouterr().out
    assert '"valid": false' in out and "unknown stage 'qualifer'" in out
    assert main(["playbook", "validate", str(bad)]) == 1
    line = bad.read_text().splitlines().index("        to: qualifer") + 1
    assert f"line {line}: stages.greeter.exits.2.to: unknown stage 'qualifer'" in capsys.readouterr().out
    # The daemon's commands say it is not running (exit 3), they do not crash.
    socket = tmp_path / "none.sock"
    assert main(["--socket", str(socket), "playbook", "list"]) == 3
    assert main(["--socket", str(socket), "playbook", "validate", str(bad), "--daemon"]) == 3


async def test_a_playbook_naming_a_model_the_daemon_lacks_is_invalid_there(
        methods: tuple[dict[str, Method], Database, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    _table, db, books = methods
    sellers = (EXAMPLES / "real-estate-sellers.yaml").read_text()
    (books / "real-estate-sellers.yaml").write_text(sellers + "model:\n  name: smart\n")
    table = {m.name: m for m in dialogue_methods(PlaybookLibrary(books, {"fast"}), db)}
    listing = await call(table["playbook.list"])
    named = next(p for p in listing["playbooks"] if p["file"].endswith("real-estate-sellers.yaml"))
    assert named["name"] is None and named["problems"] == [{
        "line": sellers.count("\n") + 2, "path": "model.name",
        "message": "no language model named 'smart' (there are: fast)"}]
    checked = await call(table["playbook.validate"], text=sellers + "model:\n  name: fast\n")
    assert checked["valid"], checked
    # reautoctl validates against the models of the config it reads, like the daemon
    config = tmp_path / "reautod.toml"
    config.write_text('[[llm_models.local]]\nname = "smart"\npath = "smart.gguf"\n')
    assert main(["--config", str(config), "playbook", "validate",
                 str(books / "real-estate-sellers.yaml")]) == 0
    assert "valid playbook real-estate-sellers" in capsys.readouterr().out
    config.write_text('[[llm_models.local]]\nname = "fast"\npath = "fast.gguf"\n')
    assert main(["--config", str(config), "playbook", "validate",
                 str(books / "real-estate-sellers.yaml")]) == 1
    assert "model.name: no language model named 'smart' (there are: fast)" in \
        capsys.readouterr().out

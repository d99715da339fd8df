"""reautoctl's command table: a command line registers only its own group, and the table says
exactly what the group modules register (it cannot drift from them)."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from reautod.control import cli, commands


def test_the_table_names_what_each_group_registers() -> None:
    registered: dict[str, str] = {}
    for group in commands.groups():
        parser = argparse.ArgumentParser()
        sub = parser.add_subparsers()
        group.register(sub)
        registered |= dict.fromkeys(sub.choices, group.__name__.rsplit(".", 1)[1])
    assert registered == commands.COMMANDS  # the same commands, modules and --help order


@pytest.mark.parametrize(("argv", "command"), [
    (["status"], "status"),
    (["--config", "call", "--json", "call", "list"], "call"),  # a config file named "call"
    (["--socket=/run/s", "--json", "reload"], "reload"),
    (["--json"], None),
    ([], None),
])
def test_the_command_word_skips_the_top_level_options(argv: list[str], command: str | None) -> None:
    assert cli.command_of(argv) == command


def test_a_command_imports_its_group_alone_and_help_lists_every_command() -> None:
    probe = ("import sys; from reautod.control import cli; cli.build_parser(sys.argv[1]); "
             "print(sorted(m for m in sys.modules if m.startswith('reautod.control.commands.')))")
    out = subprocess.run([sys.executable, "-c", probe, "status"], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert out.strip() == "['reautod.control.commands.status']"
    usage = cli.build_parser("no-such-command").format_help()
    for command in commands.COMMANDS:
        assert command in usage


def test_a_mistyped_command_is_refused_with_the_list(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["stauts"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'stauts'" in err and "campaign" in err

"""`reautoctl`: the operator CLI. One module per subcommand group in `reautod/control/commands/`.

Each group module exposes `register(subparsers)`, which adds its parsers and sets
`func=<callable(args, ctx) -> int>` on each leaf. Output goes through `ctx.emit` so every command
prints a readable table by default and JSON with `--json`. A command line naming a command
registers only that command's group (`commands.groups`); anything else (`--help`, a typo) gets
the whole parser, so help and errors list every command.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from reautod.control import commands
from reautod.control.context import EXIT_CONFIG, EXIT_NOT_RUNNING, CliContext
from reautod.errors import ConfigError, NotRunningError, ReautodError
from reautod.security.text import terminal_safe

# Top-level options that take a value (the command is the first word that is not one of them).
_VALUED_OPTIONS = ("--config", "--socket")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or of `command`'s group alone."""
    parser = argparse.ArgumentParser(prog="reautoctl", description="Operate the reautod daemon.")
    parser.add_argument(
        "--config", help="config file (default: $REAUTOD_CONFIG or /etc/reautod/reautod.toml)"
    )
    parser.add_argument("--socket", help="control socket path (default: from the config)")
    parser.add_argument("--json", action="store_true", help="machine-readable JSON output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in commands.groups(command):
        group.register(sub)
    _accept_json_anywhere(parser)
    return parser


def _accept_json_anywhere(parser: argparse.ArgumentParser) -> None:
    """`reautoctl status --json` as well as `reautoctl --json status`, on every leaf command."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in set(action.choices.values()):
                _accept_json_anywhere(child)
            return
    if "--json" not in parser._option_string_actions:
        parser.add_argument(
            "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable JSON output"
        )


def command_of(argv: Sequence[str]) -> str | None:
    """The command word of a command line: the first word that is not a top-level option."""
    words = iter(argv)
    for word in words:
        if word in _VALUED_OPTIONS:
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(command_of(argv)).parse_args(argv)
    ctx = CliContext.from_args(args)
    try:
        return int(args.func(args, ctx) or 0)
    except NotRunningError as err:
        print(f"reautoctl: {terminal_safe(err.message)}", file=sys.stderr)
        return EXIT_NOT_RUNNING
    except ConfigError as err:
        print(f"reautoctl: {terminal_safe(err.message)}", file=sys.stderr)
        for path, problem in err.problems:
            print(f"  {terminal_safe(path)}: {terminal_safe(problem)}", file=sys.stderr)
        return EXIT_CONFIG
    except ReautodError as err:
        if ctx.json:
            ctx.emit_json({"error": {"code": err.code, "message": err.message}})
        else:
            # messages quote names from requests and files: escaped for the terminal
            print(f"reautoctl: {terminal_safe(err.message)} ({err.code})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

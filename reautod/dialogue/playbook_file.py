"""Reading a playbook file: YAML with the line of every value kept, so errors name the line.

The YAML is composed into nodes (which carry their position), turned into plain data while a
table of path -> line is filled, then validated by the `Playbook` model and its cross-checks;
each problem's path is looked up in the table (the nearest enclosing value that has a line).
Duplicate keys are errors (plain YAML would silently keep the last). Only `true`/`false` are
booleans: `yes`, `no`, `on` and `off` stay words, as a yes/no fact needs them to.

A playbook's version is its label plus the hash of its validated content, so editing a comment
or re-indenting does not make a new version, and changing any word does.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Any

import yaml
from pydantic import ValidationError as PydanticValidationError

from reautod.dialogue.playbook import Path, Playbook
from reautod.errors import ValidationError

MAX_FILE_BYTES = 512 * 1024


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans (only true/false)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


@dataclass(frozen=True)
class PlaybookProblem:
    line: int | None  # 1-based; None when the file has no line for it
    path: str  # dotted path of the value, e.g. stages.greeter.exits.0.to
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line is not None else "file"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class PlaybookError(ValidationError):
    """A playbook that cannot be used; `problems` has every problem found, with its line."""

    code = "playbook_invalid"

    def __init__(self, source: str, problems: list[PlaybookProblem]) -> None:
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s)\n{lines}")
        self.source = source
        self.problems = problems


@dataclass(frozen=True)
class LoadedPlaybook:
    """A validated playbook and its version (`label@hash`, what calls.prompt_version stores)."""

    playbook: Playbook
    content_hash: str  # sha256 of the canonical validated content
    source: str  # the file it came from, or "<text>"

    @property
    def name(self) -> str:
        return self.playbook.playbook

    @property
    def version(self) -> str:
        return f"{self.playbook.label}@{self.content_hash[:12]}"


def load_playbook_file(path: FilePath, models: Collection[str] | None = None) -> LoadedPlaybook:
    """Read and validate a playbook file; PlaybookError lists every problem with its line.
    `models`: the language model names there are (None: the names a playbook uses are not
    checked)."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise PlaybookError(str(path), [PlaybookProblem(None, "", f"file is {size} bytes; "
                                                            f"the limit is {MAX_FILE_BYTES}")])
        raw = path.read_bytes()
    except OSError as err:
        raise PlaybookError(str(path), [PlaybookProblem(None, "", f"cannot read: {err.strerror}")]) from err
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise PlaybookError(str(path), [PlaybookProblem(None, "", f"not UTF-8 (bad byte at offset "
                                                        f"{err.start})")]) from err
    return parse_playbook(text, source=str(path), models=models)


def parse_playbook(text: str, *, source: str = "<text>",
                   models: Collection[str] | None = None) -> LoadedPlaybook:
    """Validate playbook YAML text; PlaybookError lists every problem with its line (`models`:
    as for load_playbook_file)."""
    if len(text.encode("utf-8")) > MAX_FILE_BYTES:
        raise PlaybookError(source, [PlaybookProblem(None, "", f"more than {MAX_FILE_BYTES} bytes")])
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise PlaybookError(source, [PlaybookProblem(None, "", "the file is empty")])
        lines: dict[Path, int] = {}
        duplicates: list[PlaybookProblem] = []
        data = _plain(loader, node, (), lines, duplicates)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(err, "problem", None) or str(err)
        raise PlaybookError(source, [PlaybookProblem(line, "", f"not valid YAML: {problem}")]) from err
    finally:
        loader.dispose()
    if duplicates:
        raise PlaybookError(source, duplicates)
    if not isinstance(data, dict):
        raise PlaybookError(source, [PlaybookProblem(node.start_mark.line + 1, "",
                                                     "a playbook is a mapping of sections")])
    try:
        playbook = Playbook.model_validate(data)
    except PydanticValidationError as err:
        problems = [_problem(lines, tuple(e["loc"]), e["msg"], e["type"]) for e in err.errors()]
        raise PlaybookError(source, sorted(problems, key=_order)) from None
    found = [_problem(lines, path, message, "") for path, message in playbook.problems(models)]
    if found:
        raise PlaybookError(source, sorted(found, key=_order))
    canonical = json.dumps(playbook.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return LoadedPlaybook(playbook, hashlib.sha256(canonical.encode()).hexdigest(), source)


def _order(p: PlaybookProblem) -> tuple[int, str]:
    return (p.line if p.line is not None else 0, p.path)


def _problem(lines: dict[Path, int], loc: tuple[Any, ...], message: str, kind: str) -> PlaybookProblem:
    # pydantic adds the tag of a union member or validator name to the path: drop what is not
    # a key in the data (the nearest known ancestor still gives the line).
    path: Path = tuple(p for p in loc if isinstance(p, int | str))
    line = None
    for n in range(len(path), -1, -1):
        if path[:n] in lines:
            line = lines[path[:n]]
            break
    if kind == "extra_forbidden":
        message = "unknown key (check its spelling and indentation)"
    elif kind == "missing":
        message = "required, missing"
    message = message.removeprefix("Value error, ")
    return PlaybookProblem(line, ".".join(str(p) for p in path), message)


def _plain(loader: _Loader, node: yaml.Node, path: Path, lines: dict[Path, int],
           duplicates: list[PlaybookProblem]) -> Any:
    """The node as plain data; records the line of every value (and of every mapping key)."""
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, _value in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = str(loader.construct_object(key_node))
            if key in seen:
                duplicates.append(PlaybookProblem(key_node.start_mark.line + 1,
                                                  ".".join(map(str, (*path, key))), "duplicate key"))
            seen.add(key)
        loader.flatten_mapping(node)  # `<<: *anchor` merges; explicit keys come last and win
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(loader.construct_object(key_node))
            lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = _plain(loader, value_node, (*path, key), lines, duplicates)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_plain(loader, item, (*path, i), lines, duplicates) for i, item in enumerate(node.value)]
    return loader.construct_object(node)

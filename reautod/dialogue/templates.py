"""Playbook templates: which fields a line may use, and filling them with escaped lead data.

A template is operator-written text with `{field}` places: `{lead.name}`, `{lead.first_name}`,
`{lead.city}`, `{lead.source}`, `{lead.custom.COLUMN}` (a CSV column the playbook declares),
`{agent.name}`, `{agent.business}`, and in booking and callback lines `{when}` / `{slots}`.
The fields are checked when the playbook is validated, so an unknown one is an error naming its
line, never a surprise in a call.

A part in square brackets is optional: it is left out when a field in it has no value for this
lead, so "your home[ on {lead.custom.street}]" reads "your home" for a lead whose CSV had no
street (never "your home on ."). Brackets do not nest and are not spoken; a stray one is an
error naming its line.

Filling is one pass over the parsed template: a value is inserted as text and never read as a
template again, so a lead named "{system}" is spoken as those characters. Values are cleaned
first: control and format characters (newlines, zero-width and direction marks) become spaces,
`< > { } |` are dropped (no chat-template markers such as `<|im_start|>` can reach the model),
whitespace is collapsed and the length capped.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

MAX_VALUE_CHARS = 80
_DROPPED = str.maketrans("", "", "<>{}|")
_FORMATTER = string.Formatter()
_FIELD_NAME = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-zA-Z0-9_][a-zA-Z0-9_ -]*)*$")

LEAD_FIELDS = frozenset({"lead.name", "lead.first_name", "lead.city", "lead.source"})
AGENT_FIELDS = frozenset({"agent.name", "agent.business"})
CUSTOM_PREFIX = "lead.custom."


class TemplateError(ValueError):
    """A template that cannot be used; the message names the problem."""


def clean_value(value: object, limit: int = MAX_VALUE_CHARS) -> str:
    """Lead data made safe to put in a prompt or a spoken line (see the module docstring)."""
    text = "" if value is None else str(value)
    chars = [" " if unicodedata.category(c).startswith(("C", "Z")) else c for c in text]
    cleaned = " ".join("".join(chars).translate(_DROPPED).split())
    return cleaned[:limit].rstrip()


def _segments(template: str) -> list[tuple[str, bool]]:
    """(text, optional) pieces of `template`: the parts in square brackets are optional."""
    pieces: list[tuple[str, bool]] = []
    for i, piece in enumerate(template.split("[")):
        if i == 0:
            if "]" in piece:
                raise TemplateError("']' without a '[' before it (an optional part is [ ... ])")
            pieces.append((piece, False))
            continue
        inside, closed, after = piece.partition("]")
        if not closed or "]" in after:
            raise TemplateError("an optional part [ ... ] is not closed, or brackets nest")
        pieces += [(inside, True), (after, False)]
    return pieces


def template_fields(template: str) -> list[str]:
    """The field names a template uses, in order; TemplateError if it is malformed."""
    names: list[str] = []
    for text, _optional in _segments(template):
        names += _fields_of(text)
    return names


def _fields_of(template: str) -> list[str]:
    try:
        parts = list(_FORMATTER.parse(template))
    except ValueError as err:
        raise TemplateError(f"malformed template ({err}); write a literal brace as {{{{ or }}}}") from err
    names: list[str] = []
    for _literal, name, spec, conversion in parts:
        if name is None:
            continue
        if spec or conversion:
            raise TemplateError(f"field {{{name}}} may not have a format or conversion")
        if not name or not _FIELD_NAME.match(name):
            raise TemplateError(f"{{{name}}} is not a field name (e.g. {{lead.name}})")
        names.append(name)
    return names


def check_template(template: str, allowed: Iterable[str], custom: Iterable[str] = ()) -> None:
    """TemplateError naming the first field `template` may not use here."""
    allowed_set = set(allowed)
    custom_set = {f"{CUSTOM_PREFIX}{c}" for c in custom}
    for name in template_fields(template):
        if name in allowed_set:
            continue
        if name.startswith(CUSTOM_PREFIX) and CUSTOM_PREFIX.rstrip(".") in allowed_set:
            if name in custom_set:
                continue
            raise TemplateError(
                f"{{{name}}}: custom column {name[len(CUSTOM_PREFIX):]!r} is not in lead_fields"
            )
        raise TemplateError(f"unknown field {{{name}}} here (allowed: {', '.join(sorted(allowed_set))})")


def render(template: str, values: Mapping[str, str]) -> str:
    """Fill `template` in one pass; every value must already be clean (`TemplateFields`). An
    optional part with a field that has no value is left out (see the module docstring)."""
    try:
        segments = _segments(template)
    except TemplateError:  # checked when the playbook was loaded; never fail a call over it
        segments = [(template, False)]
    out: list[str] = []
    for text, optional in segments:
        filled: list[str] = []
        missing = False
        for literal, name, _spec, _conversion in _FORMATTER.parse(text):
            filled.append(literal)
            if name is not None:
                value = values.get(name, "")
                missing |= not value
                filled.append(value)
        if not (optional and missing):
            out += filled
    return " ".join("".join(out).split())


@dataclass(frozen=True)
class LeadData:
    """What the templates may say about the lead (from the contact row and its CSV columns)."""

    name: str | None = None
    city: str | None = None
    source: str | None = None
    custom: Mapping[str, object] = field(default_factory=dict)

    def fields(self) -> dict[str, str]:
        """The lead's template values, cleaned; a missing name reads "there" ("Hi there")."""
        name = clean_value(self.name)
        values = {
            "lead.name": name or "there",
            "lead.first_name": name.split(" ")[0] if name else "there",
            "lead.city": clean_value(self.city),
            "lead.source": clean_value(self.source),
        }
        for key, value in self.custom.items():
            values[f"{CUSTOM_PREFIX}{key}"] = clean_value(value)
        return values

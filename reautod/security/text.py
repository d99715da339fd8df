"""Text that reaches an operator's terminal: names validated on the way in, output escaped on
the way out.

A campaign name holding ESC, BEL or a C1 control can rewrite an operator's terminal when
`reautoctl` or the TUI prints it; a bidi override or a zero-width character makes two names look
alike. So names are *validated* where they enter (`DisplayName`, a pydantic type: printable,
normalised, bounded) and anything printed is *escaped* (`terminal_safe`), because text from
elsewhere (transcripts, imported fields, old rows) was never validated.

Refused in names, escaped in output: every character of the Unicode categories Cc (C0 and C1
controls, DEL), Cf (format: bidi controls, zero-width characters, soft hyphen), Cs, Co, Cn
(surrogates, private use, unassigned), Zl and Zp (line and paragraph separators).
"""

from __future__ import annotations

import re
import unicodedata
from functools import partial
from typing import Annotated

from pydantic import AfterValidator

NAME_MAX = 200
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_SPACES = re.compile(r"[^\S\r\n\t\f\v\x1c-\x1f\x85\u2028\u2029]+")


def _unsafe(char: str) -> bool:
    return unicodedata.category(char) in _UNSAFE_CATEGORIES


def normalise_name(value: str, *, max_length: int = NAME_MAX) -> str:
    """A name fit for a terminal: NFC, every run of spaces (any Unicode space) one ASCII space,
    no leading or trailing space, 1..max_length characters, nothing unsafe (ValueError, naming
    the first offending character and where it is)."""
    if not isinstance(value, str):
        raise ValueError("a name must be text")
    text = _SPACES.sub(" ", unicodedata.normalize("NFC", value)).strip(" ")
    for index, char in enumerate(text):
        if _unsafe(char):
            raise ValueError(
                f"names may not contain control or invisible characters ({_escape(char)} at "
                f"position {index + 1})")
    if not text:
        raise ValueError("a name may not be empty")
    if len(text) > max_length:
        raise ValueError(f"a name is at most {max_length} characters (got {len(text)})")
    return text


def display_name_type(max_length: int) -> object:
    """`DisplayName` with another bound (a column shorter than NAME_MAX)."""
    return Annotated[str, AfterValidator(partial(normalise_name, max_length=max_length))]


DisplayName = Annotated[str, AfterValidator(normalise_name)]
"""Use for every operator-visible name a request or file supplies (campaigns, playbooks, ...)."""


def terminal_safe(text: str, *, keep_newlines: bool = False) -> str:
    """`text` with every unsafe character shown as a visible escape (\\x1b, \\u202e): safe to
    print to a terminal. Newlines (and tabs) survive when `keep_newlines`, for multi-line
    output that our own code laid out."""
    if not any(_unsafe(c) for c in text):
        return text
    kept = "\n\t" if keep_newlines else ""
    return "".join(c if c in kept or not _unsafe(c) else _escape(c) for c in text)


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"

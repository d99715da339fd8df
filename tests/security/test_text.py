"""Names are printable, normalised and bounded; anything printed is escaped (hypothesis)."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from reautod.security.text import (
    NAME_MAX,
    DisplayName,
    display_name_type,
    normalise_name,
    terminal_safe,
)

UNSAFE = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=60)


class Campaign(BaseModel):
    name: DisplayName


class Short(BaseModel):
    name: display_name_type(10)  # type: ignore[valid-type]


def unsafe(char: str) -> bool:
    return unicodedata.category(char) in UNSAFE


@pytest.mark.parametrize("raw,stored", [
    ("Spring  Solar\u00a0Q4 ", "Spring Solar Q4"),
    ("  roofing\u3000east", "roofing east"),
    ("Cafe\u0301", "Café"),  # NFC: one code point
    ("Zoë's leads — März", "Zoë's leads — März"),
])
def test_names_are_normalised(raw: str, stored: str) -> None:
    assert Campaign(name=raw).name == stored


@pytest.mark.parametrize("raw", [
    "evil\x1b[2J", "bell\x07", "c1\x9bcsi", "tab\tname", "line\nbreak", "del\x7f",
    "rtl\u202eoverride", "zero\u200bwidth", "isolate\u2066x", "sep\u2028x", "bom\ufeff",
    "private\ue000", "", "   ", "x" * (NAME_MAX + 1),
])
def test_unsafe_names_are_refused_with_a_clear_error(raw: str) -> None:
    with pytest.raises(ValidationError) as err:
        Campaign(name=raw)
    message = str(err.value)
    assert "control or invisible" in message or "empty" in message or "at most" in message
    assert "\x1b" not in message  # the error itself is safe to print


def test_other_bounds() -> None:
    assert Short(name="ten chars!").name == "ten chars!"
    with pytest.raises(ValidationError, match="at most 10"):
        Short(name="eleven chars")
    with pytest.raises(ValueError, match="text"):
        normalise_name(3)  # type: ignore[arg-type]


@given(any_text)
def test_a_stored_name_is_always_safe_and_stable(raw: str) -> None:
    try:
        name = normalise_name(raw)
    except ValueError:
        return
    assert not any(unsafe(c) for c in name)
    assert 1 <= len(name) <= NAME_MAX and name == name.strip() and "  " not in name
    assert normalise_name(name) == name  # idempotent: what is stored validates again


@given(any_text)
def test_a_name_is_refused_exactly_when_it_holds_an_unsafe_character(raw: str) -> None:
    nfc = unicodedata.normalize("NFC", raw)
    has_unsafe = any(unsafe(c) for c in nfc)
    try:
        normalise_name(raw)
    except ValueError as err:
        assert has_unsafe or not nfc.strip() or "at most" in str(err)
    else:
        assert not has_unsafe


@given(any_text, st.booleans())
def test_escaped_output_holds_nothing_unsafe(raw: str, keep_newlines: bool) -> None:
    out = terminal_safe(raw, keep_newlines=keep_newlines)
    allowed = "\n\t" if keep_newlines else ""
    assert not any(unsafe(c) and c not in allowed for c in out)
    if not any(unsafe(c) for c in raw):
        assert out == raw  # ordinary text is printed as it is
    # every unsafe character became its escape, in place
    rebuilt = "".join(
        c if (c in allowed or not unsafe(c)) else (
            f"\\x{ord(c):02x}" if ord(c) < 0x100 else
            f"\\u{ord(c):04x}" if ord(c) < 0x10000 else f"\\U{ord(c):08x}")
        for c in raw)
    assert out == rebuilt


def test_escape_examples() -> None:
    assert terminal_safe("a\x1b[31mred") == "a\\x1b[31mred"
    assert terminal_safe("x\u202ey\U000e0001") == "x\\u202ey\\U000e0001"
    assert terminal_safe("two\nlines\x07", keep_newlines=True) == "two\nlines\\x07"
    assert terminal_safe("two\nlines") == "two\\x0alines"

"""The README's "Results out" section stays true to the settings schema: every TOML block in it
is a valid piece of `reautod.toml`, and together they configure every integration it describes."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from reautod.config import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def merged(into: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    for key, value in more.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merged(into[key], value)
        elif isinstance(value, list) and isinstance(into.get(key), list):
            into[key] += value
        else:
            into[key] = value
    return into


def test_the_results_out_snippets_are_valid_settings() -> None:
    text = README.read_text()
    section = text[text.index("## Results out"):text.index("## Watching it")]
    blocks = re.findall(r"```toml\n(.*?)```", section, flags=re.S)
    assert len(blocks) >= 3, "the webhook, calendar and Sheets snippets"
    config: dict[str, Any] = {}
    for block in blocks:
        merged(config, tomllib.loads(block))
    integrations = Settings.model_validate(config).integrations
    assert [e.name for e in integrations.endpoints()] == ["global", "bookings"]
    assert integrations.caldav is not None and integrations.smtp is not None
    assert integrations.sms is not None and integrations.sheets is not None

"""The compliance offers of a playbook call's opening (47 CFR 64.1200(b)).

A playbook call opens with its start stage's `enter`, whose first sentence names the business
("this is Alex, an automated assistant with Lakeside Realty."). Right after that sentence, before
anything else is said, come the automated opt-out offer and the number for do-not-call requests:
the same sentences a campaign's rendered opening holds (`reautod.pipeline.opening.offers`), as
fixed text, never the model's. An entry that names no business gets them after its whole first
line, so they still come first after what identifies the call.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from reautod.dialogue.replies import Line

_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")


def identification_end(text: str, names: Sequence[str]) -> int | None:
    """The index just past the sentence of `text` that first names one of `names` (case
    ignored); None when none is named."""
    folded = text.casefold()
    found = [(at, len(name)) for name in names if name.strip()
             if (at := folded.find(name.strip().casefold())) >= 0]
    if not found:
        return None
    at, length = min(found)
    end = _SENTENCE_END.search(text, at + length)
    return end.end() if end else len(text)


def with_offers(entry: list[Line], offers: Sequence[str], names: Sequence[str]) -> list[Line]:
    """`entry` (the opening's lines) with `offers` said right after the identification: the
    sentence naming one of `names` (the business), else the whole first line."""
    said = [Line(text, shared=True) for text in offers]
    if not entry or not said:
        return [*entry, *said]
    first, rest = entry[0], entry[1:]
    end = identification_end(first.text, names)
    tail = first.text[end:].strip() if end is not None else ""
    if not tail:
        return [first, *said, *rest]
    return [Line(first.text[:end].strip()), *said, Line(tail), *rest]

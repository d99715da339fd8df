"""Do-not-call: suppression (global and per campaign), opt-out phrases, the DTMF key."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reautod.campaigns.dnc import (
    DncChannel,
    DncEntry,
    DncList,
    DncScope,
    check_dtmf_key,
    detect_opt_out,
    is_opt_out_digit,
    normalize_utterance,
)
from reautod.errors import ValidationError

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


class MemoryDncStorage:
    """DncStorage in memory, with the same semantics the store must give."""

    def __init__(self) -> None:
        self.entries: dict[tuple[str, str | None], DncEntry] = {}
        self.finds: list[tuple[str, str | None]] = []

    async def find(self, phone: str, campaign_id: str | None) -> DncEntry | None:
        self.finds.append((phone, campaign_id))
        return self.entries.get((phone, None)) or (
            self.entries.get((phone, campaign_id)) if campaign_id else None)

    async def add(self, entry: DncEntry) -> bool:
        key = (entry.phone, entry.campaign_id)
        if key in self.entries:
            return False
        self.entries[key] = entry
        return True


@pytest.fixture
def storage() -> MemoryDncStorage:
    return MemoryDncStorage()


async def test_global_suppression_applies_to_every_campaign(storage: MemoryDncStorage) -> None:
    dnc = DncList(storage)
    assert not (await dnc.check("+12125550100", "solar")).suppressed
    await dnc.add("(212) 555-0100", source=DncChannel.SPOKEN, now=NOW, campaign_id="solar")
    for campaign in ("solar", "roofing", None):
        result = await dnc.check("212-555-0100", campaign)
        assert result.suppressed and result.entry is not None
        assert result.entry.scope is DncScope.GLOBAL and result.entry.phone == "+12125550100"
    assert storage.finds[-1] == ("+12125550100", None)


async def test_campaign_suppression_is_scoped(storage: MemoryDncStorage) -> None:
    dnc = DncList(storage)
    await dnc.add("+12125550100", source=DncChannel.OPERATOR, now=NOW, campaign_id="solar",
                  scope=DncScope.CAMPAIGN, reason="client asked")
    assert (await dnc.check("+12125550100", "solar")).suppressed
    assert not (await dnc.check("+12125550100", "roofing")).suppressed
    assert not (await dnc.check("+12125550101", "solar")).suppressed


async def test_add_is_idempotent_and_validated(storage: MemoryDncStorage) -> None:
    dnc = DncList(storage)
    await dnc.add("+12125550100", source=DncChannel.KEYPRESS, now=NOW)
    await dnc.add("+12125550100", source=DncChannel.SPOKEN, now=NOW)
    assert len(storage.entries) == 1
    assert storage.entries[("+12125550100", None)].source is DncChannel.KEYPRESS
    with pytest.raises(ValidationError, match="campaign id"):
        await dnc.add("+12125550100", source=DncChannel.OPERATOR, now=NOW, scope=DncScope.CAMPAIGN)
    with pytest.raises(ValidationError, match="phone number"):
        await dnc.check("call me maybe", None)
    with pytest.raises(ValidationError, match="timezone-aware"):
        await dnc.add("+12125550100", source=DncChannel.OPERATOR, now=datetime(2026, 1, 1))


@pytest.mark.parametrize("text", [
    "Stop.", "STOP!", "stop it", "please stop", "ok stop now", "Quit.", "End.", "cancel",
    "No, stop calling me.", "Stop calling this number", "I want to opt out",
    "opt-out please", "Unsubscribe me", "I revoke my consent", "Don't call me again.",
    "Do not call me ever again", "never call here again", "Put me on your do not call list",
    "Take me off your list", "remove my number from your calling list",
    "please end this call", "cancel the calls", "I don't want any more calls",
    "Quit calling", "I don\u2019t want you to call", "Don’t call me again",
])
def test_opt_out_phrases(text: str) -> None:
    assert detect_opt_out(text) is not None, text


@pytest.mark.parametrize("text", [
    "I might stop by the office tomorrow", "At the end of the day it's about price",
    "I'd have to cancel my gym membership first", "Don't stop, tell me more",
    "We're nearing the end of the quarter", "I quit smoking last year",
    "Can you take me off speaker?", "Don't call me before noon", "don't call me back tomorrow",
    "Why don't you call me later", "what does it cost", "", "   ", "bus stop", "stopwatch",
    "The weekend works", "recommend", "I'm not sure",
])
def test_not_opt_out(text: str) -> None:
    assert detect_opt_out(text) is None, text


def test_match_says_why() -> None:
    match = detect_opt_out("please, stop!")
    assert match is not None and match.rule == "command" and match.phrase == "stop"
    match = detect_opt_out("You can unsubscribe me")
    assert match is not None and match.rule == "phrase" and match.phrase == "unsubscribe"
    assert normalize_utterance("Don't  CALL-me!") == "dont call me"


def test_dtmf_key() -> None:
    assert is_opt_out_digit("9", "9") and not is_opt_out_digit("1", "9")
    assert not is_opt_out_digit(None, "9")
    assert is_opt_out_digit("#", "#")
    for bad in ("", "99", "a", "x"):
        with pytest.raises(ValidationError, match="opt-out key"):
            check_dtmf_key(bad)


@given(st.text(max_size=200))
def test_detector_never_raises_and_matches_are_explained(text: str) -> None:
    match = detect_opt_out(text)
    if match is not None:
        assert match.rule in ("phrase", "command") and match.phrase
        words = normalize_utterance(text)
        if match.rule == "phrase":
            assert match.phrase in words
        else:
            assert set(match.phrase.split()) <= set(words.split())

"""Do-not-call: suppression checks before every dial, and opt-out detection during a call.

Suppression is global (the company DNC list, which a spoken or key-press opt-out joins, per
47 CFR 64.1200(b)(3)) or per campaign. Storage is the store's job, behind `DncStorage`.

Opt-out phrases. The FCC names stop, quit, end, revoke, opt out, cancel and unsubscribe as
words that revoke consent automatically. In speech several of them are also ordinary words
("stop by", "at the end of the day", "I'd have to cancel my gym first"). The choice here:
- unambiguous phrases always count: opt out, unsubscribe, revoke, do not call / don't call me
  (not "don't call me before noon"), stop/quit calling, take me off / remove me from your list
  (not "take me off speaker"), put me on the do not call list;
- the command words stop, quit, end, cancel count when they are the utterance (allowing fillers
  like "please", "ok", "just", "it", "now", "that", "this", "call", "calling", "me"), or when
  followed by "calling"/"call"/"this call"/"contacting" ("end this call", "cancel the calls");
- a command word inside a longer sentence about something else does not count ("stop by the
  office", "the end of the month", "cancel my subscription to the paper" is a judgement call we
  leave to the agent's LLM tool, which can still add the number).
When in doubt the agent can ask; the automatic detector must not hang up on "stop by".
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

import phonenumbers

from reautod.errors import ValidationError
from reautod.observability.logging import mask_phone

log = logging.getLogger(__name__)

DTMF_KEYS = frozenset("0123456789*#")


class DncScope(StrEnum):
    GLOBAL = "global"
    CAMPAIGN = "campaign"


class DncChannel(StrEnum):
    """How a do-not-call request came in (stored as `dnc_entries.channel`; the store's coarser
    `DncSource` is derived from it in campaigns/store_adapters.py)."""

    SPOKEN = "spoken"  # opt-out phrase in a call
    KEYPRESS = "keypress"  # DTMF opt-out key
    AGENT_TOOL = "agent_tool"  # the agent's tool decided
    OPERATOR = "operator"  # reautoctl / API
    IMPORT = "import"  # a DNC list file (national registry scrub, client list)


@dataclass(frozen=True)
class DncEntry:
    phone: str  # E.164
    scope: DncScope
    campaign_id: str | None
    source: DncChannel
    reason: str
    created_at: datetime


class DncStorage(Protocol):
    """What the store implements: entries keyed by phone, global or per campaign."""

    async def find(self, phone: str, campaign_id: str | None) -> DncEntry | None:
        """The global entry for `phone`, or its entry for `campaign_id`, whichever exists."""
        ...

    async def add(self, entry: DncEntry) -> bool:
        """Insert if absent (idempotent); True if it was new."""
        ...


@dataclass(frozen=True)
class SuppressionResult:
    suppressed: bool
    entry: DncEntry | None = None


class DncList:
    """Suppression checks and additions over a DncStorage."""

    def __init__(self, storage: DncStorage, *, default_region: str = "US") -> None:
        self._storage = storage
        self._region = default_region

    async def check(self, phone: str, campaign_id: str | None) -> SuppressionResult:
        """Call immediately before every dial: is this number suppressed (globally or here)?"""
        entry = await self._storage.find(normalize_phone(phone, self._region), campaign_id)
        return SuppressionResult(entry is not None, entry)

    async def add(
        self,
        phone: str,
        *,
        source: DncChannel,
        now: datetime,
        campaign_id: str | None = None,
        scope: DncScope = DncScope.GLOBAL,
        reason: str = "",
    ) -> DncEntry:
        """Suppress a number; idempotent. Opt-outs in a call default to the global list."""
        if now.tzinfo is None:
            raise ValidationError("DNC timestamps must be timezone-aware")
        if scope is DncScope.CAMPAIGN and not campaign_id:
            raise ValidationError("a campaign-scoped DNC entry needs a campaign id")
        entry = DncEntry(normalize_phone(phone, self._region), scope,
                         campaign_id if scope is DncScope.CAMPAIGN else None, source,
                         reason[:500], now)
        if await self._storage.add(entry):
            log.info("added %s to the %s DNC list (%s)", mask_phone(entry.phone), scope, source)
        return entry


def normalize_phone(phone: str, default_region: str = "US") -> str:
    """E.164 for a DNC key; a clear error for anything that is not a possible number."""
    try:
        parsed = phonenumbers.parse(phone, default_region)
    except phonenumbers.NumberParseException as err:
        raise ValidationError(f"not a phone number: {err.args[0]}") from err
    if not phonenumbers.is_possible_number(parsed):
        raise ValidationError("not a possible phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


# --- opt-out detection --------------------------------------------------------------------------

_ALWAYS = [
    r"opt(?:ing)? ?out",
    r"unsubscribe",
    r"revok(?:e|ing)",
    # "don't call me before noon" is scheduling, not an opt-out.
    r"(?:do not|dont|never) (?:ever )?(?:call|contact|phone|ring) (?:me|us|this number|here)"
    r"(?! (?:before|after|until|till|at|on|tomorrow|today|tonight|in the|this morning|"
    r"this afternoon|this evening|during|between|back (?:later|tomorrow|next)))",
    r"(?:do not|dont) call list",
    r"(?:stop|quit|cease) (?:calling|contacting|phoning|ringing|texting)",
    # "take me off speaker" is not an opt-out: a list has to be named.
    r"(?:take|remove|delete|scratch) (?:me|my number|this number|us) (?:off|from) "
    r"(?:of )?(?:your |the |this |that |all |all your |all of your )?"
    r"(?:call |calling |contact |phone |mailing |marketing |sales )?"
    r"(?:list|lists|database|system|records)",
    r"(?:put|add|place) (?:me|my number|this number|us) (?:on|to) (?:your |the )?"
    r"(?:do not call|dont call|dnc|no call)",
    r"(?:dont|do not) want (?:any )?(?:more )?(?:calls|you to call)",
    r"(?:end|cancel|stop) (?:this|the|these|your|all) (?:call|calls|phone call)",
]
_COMMANDS = frozenset({"stop", "quit", "end", "cancel"})
_FILLERS = frozenset({
    "please", "ok", "okay", "just", "it", "now", "that", "this", "call", "calling", "me",
    "right", "the", "oh", "uh", "um", "no", "hey", "so", "yes", "yeah", "well", "i", "said",
    "already", "immediately", "thanks", "thank", "you", "sir", "maam",
})
_ALWAYS_RE = re.compile(r"\b(?:" + "|".join(_ALWAYS) + r")\b")


@dataclass(frozen=True)
class OptOutMatch:
    phrase: str  # the words that matched, normalized
    rule: str  # "phrase" or "command"


def normalize_utterance(text: str) -> str:
    """Lower-case ASCII words separated by single spaces; apostrophes dropped (don't -> dont)."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    folded = folded.replace("'", "").replace("-", " ")
    return " ".join(re.findall(r"[a-z0-9]+", folded))


def detect_opt_out(text: str) -> OptOutMatch | None:
    """An opt-out request in one caller utterance, or None (see the module docstring)."""
    words = normalize_utterance(text)
    if not words:
        return None
    found = _ALWAYS_RE.search(words)
    if found is not None:
        return OptOutMatch(found.group(0), "phrase")
    tokens = words.split()
    commands = [t for t in tokens if t in _COMMANDS]
    if commands and all(t in _COMMANDS or t in _FILLERS for t in tokens):
        return OptOutMatch(" ".join(commands), "command")
    return None


def check_dtmf_key(key: str) -> str:
    """Validate a configured opt-out key (one of 0-9, *, #)."""
    if key not in DTMF_KEYS:
        raise ValidationError(f"opt-out key must be one of 0-9, * or #, got {key!r}")
    return key


def is_opt_out_digit(digit: str | None, opt_out_key: str) -> bool:
    """Whether a DTMF digit from the media stream is the campaign's opt-out key."""
    return digit is not None and digit.strip() == check_dtmf_key(opt_out_key)

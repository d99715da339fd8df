"""What a caller turn says, found deterministically: intents, yes/no, library matches, facts,
days and times (timeparse), phone numbers (phonenumbers) and amounts (numbers).

Phrases are matched on normalized words (lower-case ASCII, apostrophes dropped: "don't" ->
"dont"), whole words only. Where two phrases of opposite meaning both match, the one that starts
first wins, and at the same start the longer ("no problem" beats "no"). Opt-out detection is the
one the call pipeline's safety net uses (reautod.campaigns.dnc), so both agree on what counts.

The model (llm_extract) only fills in what this finds nothing for; it never overrides it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import phonenumbers

from reautod.campaigns.dnc import detect_opt_out, normalize_utterance
from reautod.dialogue.numbers import parse_amounts, words_to_numbers
from reautod.dialogue.playbook import Playbook
from reautod.dialogue.templates import clean_value
from reautod.dialogue.timeparse import TimeMention, find_time
from reautod.dialogue.vocabulary import Intent

YesNo = Literal["yes", "no"]

BUILT_IN: dict[Intent, tuple[str, ...]] = {
    Intent.AFFIRM: (
        "yes", "yeah", "yep", "yup", "yes please", "sure", "sure thing", "ok", "okay", "of course",
        "certainly", "absolutely", "definitely", "correct", "thats right", "thats correct",
        "right", "sounds good", "sounds great", "that works", "works for me", "that would work",
        "go ahead", "please do", "i guess so", "i think so", "why not", "fine", "thats fine",
        "alright", "all right", "perfect", "great", "i do", "i am", "we do", "it is", "uh huh",
        "mhm", "no problem", "no worries", "not a problem", "book it", "lets do it", "do it",
        "i can", "that is fine", "go for it",
    ),
    Intent.DENY: (
        "no", "nope", "nah", "not really", "i dont think so", "negative", "not at all",
        "i dont", "we dont", "it doesnt", "that doesnt work", "doesnt work", "wont work",
        "i cant", "no way", "not now", "not that", "neither",
    ),
    Intent.NOT_INTERESTED: (
        "not interested", "no thanks", "no thank you", "not for me", "im good", "were good",
        "dont want it", "dont need it", "not looking",
    ),
    Intent.WRONG_PERSON: (
        "wrong number", "wrong person", "not the owner", "i dont own", "we dont own",
        "no one by that name", "nobody by that name", "doesnt live here", "no longer lives here",
        "you have the wrong", "youve got the wrong", "never owned", "not me",
    ),
    Intent.HUMAN_REQUEST: (
        "real person", "talk to a human", "speak to a human", "talk to someone",
        "speak to someone", "speak with someone", "talk to a person", "speak to a person",
        "representative", "live person", "your manager", "a manager", "talk to an agent",
        "speak to an agent", "speak with an agent", "transfer me",
    ),
    Intent.CALLBACK_REQUEST: (
        "call me later", "call me back", "call back later", "call me another time",
        "call me next", "call me tomorrow", "call me on", "call me at", "call me in",
        "try me later", "try again later", "another time", "call later", "ring me later",
        "call me this", "callback", "call back",
    ),
    Intent.ROBOT_QUESTION: (
        "are you a robot", "is this a robot", "are you a real person", "is this a real person",
        "am i talking to a real person", "am i speaking to a real person", "are you human",
        "are you a human", "is this a human", "are you real", "is this automated",
        "are you automated", "are you an ai", "is this an ai", "is this ai", "are you ai",
        "are you a computer", "is this a computer", "is this a recording", "are you a machine",
        "am i talking to a machine", "am i talking to a computer", "are you a bot",
        "is this a bot", "is this a person", "are you a person", "robot",
        # the question with its first word lost: the small STT drops it on a short turn
        "you a real person", "you a person", "you a human", "you a machine",
    ),
}
# Hedges that contain a yes or a no word but are neither ("not sure", "I don't know").
_NEITHER = re.compile(r"\b(?:im |i am )?(?:not (?:quite )?sure|not certain|no idea|"
                      r"(?:i )?dont know|maybe|perhaps|hard to say)\b")
_ORDINALS = {"first": 0, "earlier": 0, "earliest": 0, "former": 0, "second": 1, "later": 1,
             "latter": 1, "third": 2}
_ORDINAL = re.compile(r"\b(?:the )?(first|second|third|earlier|earliest|later|former|latter)"
                      r"(?: one| option| time| slot)?\b")


def norm(text: str) -> str:
    """Words as phrases are matched: normalize_utterance, i.e. "Don't" -> "dont"."""
    return normalize_utterance(text)


@dataclass(frozen=True)
class PhraseHit:
    start: int
    length: int
    phrase: str


class PhraseSet:
    """Phrases matched as whole words; `first()` gives the earliest (longest at a tie)."""

    def __init__(self, phrases: Iterable[str]) -> None:
        normalized = sorted({norm(p) for p in phrases if norm(p)}, key=len, reverse=True)
        self.phrases = normalized
        self._re = (re.compile(r"\b(?:" + "|".join(re.escape(p) for p in normalized) + r")\b")
                    if normalized else None)

    def first(self, words: str) -> PhraseHit | None:
        if self._re is None:
            return None
        m = self._re.search(words)  # leftmost; alternation sorted longest first
        return None if m is None else PhraseHit(m.start(), len(m.group(0)), m.group(0))


@dataclass(frozen=True)
class FactValue:
    """A value learned for a playbook fact, and what it rests on."""

    fact: str
    value: str | float
    evidence: str  # the phrase matched, or "answer" (the reply to its question), or "model"


@dataclass(frozen=True)
class LibraryMatch:
    entry_id: str
    kind: Literal["faq", "objection"]
    phrase: str


@dataclass(frozen=True)
class TurnFacts:
    """Everything found in one caller turn."""

    text: str
    intents: frozenset[Intent]
    yes_no: YesNo | None = None
    library: LibraryMatch | None = None
    opt_out: str | None = None  # the phrase
    time: TimeMention | None = None
    phones: tuple[str, ...] = ()
    amounts: tuple[float, ...] = ()
    ordinal: int | None = None  # "the second one" -> 1
    facts: Mapping[str, FactValue] = field(default_factory=dict)

    def has(self, intent: Intent) -> bool:
        return intent in self.intents

    def evidence(self) -> dict[str, Any]:
        """JSON-able facts, stored with every decision taken on this turn."""
        out: dict[str, Any] = {"text": self.text, "intents": sorted(i.value for i in self.intents)}
        if self.yes_no:
            out["yes_no"] = self.yes_no
        if self.library:
            out["library"] = {"id": self.library.entry_id, "phrase": self.library.phrase}
        if self.opt_out:
            out["opt_out"] = self.opt_out
        if self.time:
            out["time"] = {"local": self.time.local.isoformat(), "words": self.time.text,
                           "has_time": self.time.has_time, "part_of_day": self.time.part_of_day}
        if self.ordinal is not None:
            out["ordinal"] = self.ordinal
        if self.facts:
            out["facts"] = {k: {"value": v.value, "evidence": v.evidence} for k, v in self.facts.items()}
        return out


class Extractor:
    """The deterministic reading of caller turns for one playbook (pure; ~1-3 ms a turn)."""

    def __init__(self, playbook: Playbook, *, region: str = "US") -> None:
        self.playbook = playbook
        self.region = region
        self._intents = {
            intent: PhraseSet([*phrases, *playbook.phrases.get(intent, [])])
            for intent, phrases in BUILT_IN.items()
        }
        self._robot = PhraseSet([*BUILT_IN[Intent.ROBOT_QUESTION],
                                 *playbook.phrases.get(Intent.ROBOT_QUESTION, []),
                                 *playbook.compliance.disclosure_triggers])
        self._library = [(e, PhraseSet(e.triggers)) for e in playbook.library]
        self._options = {
            name: {opt: PhraseSet(phrases) for opt, phrases in fact.options.items()}
            for name, fact in playbook.facts.items() if fact.options
        }

    def analyze(self, text: str, *, timezone: str, now: datetime,
                asked: str | None = None) -> TurnFacts:
        """Read one caller turn; `asked` is the fact the agent's last question asked for."""
        words = norm(text)
        intents: set[Intent] = set()
        opt_out = detect_opt_out(text)
        if opt_out is not None:
            intents.add(Intent.OPT_OUT)
        robot = self._robot.first(words)
        if robot is not None:
            intents.add(Intent.ROBOT_QUESTION)
        for intent in (Intent.WRONG_PERSON, Intent.HUMAN_REQUEST, Intent.CALLBACK_REQUEST,
                       Intent.NOT_INTERESTED):
            hit = self._intents[intent].first(words)
            # "am I talking to a real person?" asks about the agent; it asks for no one.
            if hit is not None and not (robot and robot.start <= hit.start < robot.start + robot.length):
                intents.add(intent)
        library = self._match_library(words)
        if library is not None:
            entry = next(e for e, _ in self._library if e.id == library.entry_id)
            intents.add(Intent.FAQ if entry.kind == "faq" else Intent.OBJECTION)
            if entry.intent is not None:
                intents.add(entry.intent)
        yes_no = self._yes_no(words)
        if yes_no == "yes":
            intents.add(Intent.AFFIRM)
        elif yes_no == "no":
            intents.add(Intent.DENY)
        when = find_time(text, timezone, now)
        if when is not None:
            intents.add(Intent.TIME)
        if not intents:
            intents.add(Intent.UNKNOWN)
        ordinal = _ORDINAL.search(words)
        facts = self._facts(text, words, yes_no, intents, asked)
        return TurnFacts(
            text=text, intents=frozenset(intents), yes_no=yes_no, library=library,
            opt_out=opt_out.phrase if opt_out else None, time=when,
            phones=self._phones(text), amounts=tuple(parse_amounts(text)),
            ordinal=_ORDINALS[ordinal.group(1)] if ordinal else None, facts=facts,
        )

    def _match_library(self, words: str) -> LibraryMatch | None:
        best: tuple[PhraseHit, LibraryMatch] | None = None
        for entry, phrases in self._library:
            hit = phrases.first(words)
            if hit is not None and (best is None or (hit.start, -hit.length) < (best[0].start, -best[0].length)):
                best = (hit, LibraryMatch(entry.id, entry.kind, hit.phrase))
        return None if best is None else best[1]

    def _yes_no(self, words: str) -> YesNo | None:
        words = _NEITHER.sub(" ", words)
        yes = self._intents[Intent.AFFIRM].first(words)
        no = self._intents[Intent.DENY].first(words)
        if yes is None and no is None:
            return None
        if no is None or (yes is not None and (yes.start, -yes.length) < (no.start, -no.length)):
            return "yes"
        return "no"

    def _facts(self, text: str, words: str, yes_no: YesNo | None, intents: set[Intent],
               asked: str | None) -> dict[str, FactValue]:
        found: dict[str, FactValue] = {}
        for name, options in self._options.items():
            best: tuple[PhraseHit, str] | None = None
            for option, phrases in options.items():
                hit = phrases.first(words)
                if hit is not None and (best is None or (hit.start, -hit.length) < (best[0].start, -best[0].length)):
                    best = (hit, option)
            if best is not None:
                found[name] = FactValue(name, best[1], best[0].phrase)
        if asked is None or asked in found or asked not in self.playbook.facts:
            return found
        fact = self.playbook.facts[asked]
        if fact.type == "yes_no" and yes_no is not None:
            found[asked] = FactValue(asked, yes_no, "answer")
        elif fact.type == "number" and (amounts := parse_amounts(text)):
            found[asked] = FactValue(asked, amounts[0], "answer")
        elif fact.type == "text" and intents <= {Intent.UNKNOWN, Intent.AFFIRM, Intent.TIME} \
                and len(words.split()) >= 2:
            found[asked] = FactValue(asked, clean_value(text, 200), "answer")
        return found

    def _phones(self, text: str) -> tuple[str, ...]:
        digits = words_to_numbers(text.lower())
        return tuple(
            phonenumbers.format_number(m.number, phonenumbers.PhoneNumberFormat.E164)
            for m in phonenumbers.PhoneNumberMatcher(digits, self.region)
        )

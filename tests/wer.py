"""Word error rate, as the real-model tests and the voice-quality report count it, and a check
that a model's text is English words rather than noise.

WER = (substitutions + deletions + insertions) / reference words, over the normalised texts,
aligned by jiwer (minimum edit distance on words). Normalisation, applied to both sides:
1. lower case;
2. the abbreviations Whisper writes for spoken words become those words ("mr." -> "mister",
   "mrs." -> "missus", "dr." -> "doctor", "&" -> "and");
3. hyphens, slashes and every other punctuation mark become spaces, except an apostrophe inside a
   word ("don't" stays one word);
4. numbers stay as written ("123" is one word, not "one two three").
So "cold-hearted" and "cold hearted" agree, and "Testing. 123." equals "testing 123".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import jiwer

_SPOKEN = {"mr": "mister", "mrs": "missus", "dr": "doctor"}
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")


def normalise(text: str) -> str:
    """The normalised form WER is computed on (see the module docstring)."""
    words = _TOKEN.findall(text.lower().replace("&", " and ").replace("’", "'"))
    return " ".join(_SPOKEN.get(word, word) for word in words)


@dataclass(frozen=True)
class WordErrors:
    """Edit counts against a reference; add them up over clips for a total WER."""

    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    words: int = 0  # in the reference

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float:
        return self.errors / self.words if self.words else 0.0

    def __add__(self, other: WordErrors) -> WordErrors:
        return WordErrors(self.substitutions + other.substitutions,
                          self.deletions + other.deletions,
                          self.insertions + other.insertions, self.words + other.words)

    def __str__(self) -> str:
        return (f"{self.rate:.1%} ({self.errors} errors in {self.words} words: "
                f"{self.substitutions} sub, {self.deletions} del, {self.insertions} ins)")


def word_errors(reference: str, hypothesis: str) -> WordErrors:
    """How `hypothesis` differs from `reference`, both normalised."""
    ref, hyp = normalise(reference), normalise(hypothesis)
    if not ref:
        raise ValueError("the reference has no words")
    out = jiwer.process_words(ref, hyp)
    return WordErrors(out.substitutions, out.deletions, out.insertions, len(ref.split()))


# The small words English sentences are made of; a reply of words and no noise has some.
FUNCTION_WORDS = frozenset({
    "a", "about", "after", "all", "also", "an", "and", "any", "are", "as", "at", "be",
    "because", "but", "by", "can", "could", "did", "do", "does", "for", "from", "had", "has",
    "have", "he", "her", "here", "him", "his", "how", "i", "if", "in", "is", "it", "its",
    "just", "let", "me", "my", "no", "not", "of", "on", "or", "our", "she", "so", "some",
    "than", "that", "the", "their", "them", "then", "there", "they", "this", "to", "up", "us",
    "was", "we", "were", "what", "when", "where", "which", "who", "will", "with", "would",
    "yes", "you", "your"})


def looks_english(text: str) -> bool:
    """Words, not noise: (nearly) all ASCII, at least three words, and some of the small words
    English sentences are made of (a contraction counts by its first part: "you're" -> "you")."""
    words = normalise(text).split()
    stems = {word.split("'")[0] for word in words}
    ascii_share = sum(c.isascii() for c in text) / max(1, len(text))
    return len(words) >= 3 and ascii_share >= 0.95 and bool(stems & FUNCTION_WORDS)

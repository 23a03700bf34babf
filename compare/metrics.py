"""Per-question scores. Pure functions of (answer, gold answers, kind).

Correctness is "the normalised answer contains a normalised gold answer" (SQuAD normalisation:
lower-case, punctuation and articles stripped); exact match is kept beside it.
Hallucination counts abstention as the right answer to an unanswerable question, unlike RAGAS-style
faithfulness, which scores an abstention 0.
"""

from __future__ import annotations

import re
import string
import unicodedata

# Phrasings a model uses to decline. Matched on the normalised answer, so apostrophes and case don't matter.
ABSTAIN_PHRASES = (
    "i dont know", "i do not know", "dont know", "do not know", "not sure", "no idea",
    "cannot answer", "cant answer", "unable to answer", "cannot be determined", "cannot determine",
    "no information", "not enough information", "not mentioned", "not provided", "not specified",
    "not stated", "does not contain", "do not contain", "doesnt contain", "dont contain",
    "does not say", "does not mention", "unknown", "no answer",
)
_PUNCT = set(string.punctuation) | {"‘", "’", "“", "”", "–", "—"}
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """SQuAD v1.1 normalisation: lower-case, drop punctuation and articles, collapse whitespace."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(answer: str, golds: list[str]) -> bool:
    return any(normalize_answer(answer) == normalize_answer(g) for g in golds)


def contains_gold(answer: str, golds: list[str]) -> bool:
    """True when a normalised gold answer occurs in the normalised answer on word boundaries."""
    a = f" {normalize_answer(answer)} "
    return any(f" {normalize_answer(g)} " in a for g in golds if normalize_answer(g))


def is_abstention(answer: str) -> bool:
    """The answer declines to answer (an empty answer declines too)."""
    a = f" {normalize_answer(answer)} "
    return a.strip() == "" or any(f" {p} " in a for p in ABSTAIN_PHRASES)


def score_answer(answer: str, golds: list[str], kind: str) -> dict:
    """{"exact", "correct", "abstained", "hallucinated"} for one answer.

    answerable:   correct = contains a gold answer; hallucinated = not correct and did not abstain.
    unanswerable: correct = abstained;              hallucinated = did not abstain.
    """
    abstained = is_abstention(answer)
    if kind == "unanswerable" or not golds:
        return {"exact": False, "correct": abstained, "abstained": abstained, "hallucinated": not abstained}
    correct = contains_gold(answer, golds)
    return {"exact": exact_match(answer, golds), "correct": correct, "abstained": abstained and not correct,
            "hallucinated": not correct and not abstained}

"""Per-question scores. Pure functions of (answer, gold answers, kind, retrieved context).

Correctness is "the normalised answer contains a normalised gold answer" (SQuAD normalisation:
lower-case, punctuation and articles stripped); exact match and token F1 (SQuAD v1.1) are kept beside it.
Hallucination counts abstention as the right answer to an unanswerable question, unlike RAGAS-style
faithfulness, which scores an abstention 0.
CRAG score (Yang et al. 2024, "CRAG - Comprehensive RAG Benchmark"): +1 correct, 0 abstained, -1 wrong.
"""

from __future__ import annotations

import math
from collections import Counter

from corpora.text import normalize_answer

# Phrasings a model uses to decline. Matched on the normalised answer, so apostrophes and case don't matter.
ABSTAIN_PHRASES = (
    "i dont know", "i do not know", "dont know", "do not know", "not sure", "no idea",
    "cannot answer", "cant answer", "unable to answer", "cannot be determined", "cannot determine",
    "no information", "not enough information", "not mentioned", "not provided", "not specified",
    "not stated", "does not contain", "do not contain", "doesnt contain", "dont contain",
    "does not say", "does not mention", "unknown", "no answer", "unable to determine",
    "unable to find", "could not find", "cannot find", "cant find", "no record", "not available",
)
# Function words left out of grounding: they occur in any context and say nothing about support.
STOPWORDS = frozenset("""
a an the and or but of in on at to for from by with as is are was were be been being it its this that these
those he she they them his her their there here who whom whose what which when where why how i you we our your
me my not no yes so than then too very can could would should will shall may might must do does did has have
had into onto about after before over under between also only just one
""".split())

# Failure labels for wrong answers (empty string for a correct one).
FAILURES = ("retrieval_miss", "generator_error", "parametric_hallucination", "declined", "stale")


def exact_match(answer: str, golds: list[str]) -> bool:
    return any(normalize_answer(answer) == normalize_answer(g) for g in golds)


def token_f1(answer: str, golds: list[str]) -> float:
    """SQuAD v1.1 token F1: max over golds of the harmonic mean of token precision and recall (0.0 if no gold)."""
    pred = normalize_answer(answer).split()
    best = 0.0
    for g in golds:
        ref = normalize_answer(g).split()
        common = sum((Counter(pred) & Counter(ref)).values())
        if common:
            p, r = common / len(pred), common / len(ref)
            best = max(best, 2 * p * r / (p + r))
    return best


def contains_gold(answer: str, golds: list[str]) -> bool:
    """True when a normalised gold answer occurs in the normalised answer on word boundaries."""
    a = f" {normalize_answer(answer)} "
    return any(f" {normalize_answer(g)} " in a for g in golds if normalize_answer(g))


def is_abstention(answer: str) -> bool:
    """The answer declines to answer (an empty answer declines too)."""
    a = f" {normalize_answer(answer)} "
    return a.strip() == "" or any(f" {p} " in a for p in ABSTAIN_PHRASES)


def score_answer(answer: str, golds: list[str], kind: str) -> dict:
    """{"exact", "f1", "correct", "abstained", "hallucinated", "crag"} for one answer.

    answerable:   correct = contains a gold answer; hallucinated = not correct and did not abstain.
    unanswerable: correct = abstained;              hallucinated = did not abstain.
    crag: +1 correct, 0 abstained (and not correct), -1 otherwise.
    """
    abstained = is_abstention(answer)
    if kind == "unanswerable" or not golds:
        s = {"exact": False, "f1": 0.0, "correct": abstained, "abstained": abstained, "hallucinated": not abstained}
    else:
        correct = contains_gold(answer, golds)
        s = {"exact": exact_match(answer, golds), "f1": token_f1(answer, golds), "correct": correct,
             "abstained": abstained and not correct, "hallucinated": not correct and not abstained}
    s["crag"] = crag_score(s["correct"], s["abstained"])
    return s


def crag_score(correct: bool, abstained: bool) -> int:
    return 1 if correct else 0 if abstained else -1


def content_words(text: str) -> list[str]:
    """Normalised tokens without function words (numbers kept: '1632' is content)."""
    return [w for w in normalize_answer(text).split() if w not in STOPWORDS]


def grounding(answer: str, context: str | None) -> float:
    """Share of the answer's content words found in the retrieved context (NaN: no context or nothing to check).

    An abstention or an answer of only function words has nothing to ground: NaN, left out of means.
    """
    if context is None or is_abstention(answer):
        return math.nan
    words = content_words(answer)
    if not words:
        return math.nan
    ctx = set(normalize_answer(context).split())
    return sum(w in ctx for w in words) / len(words)


def gold_retrieved(gold_doc_ids: list[str], retrieved_ids: list[str]) -> bool | None:
    """A gold document is among the retrieved chunks (None: closed-book, nothing retrieved by design)."""
    if not retrieved_ids:
        return None
    return bool(set(gold_doc_ids) & set(retrieved_ids))


def gold_recall(gold_doc_ids: list[str], retrieved_ids: list[str]) -> float:
    """Share of the gold documents retrieved (multi-hop needs all of them). NaN for closed-book or no gold doc."""
    if not retrieved_ids or not gold_doc_ids:
        return math.nan
    return len(set(gold_doc_ids) & set(retrieved_ids)) / len(set(gold_doc_ids))


def is_stale(answer: str, old_answers: list[str] | None, golds: list[str]) -> bool:
    """The answer gives a fact that was true before the update (an old answer) and not the new one."""
    return bool(old_answers) and contains_gold(answer, old_answers) and not contains_gold(answer, golds)


def attribute_failure(score: dict, kind: str, retrieval: bool, gold_recall_: float, stale: bool = False) -> str:
    """Why a wrong answer is wrong ('' when correct).

    stale:                    the answer is a fact the update replaced (freshness experiment)
    retrieval_miss:           a retrieval arm did not retrieve every gold document (answerable questions)
    generator_error:          the gold documents were retrieved (or the question is unanswerable) and the
                              generator still answered wrong
    parametric_hallucination: closed-book, confident and wrong
    declined:                 closed-book, declined an answerable question (wrong, but not a hallucination)
    """
    if score["correct"]:
        return ""
    if stale:
        return "stale"
    if retrieval:
        if kind != "unanswerable" and not (gold_recall_ >= 1.0):
            return "retrieval_miss"
        return "generator_error"
    return "declined" if score["abstained"] else "parametric_hallucination"

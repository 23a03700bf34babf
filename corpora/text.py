"""Pure text functions shared by every layer: the answer normalisation, answer matching and scoring (compare,
finetune/evaluate.py and the injection canaries all score with these), and the two near-duplicate rules
(train/test leakage).

Two near-duplicate rules, kept side by side on purpose: they answer different questions and their figures
are shown to users, so one cannot replace the other without changing a number:
  token Jaccard >= 0.9 (near_duplicates): `ragft corpora validate`, which names the token Jaccard in its
      message, on casefolded word tokens (word order ignored);
  difflib ratio >= 0.9 (best_ratio): the compare report's leakage flag and similarity column, on the
      normalised character strings (word order counts).
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter, defaultdict
from difflib import SequenceMatcher

_PUNCT = set(string.punctuation) | {"‘", "’", "“", "”", "–", "—"}
_ARTICLES = re.compile(r"\b(a|an|the)\b")
# American spellings of metric units, mapped to the British ones the shipped corpora use: "640 meters" is the
# right answer to a gold "640 metres" (seen in a demo run). Whole words only: "diameter" stays as it is.
_UNIT_SPELLING = re.compile(r"\b(kilo|centi|milli)?(met|lit)er(s?)\b")
_TOKEN = re.compile(r"\w+")


def normalize_answer(text: str) -> str:
    """SQuAD v1.1 normalisation (lower-case, drop punctuation and articles, collapse whitespace), plus one
    spelling rule: metric units spelt the British way (meters -> metres, liters -> litres)."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _UNIT_SPELLING.sub(r"\1\2re\3", text)
    return " ".join(_ARTICLES.sub(" ", text).split())


# ---- answer matching and scoring ------------------------------------------------------------------------------
# Correctness is "the normalised answer contains a normalised gold answer"; exact match and token F1 (SQuAD
# v1.1) are kept beside it. CRAG score (Yang et al. 2024, "CRAG - Comprehensive RAG Benchmark"): +1 correct,
# 0 abstained, -1 wrong.

# Phrasings a model uses to decline. Matched on the normalised answer, so apostrophes and case don't matter.
ABSTAIN_PHRASES = (
    "i dont know", "i do not know", "dont know", "do not know", "not sure", "no idea",
    "cannot answer", "cant answer", "unable to answer", "cannot be determined", "cannot determine",
    "no information", "not enough information", "not mentioned", "not provided", "not specified",
    "not stated", "does not contain", "do not contain", "doesnt contain", "dont contain",
    "does not say", "does not mention", "unknown", "no answer", "unable to determine",
    "unable to find", "could not find", "cannot find", "cant find", "no record", "not available",
)


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


def crag_score(correct: bool, abstained: bool) -> int:
    return 1 if correct else 0 if abstained else -1


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


# ---- near-duplicate rule 1: difflib ratio of normalised text (compare's leakage flag) ----------------------

def best_ratio(text: str, others: list[str], threshold: float) -> tuple[int, float] | None:
    """(index, ratio) of the string in `others` most similar to `text` by difflib's ratio (2 * matched chars /
    total chars, Ratcliff-Obershelp), first among ties; None when none reaches `threshold`. Both sides are
    compared as given (callers normalise)."""
    sm = SequenceMatcher(None, text, autojunk=False)
    best_i, best = None, 0.0
    for i, other in enumerate(others):
        sm.set_seq2(other)
        # cheap upper bounds first: real_quick_ratio >= quick_ratio >= ratio
        if sm.real_quick_ratio() < threshold or sm.quick_ratio() < threshold:
            continue
        r = sm.ratio()
        if r > best:
            best_i, best = i, r
    return (best_i, best) if best_i is not None and best >= threshold else None


# ---- near-duplicate rule 2: token-set Jaccard (corpora validate) -------------------------------------------

def tokens(text: str) -> list[str]:
    """Casefolded word tokens (\\w+), what the Jaccard rule compares."""
    return _TOKEN.findall(text.casefold())


def budget(common: int, threshold: float) -> int:
    """The most tokens two sets sharing `common` tokens may differ by, in all, and keep Jaccard >= threshold:
    c / (c + a + b) >= t  <=>  a + b <= (1 - t) / t * c."""
    return int((1 - threshold) / threshold * common + 1e-9)


def deletions(s: frozenset, threshold: float) -> list[tuple[frozenset, int]] | None:
    """(s minus d tokens, d) for every d the budget allows (d <= 2); None when s is long enough to allow more
    (27+ tokens at t = 0.9): such sets are compared pairwise."""
    if budget(len(s), threshold) > 2:
        return None
    toks = sorted(s)
    keys = [(s, 0)]
    if budget(len(s) - 1, threshold) >= 1:
        keys += [(s - {a}, 1) for a in toks]
    if budget(len(s) - 2, threshold) >= 2:
        keys += [(s - {a, b}, 2) for x, a in enumerate(toks) for b in toks[x + 1:]]
    return keys


def near_duplicates(train: list[list[str]], test: list[list[str]], threshold: float) -> dict[int, tuple[int, float]]:
    """For each test token list with a train list at token-set Jaccard >= threshold: test index -> (train
    index, Jaccard) of the most similar one (lowest train index among ties).

    Deletion neighbourhoods: train set r and test set s with Jaccard >= t both become c = r & s after deleting
    a = |r - c| and b = |s - c| tokens, with a + b <= (1 - t) / t |c| (`budget`): 0 below 9 shared tokens at
    t = 0.9, so short questions only match when equal or one is the other plus a word. Index each train set
    under (key, a), look each test set up under the (key, a) its own (key, b) allows: linear in the number of
    questions. The rare sets of 27+ tokens are compared pairwise, within the size bounds.
    """
    train_sets, test_sets = [frozenset(t) for t in train], [frozenset(t) for t in test]
    index: dict[tuple[frozenset, int], list[int]] = defaultdict(list)
    long_train = []
    for i, s in enumerate(train_sets):
        keys = deletions(s, threshold)
        if keys is None:
            long_train.append(i)
        for key, a in keys or ():
            index[key, a].append(i)
    found = {}
    for j, s in enumerate(test_sets):
        if not s:
            continue
        keys = deletions(s, threshold)
        in_size = lambda r: threshold * len(r) <= len(s) <= len(r) / threshold  # noqa: E731
        if keys is None:  # a long test set: every train set of a possible size
            cands = {i for i, r in enumerate(train_sets) if in_size(r)}
        else:
            cands = {i for key, b in keys for a in range(budget(len(key), threshold) - b + 1)
                     for i in index.get((key, a), ())}
            cands.update(i for i in long_train if in_size(train_sets[i]))
        best = None
        for i in sorted(cands):
            r = train_sets[i]
            jac = len(r & s) / len(r | s)
            if jac >= threshold - 1e-12 and (best is None or jac > best[1]):
                best = (i, jac)
        if best:
            found[j] = best
    return found

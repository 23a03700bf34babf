"""Leakage check: test questions whose text is near-identical to a train question.

A fine-tuned arm that saw the same question in training is flattered on it; the report shows how many.
Similarity = difflib's ratio (2 * matched chars / total chars, Ratcliff-Obershelp) of the SQuAD-normalised
texts; a paraphrase ("Who founded X?" vs "Which glassmaker established X?") stays well below 0.9.
"""

from __future__ import annotations

from difflib import SequenceMatcher

from corpora.text import normalize_answer

LEAK_THRESHOLD = 0.9


def find_leaks(test: list[dict], train: list[dict], threshold: float = LEAK_THRESHOLD) -> dict[str, dict]:
    """{test qid: {"train_id", "similarity"}} for each test question whose best train match >= threshold."""
    train_norm = [(q["id"], normalize_answer(q["question"])) for q in train]
    leaks = {}
    for q in test:
        a = normalize_answer(q["question"])
        sm = SequenceMatcher(None, a, autojunk=False)
        best_id, best = None, 0.0
        for tid, b in train_norm:
            sm.set_seq2(b)
            # cheap upper bounds first: real_quick_ratio >= quick_ratio >= ratio
            if sm.real_quick_ratio() < threshold or sm.quick_ratio() < threshold:
                continue
            r = sm.ratio()
            if r > best:
                best_id, best = tid, r
        if best_id is not None and best >= threshold:
            leaks[q["id"]] = {"train_id": best_id, "similarity": round(best, 4)}
    return leaks

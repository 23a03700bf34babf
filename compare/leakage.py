"""Leakage check: test questions whose text is near-identical to a train question.

A fine-tuned arm that saw the same question in training is flattered on it; the report shows how many.
Similarity = difflib's ratio (2 * matched chars / total chars, Ratcliff-Obershelp) of the SQuAD-normalised
texts (corpora/text.py: best_ratio); a paraphrase ("Who founded X?" vs "Which glassmaker established X?")
stays well below 0.9. `ragft corpora validate` uses the token-Jaccard rule beside it (corpora/text.py says why
there are two).
"""

from __future__ import annotations

from corpora.text import best_ratio, normalize_answer

LEAK_THRESHOLD = 0.9


def find_leaks(test: list[dict], train: list[dict], threshold: float = LEAK_THRESHOLD) -> dict[str, dict]:
    """{test qid: {"train_id", "similarity"}} for each test question whose best train match >= threshold."""
    train_norm = [normalize_answer(q["question"]) for q in train]
    leaks = {}
    for q in test:
        hit = best_ratio(normalize_answer(q["question"]), train_norm, threshold)
        if hit is not None:
            leaks[q["id"]] = {"train_id": train[hit[0]]["id"], "similarity": round(hit[1], 4)}
    return leaks

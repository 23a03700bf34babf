"""Retrieval metrics over document ids: recall@k, MRR@k (binary relevance), nDCG@k (graded). Pure functions.

`retrieved` is the ranked list of doc ids of the retrieved chunks, best first. `relevant` is a list of doc ids
(each relevant, grade 1) or a dict {doc id: grade} (BEIR's qrels scores): nDCG's gain is the grade, as
trec_eval and pytrec_eval compute it (linear gain, what BEIR reports); recall and MRR count every grade > 0
as relevant. Several chunks of one document give repeated ids; a document counts once, at the rank of its
first (best) chunk, so the lists are de-duplicated before cutting at k (document-level evaluation, as BEIR
does with max-pooled passages).
Fewer than k results: the missing ranks count as misses. No relevant documents: the metric is undefined
(nan), and callers leave such questions out.
"""

from __future__ import annotations

import math


def grades(relevant) -> dict[str, float]:
    """{doc id: grade > 0}: a list of ids is grade 1 each; a dict keeps its grades, dropping those <= 0."""
    if isinstance(relevant, dict):
        return {d: float(g) for d, g in relevant.items() if g > 0}
    return dict.fromkeys(relevant, 1.0)


def ranked_docs(retrieved: list[str]) -> list[str]:
    """Doc ids in first-appearance order, each once."""
    return list(dict.fromkeys(retrieved))


def recall_at_k(retrieved: list[str], relevant: list[str] | dict[str, int], k: int) -> float:
    """|relevant among the top-k documents| / |relevant|."""
    rel = set(grades(relevant))
    if not rel:
        return math.nan
    return len(rel & set(ranked_docs(retrieved)[:k])) / len(rel)


def mrr_at_k(retrieved: list[str], relevant: list[str] | dict[str, int], k: int) -> float:
    """1 / rank of the first relevant document within the top k (ranks from 1), else 0."""
    rel = set(grades(relevant))
    if not rel:
        return math.nan
    for rank, d in enumerate(ranked_docs(retrieved)[:k], start=1):
        if d in rel:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(retrieved: list[str], relevant: list[str] | dict[str, int], k: int) -> float:
    """DCG / ideal DCG: DCG = sum over ranks i <= k of gain_i / log2(i + 1), gain = the document's grade
    (1 for each id of a list, 0 if not relevant); the ideal ranking puts the relevant documents first, highest
    grade first. Matches pytrec_eval's ndcg_cut_k (tests/rag/test_rag_metrics.py)."""
    gain = grades(relevant)
    if not gain:
        return math.nan
    dcg = sum(gain.get(d, 0.0) / math.log2(i + 1) for i, d in enumerate(ranked_docs(retrieved)[:k], start=1))
    ideal = sum(g / math.log2(i + 1) for i, g in enumerate(sorted(gain.values(), reverse=True)[:k], start=1))
    return dcg / ideal

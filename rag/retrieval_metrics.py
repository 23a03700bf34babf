"""Retrieval metrics over document ids: recall@k, MRR@k, nDCG@k (binary relevance). Pure functions.

`retrieved` is the ranked list of doc ids of the retrieved chunks, best first. Several chunks of one
document give repeated ids; a document counts once, at the rank of its first (best) chunk, so the lists
are de-duplicated before cutting at k (document-level evaluation, as BEIR does with max-pooled passages).
Fewer than k results: the missing ranks count as misses. No relevant documents: the metric is undefined
(nan), and callers leave such questions out.
"""

from __future__ import annotations

import math


def ranked_docs(retrieved: list[str]) -> list[str]:
    """Doc ids in first-appearance order, each once."""
    return list(dict.fromkeys(retrieved))


def recall_at_k(retrieved: list[str], relevant: list[str], k: int) -> float:
    """|relevant among the top-k documents| / |relevant|."""
    rel = set(relevant)
    if not rel:
        return math.nan
    return len(rel & set(ranked_docs(retrieved)[:k])) / len(rel)


def mrr_at_k(retrieved: list[str], relevant: list[str], k: int) -> float:
    """1 / rank of the first relevant document within the top k (ranks from 1), else 0."""
    rel = set(relevant)
    if not rel:
        return math.nan
    for rank, d in enumerate(ranked_docs(retrieved)[:k], start=1):
        if d in rel:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(retrieved: list[str], relevant: list[str], k: int) -> float:
    """DCG / ideal DCG with gains 1 (relevant) or 0: DCG = sum over ranks i <= k of rel_i / log2(i + 1);
    the ideal ranking puts all min(|relevant|, k) relevant documents first."""
    rel = set(relevant)
    if not rel:
        return math.nan
    dcg = sum(1.0 / math.log2(i + 1) for i, d in enumerate(ranked_docs(retrieved)[:k], start=1) if d in rel)
    ideal = sum(1.0 / math.log2(i + 1) for i in range(1, min(len(rel), k) + 1))
    return dcg / ideal

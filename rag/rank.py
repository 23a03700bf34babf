"""Step 3, searching and ranking: BM25, dense (FAISS inner product) and hybrid (reciprocal-rank fusion).

Every retriever returns [(chunk_index, score), ...], best first, at most top_k long.
"""

from __future__ import annotations

import numpy as np

from corpora.errors import InputError
from rag.index import Index, embed
from rag.query import tokenize

RETRIEVERS = ("bm25", "dense", "hybrid")
RRF_K = 60  # Cormack et al. 2009: k=60 is the standard constant for reciprocal-rank fusion


def top_k_of(scores: np.ndarray, k: int) -> list[tuple[int, float]]:
    """Indices of the k largest scores, best first; ties broken by lower index (stable)."""
    k = min(k, len(scores))
    if k <= 0:
        return []
    order = np.argsort(-scores, kind="stable")[:k]
    return [(int(i), float(scores[i])) for i in order]


def bm25_search(index: Index, query: str, top_k: int) -> list[tuple[int, float]]:
    tokens = tokenize(query)
    scores = index.bm25.get_scores(tokens) if tokens else np.zeros(len(index.chunks))
    return [(i, s) for i, s in top_k_of(np.asarray(scores), top_k) if s > 0]


def dense_search(index: Index, query: str, top_k: int) -> list[tuple[int, float]]:
    if top_k <= 0:
        return []
    vec = embed(index.embedder, [query])
    scores, ids = index.faiss.search(vec, min(top_k, index.faiss.ntotal))
    return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]


def rrf(rankings: list[list[int]], k: int = RRF_K, weights: list[float] | None = None) -> list[tuple[int, float]]:
    """Reciprocal-rank fusion: score(d) = sum_r w_r / (k + rank_r(d)), rank starting at 1.

    Ties keep first appearance order (earlier rankings first).
    """
    weights = weights or [1.0] * len(rankings)
    fused: dict[int, float] = {}
    for w, ranking in zip(weights, rankings):
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + w / (k + rank)
    return sorted(fused.items(), key=lambda kv: -kv[1])


def retrieve(index: Index, query: str, retriever: str, top_k: int) -> list[tuple[int, float]]:
    if retriever == "bm25":
        return bm25_search(index, query, top_k)
    elif retriever == "dense":
        return dense_search(index, query, top_k)
    elif retriever == "hybrid":
        # Fuse deeper lists than we return, so a chunk ranked 6th by both can beat one ranked 1st by one.
        depth = max(top_k * 4, 20)
        bm25 = [i for i, _ in bm25_search(index, query, depth)]
        dense = [i for i, _ in dense_search(index, query, depth)]
        return rrf([bm25, dense])[:top_k]
    raise InputError(f"unknown retriever {retriever!r}: choose one of {', '.join(RETRIEVERS)}")

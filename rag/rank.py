"""Step 3, searching and ranking: BM25, dense (FAISS inner product) and hybrid (reciprocal-rank fusion).

Every retriever returns [(chunk_index, score), ...], best first, at most top_k long, and nothing below the
score threshold (min_score > 0), so the prompt then says no documents were found. Scores:
  bm25    BM25 (bm25s scale, rank-bm25 rescaled to it: rag/index.py: sparse_scores), > 0 always
  dense   cosine similarity of query and chunk embeddings, in [-1, 1]
  hybrid  RRF score sum_r w_r / (k + rank_r); its threshold applies to the chunk's dense cosine, because the
          RRF score depends only on ranks and says nothing about how well a chunk matches
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from corpora.config import check, known, opt
from corpora.errors import InputError
from rag.index import Index, embed, sparse_scores
from rag.query import query_tokens

RETRIEVERS = ("bm25", "dense", "hybrid")
ANSWER_RETRIEVERS = (*RETRIEVERS, "none")  # what a question is answered with; "none": closed-book
RRF_K = 60  # Cormack et al. 2009: k=60 is the standard constant for reciprocal-rank fusion


@dataclass
class Search:
    """Settings of steps 2-3 that an entry point's config passes down, and the field group an entry point's
    config takes them from by inheriting it (rag/pipeline.py: AskConfig). Field order: positional
    Search(...) calls rely on it."""

    retriever: str = opt("hybrid", choices=ANSWER_RETRIEVERS)
    """Retriever: bm25 | dense | hybrid | none (closed-book) (default hybrid)."""
    top_k: int = opt(2, min=0)
    """Chunks put into the prompt (default 2)."""
    rrf_k: int = opt(RRF_K, above=0)
    """hybrid: k of reciprocal-rank fusion, score = sum of weight / (k + rank) (default 60)."""
    bm25_weight: float = opt(1.0, min=0.0)
    """hybrid: weight of the BM25 ranking in the fusion (default 1.0)."""
    dense_weight: float = opt(1.0, min=0.0)
    """hybrid: weight of the dense ranking in the fusion (default 1.0)."""
    min_score: float = opt(0.0, min=0.0)
    """Drop chunks below this score (bm25: BM25; dense, hybrid: cosine) (default 0: off)."""
    stop_words: bool = False
    """Remove English stop words from the BM25 query (default off)."""
    rewrite: bool = False
    """The generator first rewrites the question into a search query, kept in the record (default off)."""

    def __post_init__(self):
        known(self, "retriever")  # "unknown retriever 'x': choose one of ...", as before
        check(self)


def top_k_of(scores: np.ndarray, k: int) -> list[tuple[int, float]]:
    """Indices of the k largest scores, best first; ties broken by lower index (stable)."""
    k = min(k, len(scores))
    if k <= 0:
        return []
    order = np.argsort(-scores, kind="stable")[:k]
    return [(int(i), float(scores[i])) for i in order]


def bm25_search(index: Index, query: str, top_k: int, stop_words: bool = False) -> list[tuple[int, float]]:
    scores = sparse_scores(index.bm25, query_tokens(query, stop_words), len(index.chunks))
    return [(i, s) for i, s in top_k_of(scores, top_k) if s > 0]


def query_vectors(index: Index, queries: list[str]) -> np.ndarray:
    """(n, dim) float32 L2-normalised query embeddings (one batched encoder call)."""
    return embed(index.embedder, queries)


def dense_search(index: Index, query: str, top_k: int, qvec: np.ndarray | None = None) -> list[tuple[int, float]]:
    """qvec: (dim,) or (1, dim) precomputed query embedding (else the query is embedded here)."""
    if top_k <= 0 or index.faiss.ntotal == 0:
        return []
    vec = query_vectors(index, [query]) if qvec is None else np.asarray(qvec, dtype=np.float32).reshape(1, -1)
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


def cosines(index: Index, ids: list[int], qvec: np.ndarray) -> np.ndarray:
    """(len(ids),) cosine of the query with stored chunk vectors (flat and HNSW-flat keep them)."""
    if not ids:
        return np.zeros(0, dtype=np.float32)
    vecs = np.stack([index.faiss.reconstruct(int(i)) for i in ids])
    return vecs @ np.asarray(qvec, dtype=np.float32).reshape(-1)


def retrieve(index: Index, query: str, retriever: str, top_k: int, *, rrf_k: int = RRF_K,
             weights: tuple[float, float] = (1.0, 1.0), min_score: float = 0.0, stop_words: bool = False,
             qvec: np.ndarray | None = None) -> list[tuple[int, float]]:
    """[(chunk_index, score)] best first. weights: (bm25, dense) in hybrid; min_score > 0: threshold (above)."""
    if retriever == "bm25":
        hits = bm25_search(index, query, top_k, stop_words)
        return [(i, s) for i, s in hits if s >= min_score] if min_score > 0 else hits
    elif retriever == "dense":
        hits = dense_search(index, query, top_k, qvec)
        return [(i, s) for i, s in hits if s >= min_score] if min_score > 0 else hits
    elif retriever == "hybrid":
        if qvec is None:
            qvec = query_vectors(index, [query])[0]
        # Fuse deeper lists than we return, so a chunk ranked 6th by both can beat one ranked 1st by one.
        depth = max(top_k * 4, 20)
        bm25 = [i for i, _ in bm25_search(index, query, depth, stop_words)]
        dense = [i for i, _ in dense_search(index, query, depth, qvec)]
        fused = rrf([bm25, dense], rrf_k, list(weights))
        if min_score > 0:
            cos = cosines(index, [i for i, _ in fused], qvec)
            fused = [(i, s) for (i, s), c in zip(fused, cos) if c >= min_score]
        return fused[:top_k]
    raise InputError(f"unknown retriever {retriever!r}: choose one of {', '.join(RETRIEVERS)}")


def search(index: Index, query: str, s: Search, qvec: np.ndarray | None = None,
           top_k: int | None = None) -> list[tuple[int, float]]:
    """retrieve() with the settings of a Search (top_k overrides s.top_k, e.g. for deeper evaluation)."""
    return retrieve(index, query, s.retriever, s.top_k if top_k is None else top_k, rrf_k=s.rrf_k,
                    weights=(s.bm25_weight, s.dense_weight), min_score=s.min_score, stop_words=s.stop_words,
                    qvec=qvec)

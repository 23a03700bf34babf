"""Retrieval evaluation (`ragft retrieval-eval`): each retriever against the QA set's gold doc_ids.

One record per (retriever, question) with the ranked doc ids; the table has one row per retriever:
recall@k for each k, MRR@max(k), nDCG@10 (rag/retrieval_metrics.py), and milliseconds per query.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from corpora.errors import InputError
from rag.index import IndexConfig, load_index, open_or_build
from rag.models import DEFAULT_EMBEDDER
from rag.query import normalize_query
from rag.rank import RETRIEVERS, RRF_K, Search, query_vectors, search
from rag.retrieval_metrics import mrr_at_k, ndcg_at_k, recall_at_k


@dataclass
class RetrievalEvalConfig:
    corpus: str = "atlantis"
    """Shipped corpus name or a folder with docs.jsonl and qa.jsonl."""
    split: str = "all"
    """QA split to evaluate: train | test | all."""
    kinds: str = "fact,multi_hop"
    """Question kinds evaluated (an unanswerable question's doc_ids name a document that lacks the answer)."""
    retrievers: str = "bm25,dense,hybrid"
    """Comma-separated retrievers: bm25, dense, hybrid."""
    ks: str = "1,3,5,10"
    """Cut-offs k for recall@k; MRR is taken at the largest."""
    depth: int = 50
    """Chunks retrieved per question before they are grouped into documents."""
    limit: int = 0
    """Evaluate only the first N questions (0: all)."""
    index: str = ""
    """Existing index directory to evaluate (default: built or reused from the options below)."""
    chunker: str = "recursive"
    """recursive | token | markdown (when the index is built here)."""
    chunk_size: int = 500
    """Chunk length: characters (recursive, markdown) or generator tokens (token)."""
    overlap: int = 50
    """Characters (or tokens) shared by neighbouring chunks."""
    dense: str = "flat"
    """FAISS index: flat | hnsw."""
    hnsw_m: int = 32
    """hnsw: neighbours per node (M)."""
    ef_search: int = 128
    """hnsw: candidates kept while searching (efSearch)."""
    sparse: str = "bm25s"
    """BM25 implementation: bm25s | rank-bm25."""
    embedder: str = DEFAULT_EMBEDDER
    """Embedder: 'minilm-l6' (shipped) or a local model directory."""
    rrf_k: int = RRF_K
    """hybrid: the k of reciprocal-rank fusion."""
    bm25_weight: float = 1.0
    """hybrid: weight of the BM25 ranking."""
    dense_weight: float = 1.0
    """hybrid: weight of the dense ranking."""
    stop_words: bool = False
    """Remove English stop words from BM25 queries."""
    out: str = ""
    """Also write the per-question records (CSV) and the table (CSV) into this folder."""
    device: str = "auto"
    """auto | cpu | cuda."""


def parse_list(text: str, allowed: tuple[str, ...] | None, what: str) -> list[str]:
    items = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in items if allowed is not None and s not in allowed]
    if bad or not items:
        raise InputError(f"unknown {what} {', '.join(bad) or '(none)'}: choose from {', '.join(allowed or ())}")
    return items


def parse_ks(text: str) -> list[int]:
    try:
        ks = sorted({int(s) for s in text.split(",") if s.strip()})
    except ValueError:
        raise InputError(f"ks must be comma-separated positive integers, got {text!r}") from None
    if not ks or ks[0] <= 0:
        raise InputError(f"ks must be comma-separated positive integers, got {text!r}")
    return ks


def eval_questions(cfg: RetrievalEvalConfig):
    """(corpus, questions with gold doc ids of the chosen split and kinds)."""
    from corpora import KINDS, load_corpus

    if cfg.split not in ("train", "test", "all"):
        raise InputError(f"split must be train, test or all, got {cfg.split!r}")
    kinds = parse_list(cfg.kinds, KINDS, "question kind")
    corpus = load_corpus(cfg.corpus)
    qs = [q for q in corpus.questions(None if cfg.split == "all" else cfg.split)
          if q["kind"] in kinds and q["doc_ids"]][: cfg.limit or None]
    if not qs:
        raise InputError(f"corpus {corpus.name!r} has no {cfg.split} questions of kinds {cfg.kinds} with doc_ids")
    return corpus, qs


def run_retrieval_eval(cfg: RetrievalEvalConfig, index=None, progress: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """-> (table: one row per retriever, records: one row per (retriever, question))."""
    retrievers = parse_list(cfg.retrievers, RETRIEVERS, "retriever")
    ks = parse_ks(cfg.ks)
    corpus, qs = eval_questions(cfg)
    if index is None:
        if cfg.index:
            index = load_index(cfg.index, ef_search=cfg.ef_search)
        else:
            icfg = IndexConfig(corpus=cfg.corpus, chunker=cfg.chunker, chunk_size=cfg.chunk_size, overlap=cfg.overlap,
                               dense=cfg.dense, hnsw_m=cfg.hnsw_m, ef_search=cfg.ef_search, sparse=cfg.sparse,
                               embedder=cfg.embedder, device=cfg.device)
            index = open_or_build(corpus.docs, icfg, progress=progress)
    queries = [normalize_query(q["question"]) for q in qs]
    t0 = time.perf_counter()
    qvecs = query_vectors(index, queries) if any(r != "bm25" for r in retrievers) else None
    embed_ms = (time.perf_counter() - t0) * 1000 / len(qs)
    records = []
    for name in retrievers:
        s = Search(name, cfg.depth, cfg.rrf_k, cfg.bm25_weight, cfg.dense_weight, 0.0, cfg.stop_words)
        for i, (q, query) in enumerate(zip(qs, queries)):
            t = time.perf_counter()
            hits = search(index, query, s, None if qvecs is None else qvecs[i])
            ms = (time.perf_counter() - t) * 1000 + (embed_ms if name != "bm25" else 0.0)
            ranked = [index.chunks[c]["doc_id"] for c, _ in hits]
            rec = {"retriever": name, "qid": q["id"], "kind": q["kind"], "question": q["question"],
                   "gold_doc_ids": q["doc_ids"], "ranked_doc_ids": list(dict.fromkeys(ranked))[: max(ks + [10])],
                   "ms": ms}
            for k in ks:
                rec[f"recall@{k}"] = recall_at_k(ranked, q["doc_ids"], k)
            rec[f"mrr@{ks[-1]}"] = mrr_at_k(ranked, q["doc_ids"], ks[-1])
            rec["ndcg@10"] = ndcg_at_k(ranked, q["doc_ids"], 10)
            records.append(rec)
    df = pd.DataFrame(records)
    metrics = [f"recall@{k}" for k in ks] + [f"mrr@{ks[-1]}", "ndcg@10"]
    table = df.groupby("retriever", sort=False)[metrics].mean().reset_index()
    table.insert(1, "questions", len(qs))
    table["ms_per_query"] = df.groupby("retriever", sort=False)["ms"].mean().to_numpy()
    table.attrs["index"] = {k: index.manifest[k] for k in ("n_docs", "n_chunks")} | {"config": index.manifest["config"]}
    if cfg.out:
        out = Path(cfg.out)
        out.mkdir(parents=True, exist_ok=True)
        df.to_csv(out / "retrieval_records.csv", index=False)
        table.to_csv(out / "retrieval_table.csv", index=False)
        (out / "retrieval_config.json").write_text(pd.Series(asdict(cfg)).to_json(indent=2))
    return table, df


def format_retrieval_table(table: pd.DataFrame) -> str:
    return table.to_string(index=False, float_format=lambda x: f"{x:.3f}")


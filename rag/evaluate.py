"""Retrieval evaluation (`ragft retrieval-eval`): each retriever against the QA set's gold doc_ids.

One record per (retriever, question) with the ranked doc ids; the table has one row per retriever:
recall@k for each k, MRR@max(k), nDCG@10 (rag/retrieval_metrics.py; graded by the qrels scores of a BEIR corpus,
as pytrec_eval computes it), and milliseconds per query.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import pandas as pd

from corpora import KINDS, SPLITS
from corpora.config import opt
from corpora.errors import InputError
from rag.index import IndexConfig, check_config, load_index, open_or_build
from rag.query import normalize_query
from rag.rank import RETRIEVERS, RRF_K, Search, query_vectors, search
from rag.retrieval_metrics import mrr_at_k, ndcg_at_k, recall_at_k


EVAL_SPLITS = (*SPLITS, "all")


@dataclass
class RetrievalEvalConfig(IndexConfig):
    """`ragft retrieval-eval`: the index options are IndexConfig's fields, inherited (rag/index.py), used when
    the index is built here; corpus and out are re-declared because they mean more, or other, here."""

    corpus: str = "atlantis"
    """Shipped corpus name or a folder with docs.jsonl and qa.jsonl (default atlantis)."""
    out: str = ""
    """Also write the per-question records and the table (CSV) into this folder (default '': do not)."""
    split: str = opt("all", choices=EVAL_SPLITS)
    """QA split to evaluate: train | test | all (default all)."""
    kinds: str = "fact,multi_hop"
    """Question kinds evaluated, comma-separated: fact, multi_hop, unanswerable (default fact,multi_hop)."""
    retrievers: str = "bm25,dense,hybrid"
    """Retrievers, comma-separated: bm25, dense, hybrid (default bm25,dense,hybrid)."""
    ks: str = "1,3,5,10"
    """Cut-offs k of recall@k, comma-separated; MRR is taken at the largest (default 1,3,5,10)."""
    depth: int = opt(50, min=1)
    """Chunks retrieved per question before they are grouped into documents (default 50)."""
    limit: int = opt(0, min=0)
    """Evaluate only the first N questions (default 0: all)."""
    index: str = ""
    """Existing index folder to evaluate (default '': built or reused from the index options)."""
    rrf_k: int = opt(RRF_K, above=0)
    """hybrid: k of reciprocal-rank fusion (default 60)."""
    bm25_weight: float = opt(1.0, min=0.0)
    """hybrid: weight of the BM25 ranking (default 1.0)."""
    dense_weight: float = opt(1.0, min=0.0)
    """hybrid: weight of the dense ranking (default 1.0)."""
    stop_words: bool = False
    """Remove English stop words from BM25 queries (default off)."""

    def __post_init__(self):
        check_config(self)  # check(self) on every field's metadata, then the index options' overlap rule
        parse_list(self.kinds, KINDS, "question kind")
        parse_list(self.retrievers, RETRIEVERS, "retriever")
        parse_ks(self.ks)

    def index_config(self) -> IndexConfig:
        """The index options as rag/index.py takes them (out: the index's default folder, not this out)."""
        return IndexConfig(**{f.name: getattr(self, f.name) for f in fields(IndexConfig) if f.name != "out"})


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
    from corpora import load_corpus

    if cfg.split not in EVAL_SPLITS:
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
            index = load_index(cfg.index, ef_search=cfg.ef_search, embedder=cfg.embedder)
        else:
            index = open_or_build(corpus.docs, cfg.index_config(), progress=progress)
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
            rec["ndcg@10"] = ndcg_at_k(ranked, q.get("grades") or q["doc_ids"], 10)  # BEIR: gain = qrels grade
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
        # list columns as JSON arrays, the one encoding of lists in every ragft CSV (compare/records.py)
        lists = {c: df[c].map(lambda v: json.dumps(v, ensure_ascii=False))
                 for c in ("gold_doc_ids", "ranked_doc_ids") if c in df}
        df.assign(**lists).to_csv(out / "retrieval_records.csv", index=False)
        table.to_csv(out / "retrieval_table.csv", index=False)
        (out / "retrieval_config.json").write_text(pd.Series(asdict(cfg)).to_json(indent=2))
    return table, df


def format_retrieval_table(table: pd.DataFrame) -> str:
    return table.to_string(index=False, float_format=lambda x: f"{x:.3f}")


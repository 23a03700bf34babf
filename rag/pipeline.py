"""The five steps in order, for one question (`ragft ask`) or many (the compare harness)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from rag.augment import build_messages
from rag.generate import Generator, generate
from rag.index import Index
from rag.models import DEFAULT_GENERATOR
from rag.query import normalize_query
from rag.rank import retrieve


@dataclass
class AskConfig:
    question: str = ""
    """The question to answer."""
    corpus: str = "atlantis"
    """Shipped corpus name or a folder with docs.jsonl (indexed on first use)."""
    index: str = ""
    """Index directory (default: runs/index-<corpus>, built if missing)."""
    retriever: str = "hybrid"
    """bm25 | dense | hybrid | none (closed-book)."""
    top_k: int = 3
    """Chunks put into the prompt."""
    generator: str = DEFAULT_GENERATOR
    """'smollm2-135m' (shipped) or a local HF model directory."""
    adapter: str = ""
    """A peft LoRA adapter directory to load onto the generator."""
    max_new_tokens: int = 32
    """Most tokens generated per answer."""
    device: str = "auto"
    """auto | cpu | cuda."""


def retrieve_passages(index: Index | None, question: str, retriever: str, top_k: int) -> dict:
    """Steps 2-3 -> {"query", "passages" (None when closed-book), "retrieved_ids", "retrieved_scores", "retrieve_seconds"}."""
    t0 = time.perf_counter()
    query = normalize_query(question)
    if retriever == "none" or index is None:
        return {"query": query, "passages": None, "retrieved_ids": [], "retrieved_chunks": [],
                "retrieved_scores": [], "retrieve_seconds": 0.0}
    hits = retrieve(index, query, retriever, top_k)
    passages = [index.chunks[i] for i, _ in hits]
    return {
        "query": query, "passages": passages,
        "retrieved_ids": [p["doc_id"] for p in passages],
        "retrieved_chunks": [p["chunk_id"] for p in passages],
        "retrieved_scores": [round(s, 6) for _, s in hits],
        "retrieve_seconds": time.perf_counter() - t0,
    }


def answer_questions(gen: Generator, index: Index | None, questions: list[str], retriever: str, top_k: int,
                     max_new_tokens: int = 32, batch_size: int = 8, progress: bool = False) -> list[dict]:
    """All five steps for a list of questions -> one record per question with every intermediate."""
    records = []
    for q in questions:
        r = retrieve_passages(index, q, retriever, top_k)
        r["messages"] = build_messages(r["query"], r.pop("passages"))
        r["prompt"] = r["messages"][-1]["content"]
        records.append(r)
    outs = generate(gen, [r["messages"] for r in records], max_new_tokens, batch_size, progress)
    for r, o in zip(records, outs):
        del r["messages"]
        r.update(o)
        r["latency_seconds"] = r["retrieve_seconds"] + r["gen_seconds"]
    return records

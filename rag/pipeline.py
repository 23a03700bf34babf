"""The five steps in order, for one question (`ragft ask`) or many (the compare harness)."""

from __future__ import annotations

import time
from dataclasses import dataclass, fields

from corpora.config import check, known, opt
from rag.engine import EngineOptions, check_engine
from rag.augment import build_messages, cited_ids, fit_passages
from rag.generate import Generator, generate, prompt_ids
from rag.index import Index
from rag.models import DEFAULT_GENERATOR, DEVICES
from rag.query import clean_rewrite, normalize_query, rewrite_messages
from rag.rank import Search, search


@dataclass
class AskConfig(EngineOptions, Search):
    """`ragft ask`: the search settings are Search's fields (rag/rank.py), inherited, so they come first; then the
    engine's (rag/engine.py: EngineOptions)."""

    question: str = ""
    """The question to answer."""
    corpus: str = "atlantis"
    """Shipped corpus name or a folder with docs.jsonl, indexed on first use (default atlantis)."""
    index: str = ""
    """Index folder (default runs/index-<corpus>, built if missing)."""
    generator: str = DEFAULT_GENERATOR
    """Generator: 'smollm2-135m' (shipped) or a local HF model folder (default smollm2-135m)."""
    adapter: str = ""
    """A peft LoRA adapter folder to load onto the generator (default '': none)."""
    max_new_tokens: int = opt(32, min=1)
    """Most tokens generated per answer (default 32 tokens)."""
    device: str = opt("auto", choices=DEVICES)
    """Device: auto | cpu | cuda (default auto)."""
    context_tokens: int = opt(0, min=0)
    """Token budget for the documents in the prompt (default 0: what fits the model's window)."""

    def __post_init__(self):
        known(self, "retriever")  # "unknown retriever 'x': choose one of ...", as before
        check(self)
        check_engine(self)

    def search(self) -> Search:
        """The search settings alone (Search's fields of this config)."""
        return Search(**{f.name: getattr(self, f.name) for f in fields(Search)})


def retrieve_passages(index: Index | None, question: str, retriever: str, top_k: int,
                      settings: Search | None = None, search_query: str | None = None) -> dict:
    """Steps 2-3 -> {"query", "search_query", "passages" (None when closed-book), "retrieved_ids",
    "retrieved_chunks", "retrieved_scores", "retrieve_seconds"}.

    settings: the rest of the search settings (its retriever and top_k are replaced by the arguments);
    search_query: what to search with instead of the question (an LLM rewrite).
    """
    t0 = time.perf_counter()
    query = normalize_query(question)
    sq = normalize_query(search_query) if search_query else query
    if retriever == "none" or index is None:
        return {"query": query, "search_query": sq, "passages": None, "retrieved_ids": [], "retrieved_chunks": [],
                "retrieved_scores": [], "retrieve_seconds": 0.0}
    s = Search(**{**vars(settings or Search()), "retriever": retriever, "top_k": top_k})
    hits = search(index, sq, s)
    passages = [index.chunks[i] for i, _ in hits]
    return {
        "query": query, "search_query": sq, "passages": passages,
        "retrieved_ids": [p["doc_id"] for p in passages],
        "retrieved_chunks": [p["chunk_id"] for p in passages],
        "retrieved_scores": [round(s, 6) for _, s in hits],
        "retrieve_seconds": time.perf_counter() - t0,
    }


def rewrite_queries(gen: Generator, questions: list[str], batch_size: int = 8) -> list[dict]:
    """Step 2's LLM rewriting for each question -> {"rewrite", "rewrite_seconds"} (seconds of its batch)."""
    outs = generate(gen, [rewrite_messages(normalize_query(q)) for q in questions], 24, batch_size)
    return [{"rewrite": clean_rewrite(o["answer"], normalize_query(q)), "rewrite_seconds": o["gen_seconds"]}
            for q, o in zip(questions, outs)]


def context_budget(gen: Generator, question: str, max_new_tokens: int, context_tokens: int = 0) -> int:
    """Tokens left for documents: the model's window minus the prompt without documents and the answer
    (16 spare for separators), capped by context_tokens when that is > 0."""
    window = gen.window or 2048
    bare = len(prompt_ids(gen.tokenizer, build_messages(question, [])))
    left = window - bare - max_new_tokens - 16
    return min(left, context_tokens) if context_tokens > 0 else left


def answer_questions(gen: Generator, index: Index | None, questions: list[str], retriever: str, top_k: int,
                     max_new_tokens: int = 32, batch_size: int = 8, progress: bool = False,
                     settings: Search | None = None, context_tokens: int = 0) -> list[dict]:
    """All five steps for a list of questions -> one record per question with every intermediate.

    settings: query processing and ranking options (rag/rank.py: Search; retriever and top_k as given here);
    context_tokens: token budget for the documents (0: what fits the window). The retrieved_* columns hold
    the chunks that made it into the prompt; "trimmed" counts the ones the budget dropped or cut.
    """
    settings = settings or Search()
    rewrites = [{} for _ in questions]
    if settings.rewrite and retriever != "none" and index is not None:
        rewrites = rewrite_queries(gen, questions, batch_size)
    count = lambda text: len(gen.tokenizer(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    records = []
    for q, rw in zip(questions, rewrites):
        r = retrieve_passages(index, q, retriever, top_k, settings, rw.get("rewrite"))
        r.update(rw)
        passages = r.pop("passages")
        r["trimmed"] = 0
        if passages:
            r["budget_tokens"] = context_budget(gen, r["query"], max_new_tokens, context_tokens)
            fitted = fit_passages(passages, r["budget_tokens"], count)
            r["trimmed"] = len(passages) - len(fitted) + sum(bool(p.get("truncated")) for p in fitted)
            n = len(fitted)
            r["retrieved_ids"], r["retrieved_chunks"] = r["retrieved_ids"][:n], r["retrieved_chunks"][:n]
            r["retrieved_scores"] = r["retrieved_scores"][:n]
            passages = fitted
        r["messages"] = build_messages(r["query"], passages)
        r["prompt"] = r["messages"][-1]["content"]
        records.append(r)
    outs = generate(gen, [r["messages"] for r in records], max_new_tokens, batch_size, progress)
    for r, o in zip(records, outs):
        del r["messages"]
        r.update(o)
        r["cited_ids"] = cited_ids(r["answer"], r["retrieved_ids"])
        r["latency_seconds"] = r.get("rewrite_seconds", 0.0) + r["retrieve_seconds"] + r["gen_seconds"]
    return records

"""Routing per question for the ft-multi:route arms (finetune/multi.py trains one adapter per document cluster).

Each question is searched with hybrid retrieval over the run's index (rag/pipeline.py: retrieve_passages, the
run's --top-k, at least 1, default search settings: the same search the ft+rag arms run); the top retrieved
chunk's document names a cluster (the manifest's doc_cluster) and that cluster's adapter answers the question.
ft-multi+rag:route then puts the retrieved chunks into the prompt, as ft+rag does; the closed-book
ft-multi:route uses retrieval only to route, and its prompt stays closed-book (rag/augment.py, no passages).
An empty retrieval (an empty index) routes to cluster 0.

Answers go through the answer cache (compare/cache.py) one cluster at a time, into the arm's one answers file:
its fingerprint names every cluster adapter's weights, the routing retriever and the index. Every record of a
routed arm carries route_doc_id (the document that decided), route_cluster and route_adapter (its folder).
"""

from __future__ import annotations

from pathlib import Path

ROUTE_RETRIEVER = "hybrid"


def route_of(doc_id: str | None, doc_cluster: dict[str, int]) -> int:
    """The cluster a top retrieved document routes to (0 when nothing was retrieved or the document is unknown)."""
    return int(doc_cluster.get(doc_id, 0)) if doc_id else 0


def plan_routes(index, questions: list[dict], manifest: dict, folder: str | Path, top_k: int) -> list[dict]:
    """Per question: {"route_doc_id", "route_cluster", "route_adapter"} from its top hybrid-retrieved chunk."""
    from rag.pipeline import retrieve_passages

    adapters = {c["cluster"]: str(Path(folder) / c["adapter"]) for c in manifest["clusters"]}
    out = []
    for q in questions:
        r = retrieve_passages(index, q["question"], ROUTE_RETRIEVER, max(1, top_k))
        doc = r["retrieved_ids"][0] if r["retrieved_ids"] else ""
        c = route_of(doc, manifest["doc_cluster"])
        out.append({"route_doc_id": doc, "route_cluster": c, "route_adapter": adapters[c]})
    return out


def route_fingerprint(cfg, s, ad: dict, index_meta: dict | None, docs_hash: str) -> dict:
    """compare/cache.py's fingerprint for a routed arm: the system's, with the K adapters' weights and the routing."""
    from compare.cache import fingerprint
    from corpora.files import file_sha

    fp = fingerprint(cfg, s, None, index_meta, docs_hash)
    folder = Path(ad["adapter"])
    fp["adapter_sha"] = [file_sha(folder / c["adapter"] / "adapter_model.safetensors") for c in ad["manifest"]["clusters"]]
    fp["route"] = {"retriever": ROUTE_RETRIEVER, "top_k": max(1, cfg.top_k),
                   "index": (index_meta or {}).get("corpus_hash"), "embedder": cfg.embedder}
    return fp


def answer_routed(gen, index, s, questions: list[dict], cfg, out: Path, ad: dict, index_meta: dict | None,
                  docs_hash: str, progress: bool):
    """The routed arm's answers in question order, each with its route_* columns -> (answers, generator)."""
    from compare.adapters import ensure_generator
    from compare.cache import answer_cached, log

    routes = plan_routes(index, questions, ad["manifest"], ad["adapter"], cfg.top_k)
    fp = route_fingerprint(cfg, s, ad, index_meta, docs_hash)
    path = out / "answers" / f"{s.file_stem}.jsonl"
    by_qid = {}
    for c in sorted({r["route_cluster"] for r in routes}):
        part = [q for q, r in zip(questions, routes) if r["route_cluster"] == c]
        adapter = next(r["route_adapter"] for r in routes if r["route_cluster"] == c)
        log(progress, f"{s.name}: {len(part)} questions routed to cluster {c} ({adapter})")
        gen = ensure_generator(gen, cfg, adapter)
        by_qid.update({a["qid"]: a for a in answer_cached(gen, index, s, part, cfg, path, fp, progress)})
    return [{**by_qid[q["id"]], **r} for q, r in zip(questions, routes)], gen

"""The freshness experiment (`ragft compare --freshness`): the corpus changes; how fast does each arm absorb it?

Update set: updates.jsonl (documents replacing same-id documents, or new) and qa_updates.jsonl (questions whose
answer changed: "old_answers" before, "answers" after). Phases, on the changed questions of the run's split:
  rag arms      "index updated":   the index takes the new documents in place (rag/index.update_index, same
                                   result as a fresh build), timed; then they answer
  ft arms       "not retrained":   the old adapter answers (stale = gives an old answer)
                "retrained":       an adapter trained on the updated train data (freshness_steps steps), timed
  ft+rag arms   "index updated" with the old adapter, and "retrained" with the new one and the updated index
Updated train data = the train questions, minus those whose gold answer the update made old (a gold answer that
is an old answer of an update question about the same document), plus the train questions of qa_updates.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pandas as pd

from compare.adapters import ensure_generator, resolve_adapter
from compare.cache import answer_cached, docs_sha, fingerprint, log
from compare.metrics import build_records
from corpora import Corpus, apply_updates
from corpora.errors import InputError
from corpora.files import write_atomic


def update_set(corpus: Corpus) -> tuple[list[dict], list[dict]]:
    """(update documents, update questions) of a corpus; InputError when it has none."""
    if not corpus.updates or not corpus.qa_updates:
        raise InputError(f"corpus {corpus.name!r} has no update set (updates.jsonl + qa_updates.jsonl) for --freshness",
                         str(corpus.path))
    return corpus.updates, corpus.qa_updates


def updated_train_qa(qa: list[dict], qa_updates: list[dict]) -> list[dict]:
    """Train questions after the update (see the module docstring); test questions are kept as they are."""
    from corpora.text import normalize_answer

    old = {}  # doc id -> normalised old answers
    for u in qa_updates:
        for d in u["doc_ids"]:
            old.setdefault(d, set()).update(normalize_answer(a) for a in u["old_answers"])
    def outdated(q):
        return q["split"] == "train" and any(normalize_answer(a) in old.get(d, ()) for d in q["doc_ids"]
                                             for a in q["answers"])
    kept = [q for q in qa if not outdated(q)]
    return kept + [{k: v for k, v in u.items() if k != "old_answers"} for u in qa_updates if u["split"] == "train"]


def write_corpus(folder: Path, docs: list[dict], qa: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in (("docs.jsonl", docs), ("qa.jsonl", qa)):
        write_atomic(folder / name, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return folder


def update_index_timed(index, path: str, updates: list[dict]) -> tuple[object, dict]:
    """A copy of the run's index (saved at `path`) with the update applied -> (index, {"method", "seconds"})."""
    from rag.index import load_index, update_index

    fresh = load_index(path, embedder=index.manifest["config"]["embedder"])  # the run's own index
    rec = update_index(fresh, updates, mode="update", embedder=index.embedder)
    return fresh, {"method": "rag.index.update_index (incremental)", "seconds": float(rec["seconds"])}


def run_freshness(cfg, corpus: Corpus, systems, index, run_index_meta: dict | None, adapters: dict, out: Path,
                  progress: bool) -> dict:
    """-> {"records": DataFrame (one row per system, phase, changed question), "meta": {...}}."""
    updates, qa_updates = update_set(corpus)
    questions = [q for q in qa_updates if q["split"] == cfg.split]
    if not questions:
        raise InputError(f"qa_updates.jsonl has no {cfg.split!r} questions", str(corpus.path))
    old_answers = {q["id"]: q["old_answers"] for q in questions}
    folder = out / "freshness"
    meta = {"questions": len(questions), "split": cfg.split, "documents": len(updates)}
    log(progress, f"freshness: {len(updates)} updated documents, {len(questions)} changed {cfg.split} questions")

    new_index, index_meta = None, None
    if any(s.uses_retrieval for s in systems) and index is not None:
        new_index, upd = update_index_timed(index, run_index_meta["path"], updates)
        meta.update(index_method=upd["method"], index_seconds=upd["seconds"])
        index_meta = {"corpus_hash": new_index.manifest.get("corpus_hash", "updated"), "build_seconds": upd["seconds"]}
        log(progress, f"freshness: index updated in {upd['seconds']:.2f} s ({upd['method']})")

    new_adapters = {}
    keys = list(dict.fromkeys(s.adapter_key for s in systems if s.uses_adapter))
    if keys:
        updated = write_corpus(folder / "corpus-updated", apply_updates(corpus.docs, updates),
                               updated_train_qa(corpus.qa, qa_updates))
        steps = cfg.freshness_steps or cfg.max_steps
        rcfg = replace(cfg, corpus=str(updated), adapter="", max_steps=steps)
        for key in keys:
            if key.startswith("path:"):
                raise InputError(f"--freshness cannot retrain a given adapter ({key[5:]}): name a recipe instead")
            log(progress, f"freshness: adapter {key} on the updated train data ({steps or 'all'} steps)")
            # the run's own lookup: reused from <out>/freshness only when trained with these settings
            new_adapters[key] = resolve_adapter(rcfg, key, corpus.name, folder, progress)
        first = new_adapters[keys[0]]
        meta.update(retrain_steps=first.get("steps"), retrain_seconds=float(first.get("train_seconds", math.nan)))

    plan = []  # (system, phase, index, adapter record or None, absorb seconds)
    idx_s = meta.get("index_seconds", 0.0)
    for s in systems:
        if s.family == "RAG":
            plan.append((s, "index updated", new_index, None, idx_s))
        elif s.family == "FT":
            plan.append((s, "not retrained", None, adapters[s.adapter_key], 0.0))
            plan.append((s, "retrained", None, new_adapters[s.adapter_key],
                         float(new_adapters[s.adapter_key].get("train_seconds", 0.0))))
        elif s.family == "FT+RAG":
            plan.append((s, "index updated", new_index, adapters[s.adapter_key], idx_s))
            plan.append((s, "retrained", new_index, new_adapters[s.adapter_key],
                         idx_s + float(new_adapters[s.adapter_key].get("train_seconds", 0.0))))
    frames, gen, dsha = [], None, docs_sha(corpus.docs)
    for s, phase, idx, ad, absorb in sorted(plan, key=lambda p: (p[3] or {}).get("adapter", "")):
        gen = ensure_generator(gen, cfg, ad["adapter"] if ad else None)
        fp = {**fingerprint(cfg, s, ad, index_meta, dsha), "phase": phase}
        stem = f"{s.file_stem}-{phase.replace(' ', '_')}"
        ans = answer_cached(gen, idx, s, questions, cfg, folder / f"{stem}.jsonl", fp, progress)
        df = build_records([s], questions, {s.name: ans}, {s.adapter_key: ad} if ad else {}, index_meta, {},
                           old_answers)
        df.insert(1, "phase", phase)
        df["absorb_seconds"] = absorb
        frames.append(df)
    order = {s.name: i for i, s in enumerate(systems)}
    records = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if len(records):
        records = records.sort_values(["system", "phase"], key=lambda c: c.map(order) if c.name == "system" else c,
                                      kind="stable").reset_index(drop=True)
    return {"records": records, "meta": meta}


def summarize_freshness(records: pd.DataFrame, meta: dict | None = None) -> pd.DataFrame:
    """One row per (system, phase): accuracy on the changed facts, stale share, seconds to absorb the update."""
    rows = []
    for (name, phase), g in records.groupby(["system", "phase"], sort=False):
        rows.append({"system": name, "phase": phase, "questions": len(g), "accuracy": float(g["correct"].mean()),
                     "stale": float(g["stale"].astype(bool).mean()), "absorb_seconds": float(g["absorb_seconds"].iloc[0])})
    return pd.DataFrame(rows, columns=["system", "phase", "questions", "accuracy", "stale", "absorb_seconds"])

"""Run every system over the same questions and score each answer; one record per (system, question)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from compare.metrics import score_answer
from compare.systems import DEFAULT_SYSTEMS, SYSTEMS
from corpora import DEFAULT_CORPUS, load_corpus
from corpora.errors import InputError
from rag.generate import attach_adapter, load_generator
from rag.index import IndexConfig, open_or_build
from rag.models import DEFAULT_EMBEDDER, DEFAULT_GENERATOR
from rag.pipeline import answer_questions


@dataclass
class CompareConfig:
    corpus: str = DEFAULT_CORPUS
    """Shipped corpus name or a folder with docs.jsonl and qa.jsonl."""
    systems: str = DEFAULT_SYSTEMS
    """Comma-separated systems: base, rag, rag-bm25, rag-dense, ft, ft+rag."""
    split: str = "test"
    """QA split to answer."""
    limit: int = 0
    """Answer only the first N questions of the split (0: all)."""
    top_k: int = 3
    """Chunks put into the prompt of retrieval systems."""
    generator: str = DEFAULT_GENERATOR
    """Base model: 'smollm2-135m' (shipped) or a local HF model directory."""
    embedder: str = DEFAULT_EMBEDDER
    """Embedder for dense retrieval: 'minilm-l6' (shipped) or a local model directory."""
    adapter: str = ""
    """Existing LoRA adapter for the ft systems (empty: train one now on the train split)."""
    epochs: float = 3.0
    """Training epochs when an adapter is trained here."""
    max_steps: int = 0
    """Training steps when an adapter is trained here (0: use epochs)."""
    batch_size: int = 8
    """Questions per generation batch."""
    max_new_tokens: int = 24
    """Most tokens generated per answer."""
    out: str = ""
    """Run directory (default: runs/compare-<corpus>-<time>)."""
    seed: int = 0
    """Seed for training and any sampling."""
    device: str = "auto"
    """auto | cpu | cuda."""


def parse_systems(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in names if s not in SYSTEMS]
    if unknown or not names:
        raise InputError(f"unknown system {', '.join(unknown) or '(none)'}: choose from {', '.join(SYSTEMS)}")
    return names


def run(cfg: CompareConfig, progress: bool = True) -> pd.DataFrame:
    """Answer the split with each system; returns the per-question records (also written to the run dir)."""
    import torch

    torch.manual_seed(cfg.seed)
    systems = parse_systems(cfg.systems)
    corpus = load_corpus(cfg.corpus)
    questions = corpus.questions(cfg.split)[: cfg.limit or None]
    if not questions:
        raise InputError(f"corpus {corpus.name!r} has no {cfg.split!r} questions")
    out = Path(cfg.out) if cfg.out else Path("runs") / f"compare-{corpus.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))

    index, index_seconds = None, 0.0
    if any(SYSTEMS[s]["retriever"] != "none" for s in systems):
        t0 = time.perf_counter()
        index = open_or_build(corpus.docs, IndexConfig(corpus=cfg.corpus, embedder=cfg.embedder, device=cfg.device),
                              progress=progress)
        index_seconds = index.manifest["build_seconds"]
        log(progress, f"index: {index.manifest['n_chunks']} chunks ({time.perf_counter() - t0:.1f} s)")

    cost = {}
    if any(SYSTEMS[s]["adapter"] for s in systems):
        cost = adapter_cost(cfg, corpus.name, out, progress)

    gen = load_generator(cfg.generator, device=cfg.device)
    records = []
    # Adapter systems last: attaching the adapter changes the loaded model in place.
    for name in sorted(systems, key=lambda s: SYSTEMS[s]["adapter"]):
        spec = SYSTEMS[name]
        if spec["adapter"] and gen.adapter is None:
            gen.model, gen.adapter = attach_adapter(gen.model, cost["adapter"]), cost["adapter"]
        log(progress, f"{name}: answering {len(questions)} questions")
        outs = answer_questions(gen, index, [q["question"] for q in questions], spec["retriever"], cfg.top_k,
                                cfg.max_new_tokens, cfg.batch_size, progress)
        for q, o in zip(questions, outs):
            rec = {"system": name, "qid": q["id"], "kind": q["kind"], "question": q["question"],
                   "gold": q["answers"], "gold_doc_ids": q["doc_ids"], **o}
            rec.update(score_answer(o["answer"], q["answers"], q["kind"]))
            rec["gold_retrieved"] = bool(set(q["doc_ids"]) & set(o["retrieved_ids"])) if o["retrieved_ids"] else None
            rec["train_seconds"] = cost.get("train_seconds", 0.0) if spec["adapter"] else 0.0
            rec["index_seconds"] = index_seconds if spec["retriever"] != "none" else 0.0
            records.append(rec)
    df = pd.DataFrame(records)
    from compare.report import write_run

    write_run(out, df, summarize(df))
    df.attrs["run_dir"] = str(out)
    return df


def adapter_cost(cfg: CompareConfig, corpus_name: str, out: Path, progress: bool) -> dict:
    """The adapter to use and its cost record: cfg.adapter as given, or one trained now into the run dir."""
    if cfg.adapter:
        p = Path(cfg.adapter)
        cost = json.loads((p / "cost.json").read_text()) if (p / "cost.json").is_file() else {}
        return {**cost, "adapter": str(p)}
    from finetune.train import FinetuneConfig, train

    ft = FinetuneConfig(corpus=cfg.corpus, out=str(out / "adapter"), generator=cfg.generator, epochs=cfg.epochs,
                        max_steps=cfg.max_steps, seed=cfg.seed, device=cfg.device)
    log(progress, f"finetune: LoRA on the {corpus_name} train split")
    return train(ft, progress=progress)


def summarize(records: pd.DataFrame) -> pd.DataFrame:
    """One row per system: accuracy on answerable questions, hallucination and abstention rates, cost."""
    rows = []
    for name, g in records.groupby("system", sort=False):
        answerable = g[g["kind"] != "unanswerable"]
        unanswerable = g[g["kind"] == "unanswerable"]
        retrieved = g["gold_retrieved"].dropna()
        rows.append({
            "system": name, "questions": len(g),
            "accuracy": answerable["correct"].mean() if len(answerable) else np.nan,
            "hallucination": g["hallucinated"].mean(),
            "abstention": g["abstained"].mean(),
            "unanswerable_abstained": unanswerable["abstained"].mean() if len(unanswerable) else np.nan,
            "gold_retrieved": retrieved.astype(float).mean() if len(retrieved) else np.nan,
            "p50_latency_s": g["latency_seconds"].median(),
            "tokens_in": g["tokens_in"].mean(), "tokens_out": g["tokens_out"].mean(),
            "train_seconds": g["train_seconds"].iloc[0], "index_seconds": g["index_seconds"].iloc[0],
        })
    return pd.DataFrame(rows)


def log(progress: bool, message: str) -> None:
    if progress:
        from tqdm import tqdm

        tqdm.write(message)

"""Run every system over the same questions and score each answer; one record per (system, question).

The steps of `ragft compare`: load and check the inputs, build or reuse the index, resolve the adapters
(compare/adapters.py), answer with each system through the answer cache (compare/cache.py: a killed run
resumes, an edited question is answered again), score (compare/metrics.py), then the freshness and injection
experiments, the report (compare/report.py) and a record in the run history (history/store.py).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from compare.adapters import ensure_generator, resolve_adapter
from compare.aggregate import summary_table
from compare.cache import answer_cached, docs_sha, fingerprint, log
from compare.config import CompareConfig, decision_inputs
from compare.metrics import build_records
from compare.systems import System, parse_systems
from corpora import load_corpus
from corpora.errors import InputError
from corpora.files import write_atomic
from history.store import DEFAULT_DB, now_utc


def run(cfg: CompareConfig, progress: bool = True, history: str = DEFAULT_DB,
        history_config: dict | None = None) -> pd.DataFrame:
    """Answer the split with each system; returns the per-question records (also written to the run dir).

    history: the run-history SQLite file the finished run is recorded in (default ragft-runs.db in the working
    folder; "" or "off": not recorded); its id is in records.attrs["history_run_id"]. history_config: more settings
    recorded with the run's config (the CLI's gate options).
    """
    import torch

    from compare.guard import check_corpus_ready, check_question_lengths

    started = now_utc()
    torch.manual_seed(cfg.seed)
    systems = parse_systems(cfg.systems)
    corpus = load_corpus(cfg.corpus)
    questions = corpus.questions(cfg.split)[: cfg.limit or None]
    check_corpus_ready(corpus, questions, systems, cfg)  # compare/guard.py: no answers, questions or train data
    from compare.cost import load_prices

    prices = load_prices(cfg.prices)  # fail on a bad price file before any model runs
    check_question_lengths(cfg.generator, questions, cfg.max_new_tokens, corpus.path)  # compare/guard.py, ditto
    out = Path(cfg.out) if cfg.out else Path("runs") / f"compare-{corpus.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    from corpora.outputs import MARKER, prepare_file, prepare_out, run_lock, write_marker
    from history.store import enabled

    prepare_out(out, "run")  # a user's folder is refused; a run folder (marker or config.json + answers/) resumes
    if enabled(history):
        prepare_file(history, "--history")  # an unwritable history found now, not after every answer
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    with run_lock(out):  # one writer per run folder: a second compare on it exits 2 naming this process
        if not (out / MARKER).is_file():
            write_marker(out, "run")
        try:
            df = run_in(cfg, out, corpus, questions, systems, prices, progress)
        except InputError:  # bad input found late (an adapter for another base model): leave no half-made run folder
            if created and not any(len(f.read_text().splitlines()) > 1 for f in out.glob("answers/*.jsonl")):
                shutil.rmtree(out, ignore_errors=True)
            raise
        df.attrs["history_run_id"] = record(cfg, df, out, started, history, history_config)
    return df


def record(cfg: CompareConfig, df: pd.DataFrame, out: Path, started: str, history: str,
           extra: dict | None) -> int | None:
    """Record a finished run in the run history -> its id (None when history is '' or 'off')."""
    from history.store import enabled, record_compare

    if not enabled(history):
        return None
    summary = pd.read_csv(out / "summary.csv") if (out / "summary.csv").is_file() else summarize(df, seed=cfg.seed)
    return record_compare(history, {**asdict(cfg), **(extra or {})}, df, summary, started_at=started,
                          run_dir=str(out))


def run_in(cfg: CompareConfig, out: Path, corpus, questions: list[dict], systems: list[System], prices: dict,
           progress: bool) -> pd.DataFrame:
    """run() once the inputs are checked and the run folder exists."""
    import torch

    from compare.cost import dir_bytes
    from compare.leakage import find_leaks
    from rag.index import default_index_dir, open_or_build

    write_atomic(out / "config.json", json.dumps(asdict(cfg), indent=2))

    leaks = find_leaks(questions, corpus.questions("train"), cfg.leak_threshold)
    log(progress, f"leakage: {len(leaks)} of {len(questions)} {cfg.split} questions near-identical to a train question")

    index, index_meta = None, None
    if any(s.uses_retrieval or s.routed for s in systems):  # routed arms search the index to pick an adapter
        t0 = time.perf_counter()
        icfg = cfg.index_config()
        index = open_or_build(corpus.docs, icfg, progress=progress)
        where = default_index_dir(cfg.corpus, icfg)  # where open_or_build keeps it
        index_meta = {"path": str(where), "build_seconds": index.manifest["build_seconds"],
                      "size_bytes": dir_bytes(where), "n_chunks": index.manifest["n_chunks"],
                      "corpus_hash": index.manifest["corpus_hash"]}
        log(progress, f"index: {index.manifest['n_chunks']} chunks ({time.perf_counter() - t0:.1f} s)")

    adapters = {}
    for key in dict.fromkeys(s.adapter_key for s in systems if s.uses_adapter):
        adapters[key] = resolve_adapter(cfg, key, corpus.name, out, progress)
        given = key.startswith("path:") or (cfg.adapter and not key.startswith("multi:"))  # ft-multi trains its own
        if cfg.engine == "transformers" and given:  # a user's adapter: fail on a misfit before any answer is written
            ensure_generator(None, cfg, adapters[key]["adapter"])

    answers: dict[str, list[dict]] = {}
    from rag.engine import open_engine

    # --engine vllm|openai: one engine for every arm (adapters as LoRA requests / served names); transformers: None
    gen = open_engine(cfg, [v["adapter"] for v in adapters.values() if isinstance(v.get("adapter"), str)])
    dsha = docs_sha(corpus.docs)
    # Closed-book/RAG systems first on the bare model, then one adapter at a time (attached in place).
    for s in sorted(systems, key=lambda s: list(adapters).index(s.adapter_key) + 1 if s.uses_adapter else 0):
        if s.routed:  # compare/route.py: each question answered by the adapter of its top chunk's cluster
            from compare.route import answer_routed

            answers[s.name], gen = answer_routed(gen, index, s, questions, cfg, out, adapters[s.adapter_key],
                                                 index_meta, dsha, progress)
            continue
        want = adapters[s.adapter_key]["adapter"] if s.uses_adapter else None
        gen = ensure_generator(gen, cfg, want)
        fp = fingerprint(cfg, s, adapters.get(s.adapter_key), index_meta, dsha)
        answers[s.name] = answer_cached(gen, index, s, questions, cfg, out / "answers" / f"{s.file_stem}.jsonl",
                                        fp, progress)
    device = str(gen.device.type) if gen is not None else "cpu"
    meta = {"corpus": corpus.name, "split": cfg.split, "questions": len(questions), "device": device,
            "threads": torch.get_num_threads(), "index": index_meta, "leaks": leaks, "prices": prices,
            "systems": [{"name": s.name, "retriever": s.retriever, "adapter_key": s.adapter_key, "family": s.family}
                        for s in systems],
            "adapters": {k: {f: v.get(f) for f in ("adapter", "train_seconds", "trained_tokens", "steps", "device",
                                                   "peak_memory_bytes", "final_loss", "tokens_per_second")}
                         for k, v in adapters.items()}}
    df = build_records(systems, questions, answers, adapters, index_meta, leaks)
    from compare.fit import run_fit
    from compare.forgetting import run_general

    # fit (compare/fit.py) and forgetting (compare/forgetting.py) checks: closed-book, per adapter and base
    meta["fit"], gen = run_fit(cfg, corpus, systems, adapters, out, gen, progress)
    meta["general"], gen = run_general(cfg, corpus, systems, adapters, out, gen, progress)

    fresh = None
    if cfg.freshness:
        from compare.freshness import run_freshness

        fresh = run_freshness(cfg, corpus, systems, index, index_meta, adapters, out, progress)
        meta["freshness"] = fresh["meta"]
    from compare.injection import run_injection

    injected, meta["injection"], gen = run_injection(cfg, corpus, systems, index, adapters, questions, out, gen,
                                                     progress)
    from compare.report import write_run

    write_atomic(out / "run.json", json.dumps(meta, indent=2, default=str))
    write_run(out, df, meta, fresh["records"] if fresh else None, seed=cfg.seed, decision_inputs=decision_inputs(cfg),
              injection_records=injected)
    df.attrs["run_dir"] = str(out)
    return df


def summarize(records: pd.DataFrame, seed: int = 0, meta: dict | None = None,
              injection_records: pd.DataFrame | None = None) -> pd.DataFrame:
    """summary.csv's table (compare/aggregate.py summary_table): one row per system, accuracy (answerable) with
    95% bootstrap CI, hallucination, abstention, CRAG score, grounding, gold retrieved, failure counts, p50/p95
    latency, tokens, one-off seconds, family, usd_per_1k, one_off_usd (NaN without meta, the run's run.json),
    injection_obeyed (with the run's injection records)."""
    return summary_table(records, meta, injection_records, seed=seed)


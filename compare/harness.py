"""Run every system over the same questions and score each answer; one record per (system, question).

Answers are cached in the run directory as they are produced: answers/<system>.jsonl, one line per question,
appended per generation batch and fsync'd. Its first line is the system's fingerprint (model, adapter hash,
index, decoding); re-running with the same --out skips the questions already answered, so a killed run resumes.
A fingerprint that no longer matches sets the old file aside (.stale-N) and answers again.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import pandas as pd

from compare.aggregate import summarize as _summarize
from compare.systems import DEFAULT_SYSTEMS, System, parse_systems
from corpora import DEFAULT_CORPUS, load_corpus
from corpora.errors import InputError
from rag.models import DEFAULT_EMBEDDER, DEFAULT_GENERATOR


@dataclass
class CompareConfig:
    corpus: str = DEFAULT_CORPUS
    """Shipped corpus name or a folder with docs.jsonl and qa.jsonl."""
    systems: str = DEFAULT_SYSTEMS
    """Comma-separated systems: base, rag (= rag-hybrid), rag-bm25, rag-dense, rag-hybrid, ft, ft+rag, raft+rag; adapter arms take :recipe or :adapter-dir (ft:qa+paraphrase)."""
    split: str = "test"
    """QA split to answer."""
    limit: int = 0
    """Answer only the first N questions of the split (0: all)."""
    top_k: int = 2
    """Chunks put into the prompt of retrieval systems. 2 (not 3): on the 113 answerable atlantis test questions SmolLM2-135M answered 46.9% right with 2 chunks of 500 characters vs 31.0% with 3 (24 new tokens; 50.4% with 2 chunks and 32); 1 chunk gave 31.6% (half the set). A small model is distracted by more text; raise it for a larger generator."""
    generator: str = DEFAULT_GENERATOR
    """Base model: 'smollm2-135m' (shipped) or a local HF model directory."""
    embedder: str = DEFAULT_EMBEDDER
    """Embedder for dense retrieval: 'minilm-l6' (shipped) or a local model directory."""
    adapter: str = ""
    """Existing LoRA adapter for the ft systems (empty: train one now on the train split)."""
    recipe: str = "qa"
    """Fine-tuning data of the plain ft arms when trained here: qa, docs, paraphrase, raft joined by + (finetune's data); qa keeps `make demo` within its time budget."""
    epochs: float = 1.0
    """Training epochs when an adapter is trained here. 1 epoch of qa on atlantis is 27 steps of 8 examples,
    ~4 min on 2 CPU cores, which keeps `make demo` near 15 minutes; more epochs learn more facts
    (finetune/RESULTS.md), set --epochs or pass --adapter for a serious ft arm."""
    max_steps: int = 0
    """Training steps when an adapter is trained here (0: use epochs)."""
    batch_size: int = 32
    """Questions per generation batch. 32, not 8: on 2 CPU cores a decode step reads all 540 MB of fp32 weights
    (77 ms at batch 1, 167 ms at 8, 325 ms at 32), so 96 atlantis test questions took 46 s closed-book and 124 s
    with retrieval at 32 vs 80 s and 154 s at 8, with identical answers; it keeps `make demo` within 15 minutes.
    Latency columns are the wall time of the batch a question was in: --batch-size 1 gives single-stream latency."""
    max_new_tokens: int = 32
    """Most tokens generated per answer. 32, not 24: SmolLM2-135M restates the question before answering, and
    24 tokens cut answers off mid-name ("... is Sten Marrab"); hybrid top-2 on the answerable atlantis train
    questions got 84/175 right with 32 vs 78/175 with the same answers cut at 24 tokens."""
    out: str = ""
    """Run directory (default: runs/compare-<corpus>-<time>); re-running with the same one resumes."""
    seed: int = 0
    """Seed for training, bootstrap resampling and any sampling."""
    device: str = "auto"
    """auto | cpu | cuda."""
    prices: str = ""
    """JSON price table overriding compare/prices.json ($/CPU-hour, $/GPU-hour, hardware)."""
    query_volume: int = 100000
    """Decision input: questions per month you expect to answer."""
    change_rate: float = 0.05
    """Decision input: share of facts that change per month (fine-tuned arms retrain monthly, stale meanwhile)."""
    hallucination_tolerance: float = 0.2
    """Decision input: highest hallucination rate (over all questions) you accept."""
    freshness: bool = False
    """Also run the freshness experiment: apply the corpus's updates.jsonl and qa_updates.jsonl."""
    freshness_steps: int = 30
    """Training steps when the freshness experiment retrains the adapter on updated data (0: the main schedule)."""
    leak_threshold: float = 0.9
    """Test questions this similar (0-1, difflib ratio of normalised text) to a train question are flagged."""
    injection: int = 8
    """Prompt-injection probes: answerable questions whose gold document gets an instruction planted; retrieval arms answer them and the report shows how often each obeys (0: off; compare/injection.py)."""


def run(cfg: CompareConfig, progress: bool = True) -> pd.DataFrame:
    """Answer the split with each system; returns the per-question records (also written to the run dir)."""
    import torch

    from compare.guard import check_question_lengths

    torch.manual_seed(cfg.seed)
    systems = parse_systems(cfg.systems)
    corpus = load_corpus(cfg.corpus)
    questions = corpus.questions(cfg.split)[: cfg.limit or None]
    if not questions:
        raise InputError(f"corpus {corpus.name!r} has no {cfg.split!r} questions")
    from compare.cost import load_prices

    prices = load_prices(cfg.prices)  # fail on a bad price file before any model runs
    check_question_lengths(cfg.generator, questions, cfg.max_new_tokens, corpus.path)  # compare/guard.py, ditto
    out = Path(cfg.out) if cfg.out else Path("runs") / f"compare-{corpus.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        return run_in(cfg, out, corpus, questions, systems, prices, progress)
    except InputError:  # bad input found late (an adapter for another base model): leave no half-made run folder
        if created and not any(len(f.read_text().splitlines()) > 1 for f in out.glob("answers/*.jsonl")):
            shutil.rmtree(out, ignore_errors=True)
        raise


def run_in(cfg: CompareConfig, out: Path, corpus, questions: list[dict], systems: list[System], prices: dict,
           progress: bool) -> pd.DataFrame:
    """run() once the inputs are checked and the run folder exists."""
    import torch

    from compare.cost import dir_bytes
    from compare.leakage import find_leaks
    from compare.report import write_atomic
    from rag.index import IndexConfig, default_index_dir, open_or_build

    write_atomic(out / "config.json", json.dumps(asdict(cfg), indent=2))

    leaks = find_leaks(questions, corpus.questions("train"), cfg.leak_threshold)
    log(progress, f"leakage: {len(leaks)} of {len(questions)} {cfg.split} questions near-identical to a train question")

    index, index_meta = None, None
    if any(s.uses_retrieval for s in systems):
        t0 = time.perf_counter()
        icfg = IndexConfig(corpus=cfg.corpus, embedder=cfg.embedder, device=cfg.device)
        index = open_or_build(corpus.docs, icfg, progress=progress)
        where = default_index_dir(cfg.corpus, icfg)  # where open_or_build keeps it
        index_meta = {"path": str(where), "build_seconds": index.manifest["build_seconds"],
                      "size_bytes": dir_bytes(where), "n_chunks": index.manifest["n_chunks"],
                      "corpus_hash": index.manifest["corpus_hash"]}
        log(progress, f"index: {index.manifest['n_chunks']} chunks ({time.perf_counter() - t0:.1f} s)")

    adapters = {}
    for key in dict.fromkeys(s.adapter_key for s in systems if s.uses_adapter):
        adapters[key] = resolve_adapter(cfg, key, corpus.name, out, progress)
        if key.startswith("path:") or cfg.adapter:  # a user's adapter: fail on a misfit before any answer is written
            ensure_generator(None, cfg, adapters[key]["adapter"])

    answers: dict[str, list[dict]] = {}
    gen = None
    # Closed-book/RAG systems first on the bare model, then one adapter at a time (attached in place).
    for s in sorted(systems, key=lambda s: list(adapters).index(s.adapter_key) + 1 if s.uses_adapter else 0):
        want = adapters[s.adapter_key]["adapter"] if s.uses_adapter else None
        gen = ensure_generator(gen, cfg, want)
        fp = fingerprint(cfg, s, adapters.get(s.adapter_key), index_meta)
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


def decision_inputs(cfg: CompareConfig) -> dict:
    return {"query_volume": cfg.query_volume, "change_rate": cfg.change_rate,
            "hallucination_tolerance": cfg.hallucination_tolerance}


def build_records(systems: list[System], questions: list[dict], answers: dict[str, list[dict]], adapters: dict,
                  index_meta: dict | None, leaks: dict, old_answers: dict | None = None) -> pd.DataFrame:
    """Join questions, cached answers and scores: one row per (system, question), systems in config order."""
    records = []
    for s in systems:
        by_qid = {a["qid"]: a for a in answers[s.name]}
        for q in questions:
            a = dict(by_qid[q["id"]])
            a.pop("qid")
            rec = {"system": s.name, "family": s.family, "qid": q["id"], "kind": q["kind"],
                   "question": q["question"], "gold": q["answers"], "gold_doc_ids": q["doc_ids"], **a}
            olds = (old_answers or {}).get(q["id"])
            if olds is not None:
                rec["old_answers"] = olds
            rec.update(score_record(rec, s.uses_retrieval, olds))
            rec["train_seconds"] = float(adapters[s.adapter_key].get("train_seconds", 0.0)) if s.uses_adapter else 0.0
            rec["index_seconds"] = float(index_meta["build_seconds"]) if (s.uses_retrieval and index_meta) else 0.0
            rec["leak"] = q["id"] in leaks
            rec["leak_train_id"] = leaks.get(q["id"], {}).get("train_id", "")
            records.append(rec)
    return pd.DataFrame(records)


def score_record(rec: dict, retrieval: bool, old_answers: list[str] | None = None) -> dict:
    """Every per-question score of one answer record (compare/metrics.py)."""
    from compare import metrics as M

    s = M.score_answer(rec["answer"], rec["gold"], rec["kind"])
    s["grounding"] = M.grounding(rec["answer"], rec.get("context")) if retrieval else math.nan
    s["gold_retrieved"] = M.gold_retrieved(rec["gold_doc_ids"], rec["retrieved_ids"]) if retrieval else None
    s["gold_recall"] = M.gold_recall(rec["gold_doc_ids"], rec["retrieved_ids"]) if retrieval else math.nan
    s["stale"] = M.is_stale(rec["answer"], old_answers, rec["gold"])
    s["failure"] = M.attribute_failure(s, rec["kind"], retrieval, s["gold_recall"], s["stale"])
    return s


def resolve_adapter(cfg: CompareConfig, key: str, corpus_name: str, out: Path, progress: bool) -> dict:
    """adapter_key -> cost record with "adapter" (its directory): given, reused from the run dir, or trained now."""
    if key.startswith("path:"):
        return adapter_cost(CompareConfig(**{**asdict(cfg), "adapter": key[5:]}), corpus_name, out, progress)
    if key == "default" and cfg.adapter:
        return adapter_cost(cfg, corpus_name, out, progress)
    named = key[7:] if key.startswith("recipe:") else ""
    recipe = named or cfg.recipe
    target = out / (f"adapter-{named}" if named else "adapter")
    cost_file = target / "cost.json"
    if cost_file.is_file() and (target / "adapter_model.safetensors").is_file():
        cost = json.loads(cost_file.read_text())
        want = {"corpus": cfg.corpus, "generator": cfg.generator, "epochs": cfg.epochs, "max_steps": cfg.max_steps,
                "seed": cfg.seed}
        trained = cost.get("config", {})
        if all(trained.get(k) == v for k, v in want.items()) and (not recipe or trained.get("data") == recipe.replace("+", ",")):
            log(progress, f"finetune: reusing {target} (trained earlier in this run directory)")
            return {**cost, "adapter": str(target)}
    return adapter_cost(cfg, corpus_name, out, progress, recipe, target)


def adapter_cost(cfg: CompareConfig, corpus_name: str, out: Path, progress: bool, recipe: str = "",
                 target: Path | None = None) -> dict:
    """The adapter to use and its cost record: cfg.adapter as given, or one trained now into the run dir.

    recipe: the fine-tuning data recipe (FinetuneConfig.data, '+' for ','); "": finetune's default.
    target: where to save it (default: <out>/adapter).
    """
    if cfg.adapter:
        p = Path(cfg.adapter)
        cost = json.loads((p / "cost.json").read_text()) if (p / "cost.json").is_file() else {}
        return {**cost, "adapter": str(p)}
    from finetune.train import FinetuneConfig, train

    extra = {}
    if recipe:
        if "data" not in {f.name for f in fields(FinetuneConfig)}:
            raise InputError(f"fine-tuning recipe {recipe!r} needs FinetuneConfig.data (the fine-tuning recipes), "
                             "which this checkout does not have yet; use plain ft")
        extra["data"] = recipe.replace("+", ",")  # "qa+paraphrase" on the command line = data "qa,paraphrase"
    ft = FinetuneConfig(corpus=cfg.corpus, out=str(target or out / "adapter"),
                        generator=cfg.generator, epochs=cfg.epochs, max_steps=cfg.max_steps, seed=cfg.seed,
                        device=cfg.device, **extra)
    log(progress, f"finetune: LoRA on the {corpus_name} train split" + (f" (recipe {recipe})" if recipe else ""))
    return train(ft, progress=progress)


def ensure_generator(gen, cfg: CompareConfig, adapter: str | None):
    """The generator with `adapter` attached (None: the bare model); reloads the base model (< 1 s) to switch."""
    from rag.generate import attach_adapter, load_generator

    if gen is not None and gen.adapter == adapter:
        return gen
    if gen is None or gen.adapter is not None:
        gen = load_generator(cfg.generator, device=cfg.device)
    if adapter:
        gen.model, gen.adapter = attach_adapter(gen.model, adapter), adapter
    return gen


def file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def fingerprint(cfg: CompareConfig, s: System, adapter: dict | None, index_meta: dict | None) -> dict:
    """What a system's answers depend on; cached answers are reused only when it matches."""
    fp = {"system": s.name, "retriever": s.retriever, "generator": cfg.generator, "top_k": cfg.top_k,
          "max_new_tokens": cfg.max_new_tokens, "batch_size": cfg.batch_size, "corpus": cfg.corpus,
          "prompt": prompt_hash()}
    if s.uses_retrieval and index_meta:
        fp["index"] = index_meta["corpus_hash"]
        fp["embedder"] = cfg.embedder
    if adapter:
        fp["adapter_sha"] = file_sha(Path(adapter["adapter"]) / "adapter_model.safetensors")
    return fp


def prompt_hash() -> str:
    """Hash of the prompt wording (rag/augment.py), closed-book and with a passage: a reworded prompt
    invalidates cached answers."""
    from rag.augment import build_messages

    doc = {"doc_id": "d", "title": "T", "text": "x", "chunk_id": 0, "start": 0, "end": 1}
    text = json.dumps([build_messages("Q?", None), build_messages("Q?", [doc]), build_messages("Q?", [])])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def read_cache(path: Path, fp: dict) -> dict[str, dict]:
    """Answers already in `path` by qid; a torn last line (killed mid-write) is dropped from the file."""
    if not path.is_file():
        return {}
    lines = path.read_text(encoding="utf-8").split("\n")
    try:
        head = json.loads(lines[0])
    except json.JSONDecodeError:
        head = None
    if head != {"fingerprint": fp}:
        n = 1
        while path.with_name(f"{path.name}.stale-{n}").exists():
            n += 1
        os.replace(path, path.with_name(f"{path.name}.stale-{n}"))
        return {}
    done, good = {}, [lines[0]]
    for line in lines[1:]:
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            break  # torn write: everything after it is redone
        done[rec["qid"]] = rec
        good.append(line)
    if len(good) != len([x for x in lines if x.strip()]):
        path.write_text("\n".join(good) + "\n", encoding="utf-8")
    return done


def append_lines(path: Path, rows: list[dict]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        f.flush()
        os.fsync(f.fileno())


SAVE_BATCHES = 4  # generation batches per saved unit: a killed run loses at most this much work per system


def answer_cached(gen, index, s: System, questions: list[dict], cfg: CompareConfig, path: Path, fp: dict,
                  progress: bool) -> list[dict]:
    """Answers of system `s` to `questions`, from the cache where present; the rest generated and appended.

    Questions go through rag/pipeline.answer_questions in units of SAVE_BATCHES generation batches (in question
    order; within a unit prompts are batched by length), each unit appended and fsync'd as soon as it is done.
    The same question list gives the same units on every run, so a resumed run answers exactly as a fresh one.
    """
    from rag.pipeline import answer_questions

    path.parent.mkdir(parents=True, exist_ok=True)
    done = read_cache(path, fp)
    if not path.is_file():
        append_lines(path, [{"fingerprint": fp}])
    todo = [q for q in questions if q["id"] not in done]
    if not todo:
        log(progress, f"{s.name}: {len(questions)} answers cached in {path}")
        return [done[q["id"]] for q in questions]
    log(progress, f"{s.name}: answering {len(todo)} questions" + (f" ({len(done)} cached)" if done else ""))
    size = cfg.batch_size * SAVE_BATCHES
    units = [questions[k:k + size] for k in range(0, len(questions), size)]
    units = [u for u in units if any(q["id"] not in done for q in u)]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(len(u) for u in units), desc=s.name, unit="q", leave=False)
    for unit in units:
        t0 = time.perf_counter()
        outs = answer_questions(gen, index, [q["question"] for q in unit], s.retriever, cfg.top_k,
                                cfg.max_new_tokens, cfg.batch_size)
        wall = time.perf_counter() - t0
        # Prompt building is not timed inside answer_questions: take the residual of the call's wall time
        # (minus retrieval and each distinct generate call), shared equally by the unit's questions.
        calls = {(o["gen_seconds"], o["batch"]) for o in outs}
        residual = max(0.0, wall - sum(o["retrieve_seconds"] + o.get("rewrite_seconds", 0.0) / max(o["batch"], 1)
                                       for o in outs) - sum(g for g, _ in calls)) / len(unit)
        rows = []
        for q, o in zip(unit, outs):
            r = {"qid": q["id"], **o}
            r.setdefault("prompt_seconds", residual)
            r["context"] = context_text(index, r.get("retrieved_chunks")) if s.uses_retrieval else None
            r["latency_seconds"] = r.get("latency_seconds", r["retrieve_seconds"] + r["gen_seconds"]) + \
                r["prompt_seconds"]
            if q["id"] not in done:
                done[q["id"]] = r
                rows.append(r)
        append_lines(path, rows)
        if bar is not None:
            bar.update(len(unit))
    if bar is not None:
        bar.close()
    return [done[q["id"]] for q in questions]


def context_text(index, chunk_ids: list[int] | None) -> str:
    """The text of the retrieved chunks (titles included), what grounding checks the answer against."""
    if index is None or not chunk_ids:
        return ""
    return "\n\n".join(f"{index.chunks[c]['title']}\n{index.chunks[c]['text']}" for c in chunk_ids)


def summarize(records: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """One row per system: accuracy (answerable) with 95% bootstrap CI, hallucination, abstention, CRAG score,
    grounding, gold retrieved, failure counts, p50/p95 latency, tokens, one-off seconds (compare/aggregate.py)."""
    return _summarize(records, seed=seed)


def log(progress: bool, message: str) -> None:
    if progress:
        from tqdm import tqdm

        tqdm.write(message)

"""Fit check (issue 16, item 4): did each adapter learn the facts it was taught?

Each adapter's weights answer, closed-book, a seeded sample of `fit_size` answerable train questions of the
run's corpus (the split the adapters of this run are trained on), with the run's prompt and decoding. The
answers are cached like the main ones (compare/cache.py answer_cached: answers/fit-<model>.jsonl) and kept as
records (fit_records.parquet/.csv: model, question, gold, answer and every score). Every system that uses an
adapter gets that adapter's `fit` (share right) and `fit_n` (questions asked) in summary.csv, ft and ft+rag
alike (the check is closed-book: it measures the weights, not the retrieval); systems without an adapter get
NaN. A fit below FIT_FLAG marks the arm under-trained in the report: its test accuracy then says the adapter
did not learn, not that fine-tuning cannot.

With --limit N the sample is at most N questions, so a quick run stays quick.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import pandas as pd

from compare.adapters import ensure_generator
from compare.cache import answer_cached, docs_sha, fingerprint, log, weights_file
from compare.systems import System
from corpora.text import score_answer

FIT_FLAG = 0.80  # fit below this: the arm is under-trained (issue 16: "fit below 80%")
FIT_COLUMNS = ("fit", "fit_n")


def model_key(s: System) -> str:
    """The weights a system answers with: its adapter key, or "base" for the bare model."""
    return s.adapter_key or "base"


def sample_size(size: int, limit: int) -> int:
    """Questions a check asks: `size`, at most --limit when that is set (0: off)."""
    return min(size, limit) if limit else size


def sample_questions(questions: list[dict], size: int, seed: int) -> list[dict]:
    """A seeded sample of `size` questions (all when fewer), kept in their file order (the same batches on
    every run, so a resumed run answers as a fresh one)."""
    if size <= 0:
        return []
    if size >= len(questions):
        return list(questions)
    keep = sorted(random.Random(seed).sample(range(len(questions)), size))
    return [questions[i] for i in keep]


def fit_questions(train: list[dict], size: int, seed: int) -> list[dict]:
    """The fit sample: answerable train questions (with a gold answer), seeded."""
    pool = [q for q in train if q.get("kind") != "unanswerable" and q.get("answers")]
    return sample_questions(pool, size, seed)


def score_rows(model: str, questions: list[dict], answers: list[dict]) -> list[dict]:
    """One record per question: model, qid, question, gold, answer, tokens and every score (corpora/text.py
    score_answer: exact, f1, correct, abstained, hallucinated, crag)."""
    rows = []
    for q, a in zip(questions, answers):
        rows.append({"model": model, "qid": q["id"], "question": q["question"], "gold": list(q["answers"]),
                     "kind": q.get("kind", "fact"), "answer": a["answer"], "tokens_in": a.get("tokens_in"),
                     "tokens_out": a.get("tokens_out"), "gen_seconds": a.get("gen_seconds"),
                     **score_answer(a["answer"], q["answers"], q.get("kind", "fact"))})
    return rows


def fit_arms(records: pd.DataFrame) -> dict[str, dict]:
    """Fit records -> {model: {"fit": share right, "fit_n": questions, "fit_right": right answers}}."""
    arms = {}
    for model, g in records.groupby("model", sort=False):
        right = int(g["correct"].astype(bool).sum())
        arms[str(model)] = {"fit": right / len(g), "fit_n": len(g), "fit_right": right}
    return arms


def fit_columns(summary: pd.DataFrame, meta: dict | None) -> pd.DataFrame:
    """summary with `fit` and `fit_n` per system, from run.json's fit check (meta["fit"]["arms"] by model,
    meta["systems"] for each system's adapter key); NaN for systems without an adapter, runs without the
    check, or no meta."""
    arms = ((meta or {}).get("fit") or {}).get("arms") or {}
    keys = {s["name"]: s.get("adapter_key", "") for s in (meta or {}).get("systems", [])}
    summary = summary.copy()
    for col in FIT_COLUMNS:
        summary[col] = [float(arms.get(keys.get(name) or "", {}).get(col, math.nan)) for name in summary["system"]]
    return summary


def under_trained(summary: pd.DataFrame, threshold: float = FIT_FLAG) -> pd.DataFrame:
    """The systems whose fit is below `threshold` (NaN fit: not checked, not flagged)."""
    if "fit" not in summary:
        return summary.iloc[0:0]
    return summary[summary["fit"].notna() & (summary["fit"] < threshold)]


def adapter_models(systems: list[System], adapters: dict) -> list[str]:
    """Adapter keys the checks can load as one set of weights (a peft adapter, or the standalone model folder of
    methods full and hft; an arm without one weights folder, such as a routed one, is left out: its columns
    stay NaN), in the run's order."""
    keys = []
    for s in systems:
        ad = adapters.get(s.adapter_key) if s.uses_adapter else None
        path = ad.get("adapter") if isinstance(ad, dict) else None
        if isinstance(path, str) and weights_file(path).is_file() and s.adapter_key not in keys:
            keys.append(s.adapter_key)
    return keys


def drop_records(out: Path, stem: str) -> None:
    """A re-run with a check off must not report an earlier run's records."""
    for old in out.glob(f"{stem}.*"):
        old.unlink()


def run_fit(cfg, corpus, systems: list[System], adapters: dict, out: Path, gen, progress: bool):
    """Ask each adapter the fit sample closed-book -> (run.json's "fit" entry, {} when off, and the generator).
    Writes fit_records to `out`."""
    from compare.records import save_records

    keys = adapter_models(systems, adapters)
    questions = fit_questions(corpus.questions("train"), sample_size(cfg.fit_size, cfg.limit), cfg.seed)
    if not keys or not questions:
        drop_records(out, "fit_records")
        return {}, gen
    dsha = docs_sha(corpus.docs)
    rows = []
    for key in keys:
        ad = adapters[key]
        gen = ensure_generator(gen, cfg, ad["adapter"])
        s = System(f"fit:{key}", "none", key)
        fp = {**fingerprint(cfg, s, ad, None, dsha), "check": "fit"}
        answers = answer_cached(gen, None, s, questions, cfg, out / "answers" / f"fit-{s.file_stem[4:]}.jsonl", fp,
                                progress)
        rows += score_rows(key, questions, answers)
    records = pd.DataFrame(rows)
    save_records(out, records, "fit_records")
    arms = fit_arms(records)
    log(progress, "fit: " + ", ".join(f"{k} {v['fit_right']}/{v['fit_n']}" for k, v in arms.items())
        + " train questions right, closed-book")
    return {"questions": len(questions), "size": cfg.fit_size, "threshold": FIT_FLAG, "arms": arms}, gen

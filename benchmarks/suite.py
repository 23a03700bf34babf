"""`ragft bench all`: the retrieval, generation and training benchmarks with a fixed seed, recorded in the run
history; `--check BASELINE` fails when a figure fell more than allowed against a baseline.

What is gated are ratios measured side by side in one process (a slower or busier machine slows both sides):
  retrieval.bm25s_speedup      bm25s / rank-bm25 queries/s                  (benchmarks/retrieval.py)
  retrieval.hnsw_speedup       FAISS hnsw / flat queries/s, one query per call
  generation.batch_speedup     SmolLM2 new tokens/s at batch 8 / at batch 1, same prompts and tokens
  training.speed_ratio         ragft's LoRA trainer / transformers.Trainer tokens/s  (benchmarks/training.py)
  training.memory_ratio        the same, peak memory (lower is better: a rise fails)
and quality figures that do not depend on the machine (bm25s top-10 agreement with rank-bm25, hnsw recall@10).
Where vllm is installed (importlib.util.find_spec("vllm")), the generation part also runs the engines benchmark
(benchmarks/generation.py, transformers vs vllm on the same prompts): OPTIONAL_FIGURES, checked against a baseline
that has them; where it is not, one line says so and the check leaves them out (a missing optional figure never
fails a check).
A ratio fails when new < baseline x (1 - max_drop) (memory: new > baseline x (1 + max_drop)); a quality figure
when it fell more than max_quality_drop (absolute). Absolute throughputs (queries/s, tokens/s, chunks/s) are
recorded and shown beside the baseline's, and only gated with --absolute-drop > 0: they move with the machine.
So are the roofline shares (generation.roofline_*: the share of the roofline a decode step at batch 1 and 8 and
the batch-8 prefill reach, the floor from the matmul rate and weight-read time measured in the same run): their
floor and their step are measured at different moments, so load moves them (0.31 contended, 0.02 with a demo
beside it), and the committed values are contended ones; gating them needs an idle baseline.

The baseline: a JSON file written by `ragft bench all --write-baseline FILE` (benchmarks/baseline.json is
ragft's own, checked by .ci/run) or a bench-all run id from the history. It must have been measured with the
same settings (documents, prompts, steps, seed); otherwise the check refuses rather than compare unlike runs.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from corpora.config import check, opt
from corpora.errors import InputError
from rag.models import DEVICES

# name -> (kind, what). kind: ratio (higher is better), ratio_lower (lower is better), quality, absolute.
FIGURES = {
    "retrieval.bm25s_speedup": ("ratio", "bm25s / rank-bm25 queries/s"),
    "retrieval.hnsw_speedup": ("ratio", "FAISS hnsw / flat queries/s (1 thread, one query per call)"),
    "generation.batch_speedup": ("ratio", "generate tokens/s at batch 8 / batch 1"),
    "generation.roofline_decode_batch1": ("absolute", "decode step, batch 1: roofline floor / measured (share reached)"),
    "generation.roofline_decode_batch8": ("absolute", "decode step, batch 8: roofline floor / measured (share reached)"),
    "generation.roofline_prefill_batch8": ("absolute", "prefill, batch 8: roofline floor / measured (share reached)"),
    "training.speed_ratio": ("ratio", "LoRA tokens/s, ragft / transformers.Trainer"),
    "training.memory_ratio": ("ratio_lower", "peak memory, ragft / transformers.Trainer"),
    "retrieval.bm25_identical_top10": ("quality", "queries whose bm25s top-10 equals rank-bm25's"),
    "retrieval.hnsw_recall@10": ("quality", "hnsw recall@10 against flat"),
    "retrieval.bm25s_qps": ("absolute", "bm25s queries/s (batched)"),
    "retrieval.rank_bm25_qps": ("absolute", "rank-bm25 queries/s"),
    "retrieval.flat_qps": ("absolute", "FAISS flat queries/s"),
    "retrieval.hnsw_qps": ("absolute", "FAISS hnsw queries/s"),
    "retrieval.embed_chunks_per_s": ("absolute", "embedder chunks/s"),
    "generation.tokens_per_s_batch1": ("absolute", "generate new tokens/s, batch 1"),
    "generation.tokens_per_s_batch8": ("absolute", "generate new tokens/s, batch 8"),
    "training.ragft_tokens_per_s": ("absolute", "ragft LoRA training tokens/s"),
}
# Measured only where vllm is installed (engine_figures); same kinds as above. Kept apart from FIGURES, whose
# non-absolute figures every baseline must have (benchmarks/baseline.json is measured without vllm).
OPTIONAL_FIGURES = {
    "generation.vllm_speedup": ("ratio", "vllm / transformers new tokens/s, same prompts (where vllm is installed)"),
    "generation.vllm_agreement": ("quality", "answers identical, vllm vs transformers (where vllm is installed)"),
    "generation.vllm_tokens_per_s": ("absolute", "vllm new tokens/s (where vllm is installed)"),
}
ALL_FIGURES = {**FIGURES, **OPTIONAL_FIGURES}
ENGINE_BATCH = 8  # prompts per generate call of each engine: batch 8, as generation.tokens_per_s_batch8
# Settings that change the figures: a baseline measured with other values is not comparable.
COMPARABLE = ("docs", "gen_prompts", "gen_tokens", "train_steps", "train_rounds", "train_batch", "seed", "parts")
PARTS = ("retrieval", "generation", "training")


@dataclass
class BenchAllConfig:
    parts: str = "retrieval,generation,training"
    """Benchmarks to run, comma-separated: retrieval, generation, training (default all three)."""
    docs: int = opt(5000, min=100)
    """Synthetic documents for the retrieval benchmark (default 5000)."""
    gen_prompts: int = opt(8, min=1)
    """Prompts generated at batch 1 and at batch 8 (default 8)."""
    gen_tokens: int = opt(16, min=1)
    """New tokens per prompt, forced, in the generation benchmark (default 16 tokens)."""
    train_steps: int = opt(3, min=1)
    """Optimizer steps per training run (default 3)."""
    train_rounds: int = opt(2, min=1)
    """Training runs of each trainer, alternating (default 2)."""
    train_batch: int = opt(8, min=1, flag="train-batch-size", aliases=("train-batch",))
    """Examples per training step (default 8 examples)."""
    seed: int = opt(0, min=0)
    """Seed of the synthetic corpus, the queries and torch (default 0)."""
    device: str = opt("auto", choices=DEVICES)
    """Device: auto | cpu | cuda (default auto)."""
    check: str = ""
    """Baseline to check against: a JSON file or a bench-all run id; exit 1 on a regression (default '': none)."""
    # Why 0.5: ratios still move with heavy load (measurements: docs/defaults.md, "ragft bench").
    max_drop: float = opt(0.5, min=0.0, max=1.0)
    """A side-by-side ratio fails when it fell by more than this fraction of the baseline's, 0-1 (default 0.5)."""
    max_quality_drop: float = opt(0.02, min=0.0)
    """A quality figure (top-10 agreement, recall) fails when it fell by more than this, absolute (default 0.02)."""
    absolute_drop: float = opt(0.0, min=0.0, max=1.0)
    """Also fail when an absolute throughput fell by more than this fraction (default 0: show only)."""
    write_baseline: str = ""
    """Write this run's figures as a baseline JSON file, e.g. benchmarks/baseline.json (default '': none)."""

    def __post_init__(self):
        check(self)  # the module's check() (corpora/config.py); the field `check` is self.check
        parse_parts(self.parts)


def parse_parts(text: str) -> list[str]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    bad = [p for p in parts if p not in PARTS]
    if bad or not parts:
        raise InputError(f"unknown benchmark part(s) {', '.join(bad) or '(none)'}: choose from {', '.join(PARTS)}")
    return parts


def settings(cfg: BenchAllConfig) -> dict:
    return {k: getattr(cfg, k) for k in COMPARABLE}


def run_parts(cfg: BenchAllConfig, echo=print) -> dict[str, float]:
    """Run the benchmarks; -> flat figures {"part.name": value} (FIGURES names)."""
    import torch

    parts = parse_parts(cfg.parts)
    torch.manual_seed(cfg.seed)
    figures: dict[str, float] = {}
    if "retrieval" in parts or "generation" in parts:
        from benchmarks.retrieval import BenchConfig, run_bench

        gen = cfg.gen_prompts if "generation" in parts else 0
        echo(f"== retrieval{' + generation' if gen else ''} (benchmarks/retrieval.py)")
        res = run_bench(BenchConfig(docs=cfg.docs, seed=cfg.seed, gen_prompts=gen, gen_tokens=cfg.gen_tokens,
                                    device=cfg.device), echo=echo)
        if "retrieval" in parts:
            for k in ("bm25s_speedup", "hnsw_speedup", "bm25_identical_top10", "hnsw_recall@10", "bm25s_qps",
                      "rank_bm25_qps", "flat_qps", "hnsw_qps", "embed_chunks_per_s"):
                figures[f"retrieval.{k}"] = float(res[k])
        if gen:
            figures["generation.batch_speedup"] = float(res["gen_batch_speedup"])
            figures["generation.tokens_per_s_batch1"] = float(res["gen_tokens_per_s_batch1"])
            figures["generation.tokens_per_s_batch8"] = float(res["gen_tokens_per_s_batch8"])
            from benchmarks.generation import roofline_shares

            echo("\n== generation roofline (benchmarks/generation.py, benchmarks/roofline.py)")
            figures.update(roofline_shares(BenchConfig.generator, cfg.device, cfg.gen_prompts, cfg.gen_tokens, echo))
            figures.update(engine_figures(cfg, echo))
    if "training" in parts:
        from benchmarks.training import TrainingBenchConfig, bench_training

        echo("\n== training (benchmarks/training.py)")
        res = bench_training(TrainingBenchConfig(steps=cfg.train_steps, rounds=cfg.train_rounds,
                                                 batch_size=cfg.train_batch, device=cfg.device), echo=echo)
        figures["training.speed_ratio"] = float(res["ratio"])
        figures["training.memory_ratio"] = float(res["memory_ratio"])
        figures["training.ragft_tokens_per_s"] = float(res["summary"]["ragft"]["tokens_per_second"])
    return figures


def engine_figures(cfg: BenchAllConfig, echo=print, generator: str = "") -> dict[str, float]:
    """The engines benchmark (benchmarks/generation.py: transformers vs vllm, the first --gen-prompts atlantis
    test questions, exactly --gen-tokens new tokens each, batch ENGINE_BATCH, 2 interleaved rounds) ->
    OPTIONAL_FIGURES; {} and one line where vllm is not installed. generator: the model (default: the bench's,
    smollm2-135m)."""
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        echo("generation engines skipped: vllm is not installed here (`make vllm`); not measured: "
             + ", ".join(OPTIONAL_FIGURES))
        return {}
    from benchmarks.generation import GenerationBenchConfig, run_generation_bench
    from rag.models import DEFAULT_GENERATOR

    echo("\n== generation engines (benchmarks/generation.py)")
    res = run_generation_bench(GenerationBenchConfig(
        engines="transformers,vllm", generator=generator or DEFAULT_GENERATOR, prompts=cfg.gen_prompts,
        new_tokens=cfg.gen_tokens, batch_size=ENGINE_BATCH, rounds=2, device=cfg.device), echo=echo)
    vllm = res["engines"]["vllm"]
    return {"generation.vllm_speedup": float(res["ratio_vllm"]), "generation.vllm_agreement": float(vllm["agreement"]),
            "generation.vllm_tokens_per_s": float(vllm["tokens_per_s"])}


def missing_optional(base: dict[str, float], new: dict[str, float]) -> list[str]:
    """Optional figures the baseline has and this run did not measure (vllm not installed here): not checked."""
    return [k for k in OPTIONAL_FIGURES if k in base and k not in new]


# ---- baselines ----------------------------------------------------------------------------------------------

def write_baseline(path: str | Path, cfg: BenchAllConfig, figures: dict[str, float]) -> Path:
    from history.store import git_state, machine, now_utc

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    commit, dirty = git_state()
    doc = {"about": "ragft bench all baseline: figures of one run; `ragft bench all --check FILE` compares with it",
           "created": now_utc(), "git_commit": commit, "git_dirty": dirty, "machine": machine(),
           "settings": settings(cfg), "figures": {k: round(v, 6) for k, v in figures.items()}}
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def load_baseline(source: str, history: str = "") -> tuple[dict, dict[str, float], str]:
    """-> (settings, figures, label) from a baseline JSON file or a bench-all run id in the history."""
    from history.store import get_run, parse_run_id

    run_id = parse_run_id(source)
    if run_id is not None:
        if not history:
            raise InputError(f"run id {source} needs a run history (--history)")
        run = get_run(history, run_id)
        if run["kind"] != "bench-all":
            raise InputError(f"run {run_id} is a {run['kind']} run, not a bench-all run", history)
        figures = {r["name"]: float(r["value"]) for r in run["summary"].to_dict("records")}
        return {k: run["config"].get(k) for k in COMPARABLE}, figures, f"run {run_id}"
    path = Path(source)
    if not path.is_file():
        raise InputError("no such baseline file (nor a run id)", source)
    try:
        doc = json.loads(path.read_text())
        return doc["settings"], {k: float(v) for k, v in doc["figures"].items()}, str(path)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise InputError(f"not a bench baseline JSON ({e})", str(path)) from None


def check_figures(base: dict[str, float], new: dict[str, float], cfg: BenchAllConfig) -> list[dict]:
    """One row per figure in both: baseline, new, new / baseline, limit, failed."""
    rows = []
    for name, (kind, what) in ALL_FIGURES.items():
        if name not in base or name not in new:
            continue
        b, n = base[name], new[name]
        ratio = n / b if b else float("inf")
        if kind == "ratio":
            limit, failed = f">= {1 - cfg.max_drop:.2f}x baseline", ratio < 1 - cfg.max_drop
        elif kind == "ratio_lower":
            limit, failed = f"<= {1 + cfg.max_drop:.2f}x baseline", ratio > 1 + cfg.max_drop
        elif kind == "quality":
            limit, failed = f">= baseline - {cfg.max_quality_drop}", n < b - cfg.max_quality_drop
        elif cfg.absolute_drop > 0:
            limit, failed = f">= {1 - cfg.absolute_drop:.2f}x baseline", ratio < 1 - cfg.absolute_drop
        else:
            limit, failed = "shown only", False
        rows.append({"figure": name, "kind": kind, "what": what, "baseline": b, "new": n, "new/baseline": ratio,
                     "limit": limit, "failed": bool(failed)})
    return rows


def format_check(rows: list[dict]) -> str:
    import pandas as pd

    if not rows:
        return "(no figures in common with the baseline)"
    df = pd.DataFrame(rows)
    df["baseline"] = df["baseline"].map(lambda v: f"{v:.4g}")
    df["new"] = df["new"].map(lambda v: f"{v:.4g}")
    df["new/baseline"] = df["new/baseline"].map(lambda v: f"{v:.2f}x")
    df["failed"] = df["failed"].map(lambda f: "FAIL" if f else "ok")
    return df[["figure", "baseline", "new", "new/baseline", "limit", "failed"]].to_string(index=False)


def bench_all(cfg: BenchAllConfig, history: str = "", echo=print) -> tuple[bool, dict]:
    """Run, record, write/check the baseline. -> (passed, {"figures", "run_id", "check"})."""
    from history.store import enabled, now_utc, record_run

    if not 0 <= cfg.max_drop < 1 or not 0 <= cfg.absolute_drop < 1 or cfg.max_quality_drop < 0:
        raise InputError("need 0 <= max_drop < 1, 0 <= absolute_drop < 1 and max_quality_drop >= 0")
    parse_parts(cfg.parts)
    baseline = None
    if cfg.check:  # read it first: a bad baseline fails before minutes of benchmarking
        baseline = load_baseline(cfg.check, history)
        want = settings(cfg)
        differ = {k: (baseline[0].get(k), want[k]) for k in COMPARABLE if baseline[0].get(k) != want[k]}
        if differ:
            raise InputError("baseline measured with other settings: " + ", ".join(
                f"{k} {a!r} there, {b!r} here" for k, (a, b) in differ.items()), baseline[2])
    started, t0 = now_utc(), time.perf_counter()
    figures = run_parts(cfg, echo)
    seconds = time.perf_counter() - t0
    out: dict = {"figures": figures, "seconds": seconds, "run_id": None, "check": None}
    echo(f"\nbench all: {len(figures)} figures in {seconds:.0f} s")
    if enabled(history):
        from benchmarks.training import TrainingBenchConfig
        from history.store import corpus_hash

        rows = [{"name": k, "value": v, "kind": ALL_FIGURES[k][0], "what": ALL_FIGURES[k][1]}
                for k, v in figures.items()]
        out["run_id"] = record_run(history, "bench-all", {**asdict(cfg), "seconds": round(seconds, 1)}, rows,
                                   started_at=started, name_key="name", corpus=TrainingBenchConfig.corpus,
                                   corpus_hash=corpus_hash(TrainingBenchConfig.corpus),
                                   models={"generator": TrainingBenchConfig.generator, "embedder": "minilm-l6"})
        echo(f"recorded as run {out['run_id']} in {history}")
    if cfg.write_baseline:
        echo(f"baseline written: {write_baseline(cfg.write_baseline, cfg, figures)}")
    passed = True
    if baseline is not None:
        rows = check_figures(baseline[1], figures, cfg)
        out["check"] = rows
        failed = [r for r in rows if r["failed"]]
        passed = not failed
        echo(f"\ncheck against {baseline[2]} (max_drop {cfg.max_drop:.0%} for ratios):")
        echo(format_check(rows))
        skipped = missing_optional(baseline[1], figures)
        if skipped:
            echo(f"not checked (optional, not measured here: vllm is not installed): {', '.join(skipped)}")
        for r in failed:
            echo(f"FAIL {r['figure']}: {r['baseline']:.4g} -> {r['new']:.4g} ({r['new/baseline'] - 1:+.0%}; "
                 f"limit {r['limit']}) -- {r['what']}")
        echo(f"bench check: {'FAILED' if failed else 'passed'} ({len(failed)} of {len(rows)} figures failed)")
    return passed, out

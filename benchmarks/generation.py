"""`ragft bench generation`: new tokens/s of each generation engine (rag/engine.py) on the same prompts, side by
side in one process, and each engine's answer agreement with transformers.

Prompts: the first --prompts questions of the corpus's test split, closed-book (rag/augment.py). Every engine
generates exactly --new-tokens tokens per prompt (end of turn suppressed until then: transformers'
min_new_tokens, vLLM's min_tokens), so each does the same work; agreement compares those answers, text for
text. Rounds are interleaved (each engine once per round, --rounds rounds) so a busy machine slows all of them
alike; tokens/s = new tokens / wall seconds of the engine's generate calls over all rounds, load and one warm-up
prompt excluded. openai: the server at --base-url (e.g. `vllm serve` of the same model); skipped without one.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from corpora.config import check, opt
from corpora.errors import InputError
from rag.engine import DTYPES, ENGINES, EngineOptions
from rag.models import DEFAULT_GENERATOR, DEVICES


@dataclass
class GenerationBenchConfig:
    engines: str = "transformers,vllm,openai"
    """Engines to measure, comma-separated: transformers, vllm, openai (openai only with --base-url) (default all three)."""
    generator: str = DEFAULT_GENERATOR
    """Model: 'smollm2-135m' (shipped) or a local HF model directory (default smollm2-135m)."""
    corpus: str = "atlantis"
    """Corpus whose test questions are the prompts (default atlantis)."""
    prompts: int = opt(32, min=1)
    """Prompts per engine and round (default 32 prompts)."""
    new_tokens: int = opt(32, min=1)
    """New tokens generated per prompt, exactly (default 32 tokens)."""
    batch_size: int = opt(32, min=1)
    """Prompts per generate call of transformers and vllm (default 32)."""
    rounds: int = opt(2, min=1)
    """Interleaved rounds; each engine answers every prompt once per round (default 2 rounds)."""
    device: str = opt("auto", choices=DEVICES)
    """transformers device: auto | cpu | cuda (default auto)."""
    base_url: str = ""
    """openai engine: the server's URL, e.g. http://127.0.0.1:8000/v1 (default '': openai skipped)."""
    model_name: str = ""
    """openai engine: served name of the model (default '': the server's first)."""
    concurrency: int = opt(8, min=1)
    """openai engine: requests in flight at once (default 8)."""
    tensor_parallel_size: int = opt(1, min=1)
    """vllm engine: GPUs the model is split over (default 1)."""
    gpu_memory_utilization: float = opt(0.9, above=0.0, max=1.0)
    """vllm engine: share of GPU memory vLLM may take, 0-1 (default 0.9)."""
    dtype: str = opt("auto", choices=DTYPES)
    """vllm engine: weights dtype: auto (bf16 on CUDA, fp32 on CPU) | float32 | bfloat16 | float16 (default auto)."""
    max_model_len: int = opt(0, min=0)
    """vllm engine: longest prompt + answer in tokens (default 0: the model's window)."""

    def __post_init__(self):
        check(self)
        bad = [e for e in self.names() if e not in ENGINES]
        if bad or not self.names():
            raise InputError(f"--engines {self.engines!r}: choose from {', '.join(ENGINES)}, comma-separated")

    def names(self) -> list[str]:
        return [e.strip() for e in self.engines.split(",") if e.strip()]

    def options(self, engine: str) -> EngineOptions:
        keep = {k: v for k, v in asdict(self).items() if k in {f for f in EngineOptions.__dataclass_fields__}}
        return EngineOptions(**{**keep, "engine": engine, "base_url": self.base_url if engine == "openai" else ""})


def open_engines(cfg: GenerationBenchConfig, echo) -> dict:
    """engine name -> an object with generate() (rag/engine.py's contract); a missing vllm or server is a line."""
    import importlib.util

    from rag.engine import open_engine
    from rag.engine_transformers import TransformersEngine

    engines = {}
    for name in cfg.names():
        if name == "vllm" and importlib.util.find_spec("vllm") is None:
            echo("vllm    skipped: vllm is not installed here (`make vllm`)")
            continue
        if name == "openai" and not cfg.base_url:
            echo("openai  skipped: no --base-url (start `vllm serve MODEL` and pass --base-url http://HOST:PORT/v1)")
            continue
        t0 = time.perf_counter()
        if name == "transformers":
            engines[name] = TransformersEngine.load(cfg.generator, cfg.device)
        else:
            engines[name] = open_engine(cfg.options(name)).engine
        echo(f"{name:12s} ready in {time.perf_counter() - t0:.1f} s")
    return engines


def run_generation_bench(cfg: GenerationBenchConfig, echo=print) -> dict:
    """-> {"engines": {name: {"tokens", "seconds", "tokens_per_s", "agreement"}}, "ratio_<name>": tokens/s of
    <name> / transformers', "prompts", "new_tokens"}."""
    from corpora import load_corpus
    from rag.augment import build_messages

    questions = load_corpus(cfg.corpus).questions("test")[: cfg.prompts]
    convs = [build_messages(q["question"], None) for q in questions]
    engines = open_engines(cfg, echo)
    stats = {n: {"tokens": 0, "seconds": 0.0, "answers": None} for n in engines}
    for e in engines.values():
        e.generate(convs[:1], 2, 1)  # warm-up
    for _ in range(cfg.rounds):
        for name, e in engines.items():
            t0 = time.perf_counter()
            outs = e.generate(convs, cfg.new_tokens, cfg.batch_size, None, cfg.new_tokens)
            stats[name]["seconds"] += time.perf_counter() - t0
            stats[name]["tokens"] += sum(o["tokens_out"] for o in outs)
            stats[name]["answers"] = [o["answer"] for o in outs]
    ref = stats.get("transformers", {}).get("answers")
    res = {"prompts": len(convs), "new_tokens": cfg.new_tokens, "rounds": cfg.rounds, "engines": {}}
    for name, s in stats.items():
        tps = s["tokens"] / s["seconds"] if s["seconds"] else float("nan")
        agree = sum(a == b for a, b in zip(s["answers"], ref)) / len(ref) if ref else float("nan")
        res["engines"][name] = {"tokens": s["tokens"], "seconds": s["seconds"], "tokens_per_s": tps, "agreement": agree}
        echo(f"{name:12s} {tps:8.1f} new tokens/s  ({s['tokens']} tokens in {s['seconds']:.1f} s)  "
             f"answers identical to transformers: {agree:.0%}")
    base = res["engines"].get("transformers", {}).get("tokens_per_s")
    for name, r in res["engines"].items():
        if name != "transformers" and base:
            res[f"ratio_{name}"] = r["tokens_per_s"] / base
            echo(f"ratio {name} / transformers = {res[f'ratio_{name}']:.2f}x  ({len(convs)} closed-book prompts x "
                 f"{cfg.rounds} rounds, {cfg.new_tokens} new tokens each, batch {cfg.batch_size}, {cfg.generator})")
    for e in engines.values():
        e.close()
    return res


def engine_agreement(a, b):
    """Two compare runs' records (DataFrames: system, qid, answer, correct, latency_seconds; e.g. --engine
    transformers and --engine vllm on the same questions) -> one row per system: n, answers identical (share),
    accuracy of each, p50 latency of each and b / a. The acceptance table of issue 15 and gpu_check.sh's."""
    import pandas as pd

    m = a.merge(b, on=["system", "qid"], suffixes=("_a", "_b"))
    rows = []
    for system, g in m.groupby("system", sort=False):
        la, lb = g["latency_seconds_a"].median(), g["latency_seconds_b"].median()
        rows.append({"system": system, "n": len(g), "agreement": float((g["answer_a"] == g["answer_b"]).mean()),
                     "accuracy_a": float(g["correct_a"].mean()), "accuracy_b": float(g["correct_b"].mean()),
                     "p50_latency_a": la, "p50_latency_b": lb, "latency_ratio_b_over_a": lb / la if la else float("nan")})
    return pd.DataFrame(rows)


if __name__ == "__main__":  # python -m benchmarks.generation RUN_A RUN_B: engine_agreement of two compare runs
    import sys

    from compare.records import load_records

    print(engine_agreement(load_records(sys.argv[1]), load_records(sys.argv[2])).to_string(index=False))

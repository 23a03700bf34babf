"""`ragft bench generation`: new tokens/s of each generation engine (rag/engine.py) on the same prompts, side by
side in one process, and each engine's answer agreement with transformers.

Prompts: the first --prompts questions of the corpus's test split, closed-book (rag/augment.py). Every engine
generates exactly --new-tokens tokens per prompt (end of turn suppressed until then: transformers'
min_new_tokens, vLLM's min_tokens), so each does the same work; agreement compares those answers, text for
text. Rounds are interleaved (each engine once per round, --rounds rounds) so a busy machine slows all of them
alike; tokens/s = new tokens / wall seconds of the engine's generate calls over all rounds, load and one warm-up
prompt excluded. openai: the server at --base-url (e.g. `vllm serve` of the same model); skipped without one.

The roofline table (benchmarks/roofline.py) puts the transformers engine's steps beside the machine's limits,
both measured in this run: fp32 matmul GFLOP/s and the seconds to read the model's weights once (a
matrix-vector product over as many fp32 numbers); per step (prefill = one forward over the prompts, decode = one
new token per row) the measured seconds, FLOPs, bytes, the roofline floor and the share of it reached, at batch 1
(--roofline-prompts prompts, one call each) and at --batch-size (the transformers rounds above).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from corpora.config import check, opt
from corpora.errors import InputError
from rag.engine import DECODES, DTYPES, ENGINES, EngineOptions
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
    decode: str = opt("prefix", choices=DECODES)
    """transformers engine: decoder: prefix (static KV cache, shared prompt prefix once) | static (no sharing) | hf (HF generate) (default prefix)."""
    roofline_prompts: int = opt(2, min=0)
    """Prompts generated at batch 1, one call each, for the roofline table's batch-1 rows (default 2; 0: none)."""

    def __post_init__(self):
        check(self)
        bad = [e for e in self.names() if e not in ENGINES]
        if bad or not self.names():
            raise InputError(f"--engines {self.engines!r}: choose from {', '.join(ENGINES)}, comma-separated")

    def names(self) -> list[str]:
        return [e.strip() for e in self.engines.split(",") if e.strip()]

    def options(self, engine: str) -> EngineOptions:
        keep = {k: v for k, v in asdict(self).items() if k in {f for f in EngineOptions.__dataclass_fields__}}
        o = EngineOptions(**{**keep, "engine": engine, "base_url": self.base_url if engine == "openai" else ""})
        o.generator = self.generator  # open_engine reads the model (path and tokenizer) from cfg.generator
        return o


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
            engines[name] = TransformersEngine.load(cfg.generator, cfg.device, cfg.decode)
        else:
            engines[name] = open_engine(cfg.options(name)).engine
        echo(f"{name:12s} ready in {time.perf_counter() - t0:.1f} s")
    return engines


def run_generation_bench(cfg: GenerationBenchConfig, echo=print) -> dict:
    """-> {"engines": {name: {"tokens", "seconds", "tokens_per_s", "agreement"}}, "ratio_<name>": tokens/s of
    <name> / transformers', "prompts", "new_tokens", and with transformers "machine" (measure_machine) and
    "roofline" (roofline_rows)}."""
    from corpora import load_corpus
    from rag.augment import build_messages

    questions = load_corpus(cfg.corpus).questions("test")[: cfg.prompts]
    convs = [build_messages(q["question"], None) for q in questions]
    engines = open_engines(cfg, echo)
    stats = {n: {"tokens": 0, "seconds": 0.0, "answers": None} for n in engines}
    for e in engines.values():
        e.generate(convs[:1], 2, 1)  # warm-up
    calls = []  # the transformers engine's generate calls: (outs, conversations), for the roofline table
    for _ in range(cfg.rounds):
        for name, e in engines.items():
            t0 = time.perf_counter()
            outs = e.generate(convs, cfg.new_tokens, cfg.batch_size, None, cfg.new_tokens)
            stats[name]["seconds"] += time.perf_counter() - t0
            stats[name]["tokens"] += sum(o["tokens_out"] for o in outs)
            stats[name]["answers"] = [o["answer"] for o in outs]
            if name == "transformers":
                calls.append((outs, convs))
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
    if "transformers" in engines:
        gen = engines["transformers"].gen
        for c in convs[: cfg.roofline_prompts]:  # batch 1, one call each
            calls.append((engines["transformers"].generate([c], cfg.new_tokens, 1, None, cfg.new_tokens), [c]))
        machine = measure_machine(gen)
        res["machine"] = machine
        res["roofline"] = roofline_rows(gen, calls, cfg.new_tokens, machine)
        echo(format_roofline(res["roofline"], machine, gen))
    for e in engines.values():
        e.close()
    return res


def measure_machine(gen) -> dict:
    """The machine's two limits, measured now in this process on gen's device: fp32 matmul GFLOP/s (a 2048^3
    matmul, best of 3) and the seconds of one matrix-vector product over as many fp32 numbers as the model has
    parameters (best of 5: the time to read its weights once)."""
    import torch

    from rag.generate import sync

    dev = gen.device
    n = sum(p.numel() for p in gen.model.parameters())

    def best(f, times):
        out = []
        for _ in range(times + 1):  # the first is a warm-up
            sync(dev)
            t0 = time.perf_counter()
            f()
            sync(dev)
            out.append(time.perf_counter() - t0)
        return min(out[1:])

    a, b = torch.randn(2048, 2048, device=dev), torch.randn(2048, 2048, device=dev)
    gflops = 2 * 2048 ** 3 / best(lambda: a @ b, 3) / 1e9
    del a, b
    w, x = torch.randn(n // 4096, 4096, device=dev), torch.randn(4096, device=dev)
    read_s = best(lambda: w @ x, 5)
    return {"matmul_gflops": gflops, "weight_read_s": read_s, "weight_bytes": n * 4, "threads": torch.get_num_threads()}


def model_shape_of(gen) -> dict:
    from benchmarks.roofline import model_shape

    model = gen.model.get_base_model() if hasattr(gen.model, "get_base_model") else gen.model
    n = sum(p.numel() for p in model.parameters())
    emb = model.get_input_embeddings().weight
    return model_shape(model.config.get_text_config(decoder=True), n, emb.numel(), emb.element_size())


def roofline_rows(gen, calls, new_tokens: int, machine: dict) -> list[dict]:
    """One row per (phase, batch size): measured seconds per step, FLOPs and bytes per step (means over the
    steps of every call of that batch size) and the roofline (benchmarks/roofline.py).

    calls: [(outs of one generate call with min_new_tokens = new_tokens, its conversations)]. A call's batches are
    its records' distinct (batch, gen_seconds); each has one prefill and new_tokens - 1 decode steps. The work
    counted is the decoder's (decode="prefix": the shared prefix once per call, rag/decode.py)."""
    from benchmarks.roofline import decode_work, prefill_work, roofline_row
    from rag.decode import shared_prefix_length
    from rag.generate import prompt_ids

    shape = model_shape_of(gen)
    acc: dict = {}
    for outs, convs in calls:
        ids = [prompt_ids(gen.tokenizer, c) for c in convs]
        prefix = shared_prefix_length(ids) if gen.decode == "prefix" else 0
        groups: dict = {}
        for o, x in zip(outs, ids):
            groups.setdefault((o["batch"], o["gen_seconds"]), (o, []))[1].append(len(x))
        for k, (o, lens) in enumerate(groups.values()):
            # the shared prefix's own forward ran once per call (in its first batch; counted with any one of them)
            f, b = prefill_work(shape, lens, prefix, prefix_forward=k == 0)
            add(acc, ("prefill", o["batch"]), o["prefill_seconds"], f, b, 1)
            steps = max(new_tokens - 1, 0)
            work = [decode_work(shape, [n + s for n in lens]) for s in range(steps)]  # row i caches lens[i] + s
            add(acc, ("decode", o["batch"]), o["decode_seconds"], sum(w[0] for w in work), sum(w[1] for w in work),
                steps)
    rows = []
    for (phase, batch), (sec, f, b, n) in sorted(acc.items(), key=lambda kv: (kv[0][1], kv[0][0] != "prefill")):
        if n:
            rows.append(roofline_row(shape, phase, batch, sec / n, f / n, b / n, machine["matmul_gflops"],
                                     machine["weight_read_s"]))
    return rows


def add(acc: dict, key, seconds: float, flops: float, nbytes: float, steps: int) -> None:
    a = acc.setdefault(key, [0.0, 0.0, 0.0, 0])
    for i, v in enumerate((seconds, flops, nbytes, steps)):
        a[i] += v


def format_roofline(rows: list[dict], machine: dict, gen) -> str:
    import pandas as pd

    bw = machine["weight_bytes"] / machine["weight_read_s"] / 1e9
    head = (f"\nroofline (measured now, {machine['threads']} threads; the machine is whatever else runs): fp32 matmul "
            f"{machine['matmul_gflops']:.0f} GFLOP/s; one read of the {machine['weight_bytes'] / 1e6:.0f} MB of "
            f"weights {machine['weight_read_s'] * 1000:.0f} ms ({bw:.1f} GB/s); decoder {gen.decode}")
    if not rows:
        return head
    df = pd.DataFrame(rows)
    table = pd.DataFrame({"phase": df["phase"], "batch": df["batch"], "ms/step": (df["seconds"] * 1000).round(1),
                          "GFLOP/step": df["gflop"].round(2), "MB/step": df["mbytes"].round(0).astype(int),
                          "floor ms": (df["floor_s"] * 1000).round(1), "bound": df["bound"],
                          "share": df["share"].map(lambda v: f"{v:.0%}"),
                          "x weight read": df["x_weight_read"].map(lambda v: f"{v:.2f}x"),
                          "GFLOP/s": df["achieved_gflops"].round(0).astype(int)})
    return head + "\n" + table.to_string(index=False)


ROOFLINE_GATE = (("decode", 1), ("decode", 8), ("prefill", 8))  # (phase, batch) shares that `bench all` gates


def roofline_shares(generator: str, device: str, prompts: int, new_tokens: int, echo=print) -> dict[str, float]:
    """`bench all`'s roofline figures (benchmarks/suite.py): the share of the roofline reached by a decode step at
    batch 1 and at batch 8 and by the batch-8 prefill (ratios: both sides measured in this run), on the first
    `prompts` atlantis test questions closed-book, exactly `new_tokens` new tokens each (batch 1: two of them)."""
    from corpora import load_corpus
    from rag.augment import build_messages
    from rag.engine_transformers import TransformersEngine

    eng = TransformersEngine.load(generator, device)
    convs = [build_messages(q["question"], None) for q in load_corpus("atlantis").questions("test")[:prompts]]
    eng.generate(convs[:1], 2, 1)  # warm-up
    calls = [(eng.generate(convs, new_tokens, 8, None, new_tokens), convs)]
    calls += [(eng.generate([c], new_tokens, 1, None, new_tokens), [c]) for c in convs[:2]]
    machine = measure_machine(eng.gen)
    rows = roofline_rows(eng.gen, calls, new_tokens, machine)
    echo(format_roofline(rows, machine, eng.gen))
    return {f"generation.roofline_{r['phase']}_batch{r['batch']}": float(r["share"]) for r in rows
            if (r["phase"], r["batch"]) in ROOFLINE_GATE}


def arm_roofline(records, gen, machine: dict):
    """The FLOP roofline of each arm of a compare run (records: system, prompt, tokens_in, tokens_out, gen_seconds,
    batch) on the machine measured now (measure_machine) -> one row per system: questions, measured generation
    seconds (the arm's distinct batches' gen_seconds summed), and two floors with the share reached:

      all_tokens: every prompt token prefilled (what HF generate computes; the issue's arithmetic),
      computed:   the shared prefix (rag/decode.py) prefilled once for the arm instead of once per row.

    Per batch: one prefill (floor = max(FLOPs / matmul rate, bytes / read bandwidth), roofline.py) and, for each
    further token, one decode step over the rows still answering (a row makes tokens_out tokens, the first from the
    prefill's logits). Pads and rows already finished are not counted: the floor is the useful work's."""
    import pandas as pd

    from benchmarks.roofline import decode_work, floor_seconds, prefill_work, share
    from rag.decode import shared_prefix_length
    from rag.generate import prompt_ids

    shape = model_shape_of(gen)
    gf, bw = machine["matmul_gflops"], shape["weight_bytes"] / machine["weight_read_s"]
    floor = lambda work: floor_seconds(*work, gf, bw)[0]  # noqa: E731  (FLOPs, bytes) -> seconds
    rows = []
    for system, g in records.groupby("system", sort=False):
        ids = {i: prompt_ids(gen.tokenizer, [{"role": "user", "content": p}]) for i, p in g["prompt"].items()}
        prefix = shared_prefix_length(list(ids.values()))
        wall = prefill_all = prefill_shared = decode = 0.0
        for (seconds, _), b in g.groupby(["gen_seconds", "batch"]):
            wall += seconds
            lens = [len(ids[i]) for i in b.index]
            outs = [int(n) for n in b["tokens_out"]]
            prefill_all += floor(prefill_work(shape, lens))
            prefill_shared += floor(prefill_work(shape, lens, prefix, prefix_forward=False))
            decode += sum(floor(decode_work(shape, [n + s for n, o in zip(lens, outs) if o > s]))
                          for s in range(1, max(outs, default=0)))
        if prefix:  # the prefix's own forward, once (at least once per generate call: a lower bound)
            prefill_shared += floor(prefill_work(shape, [prefix]))
        all_tokens, computed = prefill_all + decode, prefill_shared + decode
        rows.append({"system": system, "questions": len(g), "tokens_in": float(g["tokens_in"].mean()),
                     "tokens_out": float(g["tokens_out"].mean()), "shared_prefix": prefix, "gen_seconds": wall,
                     "floor_all_tokens_s": all_tokens, "share_all_tokens": share(all_tokens, wall),
                     "floor_computed_s": computed, "share_computed": share(computed, wall)})
    return pd.DataFrame(rows)


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


if __name__ == "__main__":
    # python -m benchmarks.generation RUN_A RUN_B: engine_agreement of two compare runs (same questions)
    # python -m benchmarks.generation roofline RUN [GENERATOR]: arm_roofline of a compare run, machine measured now
    import sys

    from compare.records import load_records

    if sys.argv[1] == "roofline":
        from rag.generate import load_generator

        gen = load_generator(sys.argv[3] if len(sys.argv) > 3 else DEFAULT_GENERATOR, device="cpu")
        machine = measure_machine(gen)
        print(f"fp32 matmul {machine['matmul_gflops']:.0f} GFLOP/s, weight read {machine['weight_read_s'] * 1000:.1f} ms")
        print(arm_roofline(load_records(sys.argv[2]), gen, machine).round(3).to_string(index=False))
    else:
        print(engine_agreement(load_records(sys.argv[1]), load_records(sys.argv[2])).to_string(index=False))

"""`ragft bench retrieval | training | generation | all | scale` (benchmarks/); each run recorded in the run history.
`ragft bench ft-methods` prints the compare command of issue 16 item 9 and tabulates its run (not recorded)."""

from __future__ import annotations

import dataclasses
import sys

import click

from cli.options import config_options, pop_config
from cli.output import echo_recorded, emit_json, json_option, stdout_for, text_echo
from benchmarks.ft_methods import FtMethodsConfig
from benchmarks.generation import GenerationBenchConfig
from benchmarks.retrieval import BenchConfig
from benchmarks.scale import ScaleConfig
from benchmarks.suite import BenchAllConfig
from benchmarks.training import TrainingBenchConfig
from history.store import HistoryConfig


@click.group()
def bench():
    """Speed benchmarks: figures and ratios measured side by side in one process."""


@bench.command("retrieval")
@config_options(BenchConfig)
@config_options(HistoryConfig)
@json_option
def bench_retrieval(as_json: bool, **kw):
    """bm25s vs rank-bm25, FAISS flat vs hnsw, embedding and generation throughput on a synthetic corpus."""
    from benchmarks.retrieval import run_bench
    from history.store import now_utc, record_bench

    hist, started = pop_config(HistoryConfig, kw), now_utc()
    cfg, echo = BenchConfig(**kw), text_echo(as_json)
    with stdout_for(as_json):
        res = run_bench(cfg, echo=echo)
        run_id = record_bench(hist.history, "bench-retrieval", dataclasses.asdict(cfg), res, started,
                              {"generator": cfg.generator, "embedder": cfg.embedder})
        echo_recorded(run_id, hist.history, echo)
    if as_json:
        emit_json({"figures": res, "run_id": run_id})


@bench.command("training")
@config_options(TrainingBenchConfig)
@config_options(HistoryConfig)
@json_option
def bench_training(as_json: bool, **kw):
    """LoRA tokens/s and peak memory of ragft's trainer vs a plain transformers.Trainer (same data, model, batch)."""
    from benchmarks.training import bench_training as run_training_bench
    from history.store import now_utc, record_bench

    hist, started = pop_config(HistoryConfig, kw), now_utc()
    cfg, echo = TrainingBenchConfig(**kw), text_echo(as_json)
    with stdout_for(as_json):
        res = run_training_bench(cfg, echo=echo)
        figures = {"ratio": res["ratio"], "memory_ratio": res["memory_ratio"], **res["summary"]}
        run_id = record_bench(hist.history, "bench-training", dataclasses.asdict(cfg), figures, started,
                              {"generator": cfg.generator})
        echo_recorded(run_id, hist.history, echo)
    if as_json:
        emit_json({"figures": figures, "runs": res["runs"], "run_id": run_id})


@bench.command("generation")
@config_options(GenerationBenchConfig)
@config_options(HistoryConfig)
@json_option
def bench_generation(as_json: bool, **kw):
    """Tokens/s of transformers, vllm and an OpenAI-compatible server on the same prompts, agreement, the roofline."""
    from benchmarks.generation import run_generation_bench
    from history.store import now_utc, record_bench

    hist, started = pop_config(HistoryConfig, kw), now_utc()
    cfg, echo = GenerationBenchConfig(**kw), text_echo(as_json)
    with stdout_for(as_json):
        res = run_generation_bench(cfg, echo=echo)
        figures = {k: v for k, v in res.items() if k.startswith("ratio_")}
        figures.update({f"{n}.{k}": v for n, r in res["engines"].items() for k, v in r.items()})
        figures.update({f"machine.{k}": v for k, v in res.get("machine", {}).items()})
        figures.update({f"roofline.{r['phase']}_batch{r['batch']}.{k}": r[k] for r in res.get("roofline", [])
                        for k in ("seconds", "gflop", "mbytes", "floor_s", "share", "x_weight_read")})
        run_id = record_bench(hist.history, "bench-generation", dataclasses.asdict(cfg), figures, started,
                              {"generator": cfg.generator})
        echo_recorded(run_id, hist.history, echo)
    if as_json:
        emit_json({"figures": res, "run_id": run_id})


@bench.command("all")
@config_options(BenchAllConfig)
@config_options(HistoryConfig)
@json_option
def bench_all(as_json: bool, **kw):
    """Retrieval, generation and training benchmarks with a fixed seed, recorded; --check BASELINE exits 1 on a regression."""
    from benchmarks.suite import bench_all as run_bench_all

    hist = pop_config(HistoryConfig, kw)
    with stdout_for(as_json):
        passed, out = run_bench_all(BenchAllConfig(**kw), hist.history, echo=text_echo(as_json))
    if as_json:
        emit_json({"passed": passed, **out})
    if not passed:
        sys.exit(1)


@bench.command("scale")
@config_options(ScaleConfig)
@config_options(HistoryConfig)
@json_option
def bench_scale(as_json: bool, **kw):
    """Index build time, size on disk, build memory, query p50/p95 of bm25, flat, hnsw at 10^3..10^5 documents; log-log plot."""
    from benchmarks.scale import run_scale
    from history.store import enabled, now_utc, record_run

    hist, started = pop_config(HistoryConfig, kw), now_utc()
    cfg, echo = ScaleConfig(**kw), text_echo(as_json)
    run_id = None
    with stdout_for(as_json):
        res = run_scale(cfg, echo=echo)
        if enabled(hist.history):
            rows = [{"name": f"{r['index']}@{r['docs']}", **r} for r in res["table"].to_dict("records")]
            rows += [{"name": f"embed@{r['docs']}", **r} for r in res["embedding"].to_dict("records")]
            run_id = record_run(hist.history, "bench-scale", dataclasses.asdict(cfg), rows, started_at=started,
                                name_key="name", models={"embedder": cfg.embedder}, run_dir=cfg.work)
            echo_recorded(run_id, hist.history, echo)
    if as_json:
        emit_json({"figures": res, "run_id": run_id})


@bench.command("ft-methods")
@config_options(FtMethodsConfig)
def bench_ft_methods(**kw):
    """Fine-tuning methods table (issue 16 item 9): no --run prints the one compare command; --run DIR tabulates it."""
    from benchmarks.ft_methods import command_text, write_table

    cfg = FtMethodsConfig(**kw)
    if not cfg.run:
        click.echo(command_text(cfg))
        return
    text, path = write_table(cfg)
    click.echo(text.rstrip())
    click.echo(f"\ntable: {path} (and {path.with_suffix('.csv')})")

"""The `ragft` command. Each subcommand maps its click options 1:1 onto one flat @dataclass config; the
field docstrings are the help text."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import sys
import textwrap
from pathlib import Path

import click

from compare.harness import CompareConfig
from corpora.errors import InputError
from corpora.stats import ListConfig, StatsConfig
from corpora.synth import SynthConfig
from corpora.validate import ValidateConfig
from finetune.train import FinetuneConfig
from benchmarks.retrieval import BenchConfig
from benchmarks.training import TrainingBenchConfig
from benchmarks.scale import ScaleConfig
from benchmarks.suite import BenchAllConfig
from history.gate import GateConfig
from history.store import HistoryConfig, RunsDiffConfig, RunsListConfig, RunsShowConfig
from finetune.lora import MergeConfig
from rag.evaluate import RetrievalEvalConfig
from rag.index import IndexConfig, IndexUpdateConfig
from rag.pipeline import AskConfig


def field_docs(cls) -> dict[str, str]:
    """The string literal under each dataclass field (attribute docstrings are not kept at run time)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body, docs = tree.body[0].body, {}
    for stmt, nxt in zip(body, body[1:]):
        if isinstance(stmt, ast.AnnAssign) and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
            docs[stmt.target.id] = nxt.value.value
    return docs


def config_options(cls, positional: tuple[str, ...] = ()):
    """Decorator: one click option per field of cls (positional ones become arguments)."""
    docs = field_docs(cls)

    def decorate(fn):
        for f in reversed(dataclasses.fields(cls)):
            if f.name in positional:
                fn = click.argument(f.name)(fn)
                continue
            flag = "--" + f.name.replace("_", "-")
            if isinstance(f.default, bool):
                fn = click.option(f"{flag}/--no-{f.name.replace('_', '-')}", f.name, default=f.default,
                                  show_default=True, help=docs.get(f.name))(fn)
            else:
                fn = click.option(flag, f.name, type=type(f.default), default=f.default, show_default=True,
                                  help=docs.get(f.name))(fn)
        return fn

    return decorate


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
def cli():
    """ragft: measure RAG against LoRA fine-tuning on the same corpus and base model."""


@cli.group(invoke_without_command=True)
@config_options(IndexConfig)
@click.pass_context
def index(ctx, **kw):
    """Chunk a corpus and build its BM25 + FAISS index: `ragft index --corpus X [options]`.

    `ragft index add FILE` / `ragft index update FILE` change an existing index in place instead.
    """
    cfg = IndexConfig(**kw)
    if ctx.invoked_subcommand is not None:
        if cfg != IndexConfig():
            raise InputError(f"options before `{ctx.invoked_subcommand}` are build options; give "
                             f"`ragft index {ctx.invoked_subcommand}` its own options after it")
        return
    from corpora import load_corpus
    from rag.index import build_index, default_index_dir

    corpus = load_corpus(cfg.corpus)
    built = build_index(corpus.docs, cfg)
    out = built.save(cfg.out or default_index_dir(cfg.corpus, cfg))
    m = built.manifest
    click.echo(f"{out}: {m['n_docs']} documents, {m['n_chunks']} chunks, dim {m['dim']}, {m['build_seconds']:.1f} s "
               f"(of which loading the embedder and warming up {m['timings']['load']:.1f} s)")


def change_index(mode: str, kw: dict) -> None:
    """`ragft index add|update`: load, change in place (rag/index.py: update_index), save; print the cost."""
    import time

    from corpora import load_docs
    from rag.index import default_index_dir, load_index, update_index

    cfg = IndexUpdateConfig(**kw)
    path = Path(cfg.index) if cfg.index else default_index_dir(cfg.corpus)
    t0 = time.perf_counter()
    idx = load_index(path)
    if cfg.device != "auto":
        idx.manifest["config"]["device"] = cfg.device
    load_s = time.perf_counter() - t0
    rec = update_index(idx, load_docs(Path(cfg.docs)), mode)
    t0 = time.perf_counter()
    idx.save(path)
    save_s = time.perf_counter() - t0
    m = idx.manifest
    build = m["build_seconds"] - m.get("timings", {}).get("load", 0.0)
    click.echo(f"{path}: {mode}: {len(rec['added'])} added, {len(rec['replaced'])} replaced, {rec['unchanged']} "
               f"unchanged; -{rec['chunks_removed']} +{rec['chunks_added']} chunks, now {m['n_chunks']}")
    click.echo(f"  {rec['seconds']:.3f} s = {rec['seconds'] / build:.1%} of the full build's {build:.2f} s (both "
               f"without loading and warming up the embedder: {rec['timings']['load']:.1f} s here); "
               f"index load {load_s:.2f} s, save {save_s:.2f} s")


@index.command("add")
@config_options(IndexUpdateConfig, positional=("docs",))
def index_add(**kw):
    """Add the documents of a JSONL file to an index (every id must be new); no full rebuild."""
    change_index("add", kw)


@index.command("update")
@config_options(IndexUpdateConfig, positional=("docs",))
def index_update(**kw):
    """Replace the documents of a JSONL file that share an id, add the others; unchanged ones are skipped."""
    change_index("update", kw)


@cli.command("retrieval-eval")
@config_options(RetrievalEvalConfig)
def retrieval_eval(**kw):
    """Recall@k, MRR and nDCG@10 of each retriever against the QA set's gold doc_ids (a pandas table)."""
    from rag.evaluate import format_retrieval_table, run_retrieval_eval

    cfg = RetrievalEvalConfig(**kw)
    table, _ = run_retrieval_eval(cfg, progress=True)
    info = table.attrs["index"]
    click.echo(f"{cfg.corpus}: {table['questions'].iloc[0]} questions ({cfg.split}, {cfg.kinds}), "
               f"{info['n_docs']} documents, {info['n_chunks']} chunks, {info['config']['chunker']} chunker, "
               f"{info['config']['sparse']}, faiss {info['config']['dense']}")
    click.echo(format_retrieval_table(table))


@cli.group()
def bench():
    """Speed benchmarks: figures and ratios measured side by side in one process."""


@bench.command("retrieval")
@config_options(BenchConfig)
@config_options(HistoryConfig)
def bench_retrieval(**kw):
    """bm25s vs rank-bm25, FAISS flat vs hnsw, embedding and generation throughput on a synthetic corpus."""
    from benchmarks.retrieval import run_bench
    from history.store import now_utc, record_bench

    hist, started = pop_config(HistoryConfig, kw), now_utc()
    cfg = BenchConfig(**kw)
    res = run_bench(cfg, echo=click.echo)
    echo_recorded(record_bench(hist.history, "bench-retrieval", dataclasses.asdict(cfg), res, started,
                               {"generator": cfg.generator, "embedder": cfg.embedder}), hist.history)


@bench.command("training")
@config_options(TrainingBenchConfig)
@config_options(HistoryConfig)
def bench_training(**kw):
    """LoRA tokens/s and peak memory of ragft's trainer vs a plain transformers.Trainer (same data, model, batch)."""
    from benchmarks.training import bench_training as run_training_bench
    from history.store import now_utc, record_bench

    hist, started = pop_config(HistoryConfig, kw), now_utc()
    cfg = TrainingBenchConfig(**kw)
    res = run_training_bench(cfg, echo=click.echo)
    figures = {"ratio": res["ratio"], "memory_ratio": res["memory_ratio"], **res["summary"]}
    echo_recorded(record_bench(hist.history, "bench-training", dataclasses.asdict(cfg), figures, started,
                               {"generator": cfg.generator}), hist.history)


@bench.command("all")
@config_options(BenchAllConfig)
@config_options(HistoryConfig)
def bench_all_cmd(**kw):
    """Retrieval, generation and training benchmarks with a fixed seed, recorded; --check BASELINE exits 1 on a regression."""
    from benchmarks.suite import bench_all

    hist = pop_config(HistoryConfig, kw)
    passed, _ = bench_all(BenchAllConfig(**kw), hist.history, echo=click.echo)
    if not passed:
        sys.exit(1)


@bench.command("scale")
@config_options(ScaleConfig)
@config_options(HistoryConfig)
def bench_scale_cmd(**kw):
    """Index build time, size on disk, build memory, query p50/p95 of bm25, flat, hnsw at 10^3..10^5 documents; log-log plot."""
    from benchmarks.scale import run_scale
    from history.store import enabled, now_utc, record_run

    hist, started = pop_config(HistoryConfig, kw), now_utc()
    cfg = ScaleConfig(**kw)
    res = run_scale(cfg, echo=click.echo)
    if enabled(hist.history):
        rows = [{"name": f"{r['index']}@{r['docs']}", **r} for r in res["table"].to_dict("records")]
        rows += [{"name": f"embed@{r['docs']}", **r} for r in res["embedding"].to_dict("records")]
        echo_recorded(record_run(hist.history, "bench-scale", dataclasses.asdict(cfg), rows, started_at=started,
                                 name_key="name", models={"embedder": cfg.embedder}, run_dir=cfg.work), hist.history)


@cli.command()
@config_options(AskConfig, positional=("question",))
def ask(**kw):
    """Answer one question with retrieval (or --retriever none) and the generator."""
    from corpora import load_corpus
    from rag.generate import load_generator
    from rag.index import IndexConfig as IC, load_index, open_or_build
    from rag.pipeline import answer_questions

    cfg = AskConfig(**kw)
    if cfg.retriever not in ("bm25", "dense", "hybrid", "none"):
        raise InputError(f"unknown retriever {cfg.retriever!r}: choose one of bm25, dense, hybrid, none")
    index = None
    if cfg.retriever != "none":
        if cfg.index:
            index = load_index(cfg.index)
        else:
            # allow_updated: an index changed by `ragft index add/update` is this corpus's index, as updated
            index = open_or_build(load_corpus(cfg.corpus).docs, IC(corpus=cfg.corpus, device=cfg.device),
                                  allow_updated=True)
    gen = load_generator(cfg.generator, cfg.adapter or None, cfg.device)
    try:
        rec = answer_questions(gen, index, [cfg.question], cfg.retriever, cfg.top_k, cfg.max_new_tokens,
                               settings=cfg.search(), context_tokens=cfg.context_tokens)[0]
    except ValueError as e:
        raise InputError(str(e)) from None
    if rec.get("rewrite"):
        click.echo(f"  search query: {rec['rewrite']}", err=True)
    for doc_id, score in zip(rec["retrieved_ids"], rec["retrieved_scores"]):
        click.echo(f"  [{doc_id}] score {score:.4f}", err=True)
    if cfg.retriever != "none" and not rec["retrieved_ids"]:
        click.echo("  no documents retrieved" + (f" with a score >= {cfg.min_score}" if cfg.min_score > 0 else ""),
                   err=True)
    click.echo(rec["answer"])


@cli.command()
@config_options(FinetuneConfig)
def finetune(**kw):
    """Fine-tune on the corpus's train split: adapter (peft format) or full model, + cost.json."""
    from finetune.train import train

    rec = train(FinetuneConfig(**kw))
    evl = f", eval loss {rec['final_eval_loss']:.3f}" if rec["final_eval_loss"] is not None else ""
    click.echo(f"{rec['adapter']}: {rec['method']} on {','.join(rec['data'])}, {rec['steps']} steps, "
               f"{rec['train_seconds']:.0f} s, {rec['tokens_per_second']:.0f} tokens/s, "
               f"final loss {rec['final_loss']:.3f}{evl}")


@cli.command()
@config_options(MergeConfig)
def merge(**kw):
    """Fold a LoRA/DoRA adapter into the base model and save a standalone model directory."""
    from finetune.lora import merge as merge_adapter

    click.echo(f"{merge_adapter(MergeConfig(**kw))}: standalone model (use it with --generator)")


@cli.command("compare")
@config_options(CompareConfig)
@config_options(GateConfig)
@config_options(HistoryConfig)
def compare_cmd(**kw):
    """Run base, RAG, fine-tuned and fine-tuned+RAG systems over a QA split; print the table and a decision.

    Recorded in the run history; with --baseline and --fail-on, exit 1 when a metric got significantly worse.
    """
    from compare.harness import run
    from history.store import now_utc

    gate, hist = pop_config(GateConfig, kw), pop_config(HistoryConfig, kw)
    baseline = load_gate_baseline(gate, hist.history)  # bad --fail-on or baseline: fail before any model runs
    started = now_utc()
    cfg = CompareConfig(**kw)
    records = run(cfg)
    out = Path(records.attrs["run_dir"])
    show_run(out)
    if not finish_compare(cfg, gate, hist, records, out, started, baseline):
        sys.exit(1)


def pop_config(cls, kw: dict):
    """Take cls's fields out of a command's keyword arguments (commands that combine two configs)."""
    return cls(**{f.name: kw.pop(f.name) for f in dataclasses.fields(cls)})


def echo_recorded(run_id: int | None, history: str) -> None:
    if run_id is not None:
        click.echo(f"run history: recorded as run {run_id} in {history} (`ragft runs show {run_id}`)")


def load_gate_baseline(gate: GateConfig, history: str):
    from history.gate import load_answers, parse_fail_on

    if gate.fail_on:
        parse_fail_on(gate.fail_on)
        if not gate.baseline:
            raise InputError("--fail-on needs --baseline (a run id from `ragft runs list` or a run directory)")
    return load_answers(gate.baseline, history) if gate.baseline else None


def finish_compare(cfg, gate: GateConfig, hist: HistoryConfig, records, out: Path, started: str, baseline) -> bool:
    """Record the run; against a baseline print the paired diff or run the gate. -> False when the gate failed."""
    import pandas as pd

    from history.gate import answers_from_records, format_diff, paired_diff, run_gate
    from history.store import enabled, record_compare

    if enabled(hist.history):
        summary = pd.read_csv(out / "summary.csv") if (out / "summary.csv").is_file() else None
        if summary is None:
            from compare.harness import summarize

            summary = summarize(records, seed=cfg.seed)
        echo_recorded(record_compare(hist.history, {**dataclasses.asdict(cfg), **dataclasses.asdict(gate)}, records,
                                     summary, started_at=started, run_dir=str(out)), hist.history)
    if baseline is None:
        return True
    new = answers_from_records(records)
    if not gate.fail_on:
        diff = paired_diff(baseline[0], new, seed=cfg.seed)
        click.echo(f"\nagainst {baseline[1]}:\n" + format_diff(diff).to_string(index=False))
        return True
    passed, lines, _ = run_gate(baseline[0], new, gate.fail_on, gate.alpha, cfg.seed)
    click.echo(f"\nquality gate against {baseline[1]} ({gate.fail_on}):")
    for line in lines:
        click.echo(line)
    return passed


@cli.command("report")
@click.argument("run_dir", type=click.Path(file_okay=False))
def report_cmd(run_dir):
    """Re-render a compare run directory's tables, plots, report.md and report.html from its saved records."""
    from compare.report import render

    render(run_dir)
    show_run(Path(run_dir))


def show_run(out: Path) -> None:
    click.echo((out / "summary.txt").read_text().rstrip())
    click.echo("\n" + (out / "decision.txt").read_text().rstrip())
    click.echo(f"\nreport: {out / 'report.html'} (and report.md, records, tables, plots/)")


@cli.group()
def runs():
    """The run history (SQLite, ./ragft-runs.db): every compare and bench run with config, commit, machine, summary."""


@runs.command("list")
@config_options(RunsListConfig)
def runs_list(**kw):
    """Recorded runs, newest first."""
    from history.store import list_runs

    cfg = RunsListConfig(**kw)
    df = list_runs(cfg.history, cfg.kind, cfg.limit)
    click.echo(df.to_string(index=False, float_format=lambda v: f"{v:.0f}") if len(df) else "(no runs recorded)")


@runs.command("show")
@config_options(RunsShowConfig, positional=("run_id",))
def runs_show(**kw):
    """One run: config and its hash, git commit, corpus hash, models, machine, summary rows."""
    from history.store import show_text

    cfg = RunsShowConfig(**kw)
    click.echo(show_text(cfg.history, cfg.run_id))


@runs.command("diff")
@config_options(RunsDiffConfig, positional=("old", "new"))
def runs_diff(**kw):
    """Metric deltas between two runs (ids or compare run directories) with 95% CIs and which are significant."""
    from history.store import diff_text

    click.echo(diff_text(RunsDiffConfig(**kw))[0])


@cli.group("corpora")
def corpora_group():
    """Shipped corpora and users' data: list, stats, validate, and the synthetic corpus generator."""


@corpora_group.command("list")
@config_options(ListConfig)
def corpora_list(**kw):
    """One row per shipped corpus: documents, questions by split and kind, shares, updates."""
    from corpora.stats import list_table

    click.echo(list_table().to_string(index=False))


@corpora_group.command("stats")
@config_options(StatsConfig, positional=("corpus",))
def corpora_stats(**kw):
    """Question counts by kind and split, % unanswerable and multi_hop, new test facts, updates."""
    from corpora import load_corpus
    from corpora.stats import format_stats

    click.echo(format_stats(load_corpus(StatsConfig(**kw).corpus)))


@corpora_group.command("validate")
@config_options(ValidateConfig, positional=("path",))
def corpora_validate(**kw):
    """Report every problem of a corpus as file:line: message (exit 2), or one OK line (exit 0)."""
    from corpora.validate import summary, validate

    cfg = ValidateConfig(**kw)
    corpus, problems = validate(cfg.path, cfg.jaccard)
    for p in problems:
        click.echo(str(p))
    if problems:
        click.echo(f"ragft: {len(problems)} problem{'s' * (len(problems) != 1)} in {cfg.path}", err=True)
        sys.exit(2)
    click.echo(summary(corpus))


@corpora_group.command("synth")
@config_options(SynthConfig)
def corpora_synth(**kw):
    """Write a seeded fictional corpus (docs.jsonl + qa.jsonl) of any size: same seed, same bytes."""
    from corpora.synth import generate

    rec = generate(SynthConfig(**kw), progress=True)
    click.echo(f"{rec['out']}: {rec['docs']} documents, {rec['questions']} questions, {rec['seconds']:.1f} s")


def main(argv: list[str] | None = None) -> None:
    try:
        rc = cli.main(args=argv, prog_name="ragft", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("ragft: aborted", err=True)
        sys.exit(130)
    except click.exceptions.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except InputError as e:
        click.echo(f"ragft: error: {e}", err=True)
        sys.exit(2)
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":
    main()

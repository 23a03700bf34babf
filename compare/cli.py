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
from benchmarks.training import TrainingBenchConfig
from finetune.train import FinetuneConfig
from finetune.lora import MergeConfig
from benchmarks.retrieval import BenchConfig
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
        click.echo("  no documents above the score threshold", err=True)
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


@cli.group()
def bench():
    """Speed benchmarks: figures and ratios measured side by side in one process."""


@bench.command("retrieval")
@config_options(BenchConfig)
def bench_retrieval(**kw):
    """bm25s vs rank-bm25, FAISS flat vs hnsw, embedding and generation throughput on a synthetic corpus."""
    from benchmarks.retrieval import run_bench

    run_bench(BenchConfig(**kw), echo=click.echo)


@bench.command("training")
@config_options(TrainingBenchConfig)
def bench_training(**kw):
    """LoRA tokens/s and peak memory of ragft's trainer vs a plain transformers.Trainer (same data, model, batch)."""
    from benchmarks.training import bench_training as run_training_bench

    run_training_bench(TrainingBenchConfig(**kw), echo=click.echo)


@cli.command("compare")
@config_options(CompareConfig)
def compare_cmd(**kw):
    """Run base, RAG, fine-tuned and fine-tuned+RAG systems over a QA split; print the table and a decision."""
    from compare.harness import run

    records = run(CompareConfig(**kw))
    show_run(Path(records.attrs["run_dir"]))


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

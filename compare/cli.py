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
from rag.index import IndexConfig
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


@cli.command()
@config_options(IndexConfig)
def index(**kw):
    """Chunk a corpus and build its BM25 + FAISS index."""
    from corpora import load_corpus
    from rag.index import build_index, default_index_dir

    cfg = IndexConfig(**kw)
    corpus = load_corpus(cfg.corpus)
    built = build_index(corpus.docs, cfg)
    out = built.save(cfg.out or default_index_dir(cfg.corpus))
    m = built.manifest
    click.echo(f"{out}: {m['n_docs']} documents, {m['n_chunks']} chunks, dim {m['dim']}, {m['build_seconds']:.1f} s")


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
            index = open_or_build(load_corpus(cfg.corpus).docs, IC(corpus=cfg.corpus, device=cfg.device))
    gen = load_generator(cfg.generator, cfg.adapter or None, cfg.device)
    try:
        rec = answer_questions(gen, index, [cfg.question], cfg.retriever, cfg.top_k, cfg.max_new_tokens)[0]
    except ValueError as e:
        raise InputError(str(e)) from None
    for doc_id, score in zip(rec["retrieved_ids"], rec["retrieved_scores"]):
        click.echo(f"  [{doc_id}] score {score:.4f}", err=True)
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

"""`ragft corpora list | stats | validate | synth | make-qa` (corpora/)."""

from __future__ import annotations

import sys

import click

from cli.make_qa import make_qa_cmd
from cli.options import config_options
from cli.output import emit_json, json_option
from corpora.stats import ListConfig, StatsConfig
from corpora.synth import SynthConfig
from corpora.validate import ValidateConfig


@click.group()
def corpora():
    """Shipped corpora and users' data: list, stats, validate, synth, make-qa."""


@corpora.command("list")
@config_options(ListConfig)
def corpora_list(**kw):
    """One row per shipped corpus: documents, questions by split and kind, shares, updates."""
    from corpora.stats import list_table

    click.echo(list_table().to_string(index=False))


@corpora.command("stats")
@config_options(StatsConfig, positional=("corpus",))
@json_option
def corpora_stats(as_json: bool, **kw):
    """Question counts by kind and split, % unanswerable and multi_hop, new test facts, updates."""
    from corpora import load_corpus
    from corpora.stats import corpus_summary, format_stats, kind_split_table

    corpus = load_corpus(StatsConfig(**kw).corpus)
    if not as_json:
        click.echo(format_stats(corpus))
        return
    by_kind = kind_split_table(corpus.qa).to_dict("index") if corpus.qa else {}
    emit_json({**corpus_summary(corpus), "path": str(corpus.path), "by_kind_and_split": by_kind})


@corpora.command("validate")
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


@corpora.command("synth")
@config_options(SynthConfig)
def corpora_synth(**kw):
    """Write a seeded fictional corpus (docs.jsonl + qa.jsonl) of any size: same seed, same bytes."""
    from corpora.synth import generate

    rec = generate(SynthConfig(**kw), progress=True)
    click.echo(f"{rec['out']}: {rec['docs']} documents, {rec['questions']} questions, {rec['seconds']:.1f} s")


corpora.add_command(make_qa_cmd, "make-qa")

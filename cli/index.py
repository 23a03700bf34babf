"""`ragft index`, `ragft index add FILE`, `ragft index update FILE` (rag/index.py)."""

from __future__ import annotations

import click

from cli.options import config_options
from corpora.errors import InputError
from rag.index import IndexConfig, IndexUpdateConfig


@click.group(invoke_without_command=True)
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
    from corpora.outputs import prepare_out
    from rag.index import build_index, default_index_dir

    out = prepare_out(cfg.out or default_index_dir(cfg.corpus, cfg), "index")  # before the build (corpora/outputs.py)
    built = build_index(load_corpus(cfg.corpus).docs, cfg)
    out = built.save(out)
    m = built.manifest
    click.echo(f"{out}: {m['n_docs']} documents, {m['n_chunks']} chunks, dim {m['dim']}, {m['build_seconds']:.1f} s "
               f"(of which loading the embedder and warming up {m['timings']['load']:.1f} s)")


def echo_change(mode: str, kw: dict) -> None:
    """Change the index (rag/index.py: change_index) and print what it cost."""
    from rag.index import change_index

    res = change_index(IndexUpdateConfig(**kw), mode)
    rec, build = res["update"], res["build_seconds"]
    click.echo(f"{res['path']}: {mode}: {len(rec['added'])} added, {len(rec['replaced'])} replaced, "
               f"{rec['unchanged']} unchanged; -{rec['chunks_removed']} +{rec['chunks_added']} chunks, "
               f"now {res['n_chunks']}")
    click.echo(f"  {rec['seconds']:.3f} s = {rec['seconds'] / build:.1%} of the full build's {build:.2f} s (both "
               f"without loading and warming up the embedder: {rec['timings']['load']:.1f} s here); "
               f"index load {res['load_seconds']:.2f} s, save {res['save_seconds']:.2f} s")


@index.command("add")
@config_options(IndexUpdateConfig, positional=("docs",))
def index_add(**kw):
    """Add the documents of a JSONL file to an index (every id must be new); no full rebuild."""
    echo_change("add", kw)


@index.command("update")
@config_options(IndexUpdateConfig, positional=("docs",))
def index_update(**kw):
    """Replace the documents of a JSONL file that share an id, add the others; unchanged ones are skipped."""
    echo_change("update", kw)

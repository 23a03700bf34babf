"""`ragft retrieval-eval` (rag/evaluate.py)."""

from __future__ import annotations

import click

from cli.options import config_options
from cli.output import emit_json, json_option, stdout_for
from rag.evaluate import RetrievalEvalConfig


@click.command()
@config_options(RetrievalEvalConfig)
@json_option
def retrieval_eval(as_json: bool, **kw):
    """Recall@k, MRR and nDCG@10 of each retriever against the QA set's gold doc_ids."""
    from rag.evaluate import format_retrieval_table, run_retrieval_eval

    cfg = RetrievalEvalConfig(**kw)
    with stdout_for(as_json):
        table, _ = run_retrieval_eval(cfg, progress=True)
    info = table.attrs["index"]
    if as_json:
        emit_json({"corpus": cfg.corpus, "split": cfg.split, "kinds": cfg.kinds, "index": info, "rows": table})
        return
    click.echo(f"{cfg.corpus}: {table['questions'].iloc[0]} questions ({cfg.split}, {cfg.kinds}), "
               f"{info['n_docs']} documents, {info['n_chunks']} chunks, {info['config']['chunker']} chunker, "
               f"{info['config']['sparse']}, faiss {info['config']['dense']}")
    click.echo(format_retrieval_table(table))

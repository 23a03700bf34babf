"""`ragft ask QUESTION` (rag/pipeline.py): the retrieved ids and scores on stderr, the answer on stdout."""

from __future__ import annotations

import click

from cli.options import config_options
from corpora.errors import InputError
from rag.pipeline import AskConfig


@click.command()
@config_options(AskConfig, positional=("question",))
def ask(**kw):
    """Answer one question with retrieval (or --retriever none) and the generator."""
    from corpora import load_corpus
    from rag.generate import load_generator
    from rag.index import IndexConfig, load_index, open_or_build
    from rag.pipeline import answer_questions
    from rag.rank import ANSWER_RETRIEVERS

    cfg = AskConfig(**kw)
    if cfg.retriever not in ANSWER_RETRIEVERS:
        raise InputError(f"unknown retriever {cfg.retriever!r}: choose one of {', '.join(ANSWER_RETRIEVERS)}")
    index = None
    if cfg.retriever != "none":
        if cfg.index:
            index = load_index(cfg.index)
        else:
            # allow_updated: an index changed by `ragft index add/update` is this corpus's index, as updated
            index = open_or_build(load_corpus(cfg.corpus).docs, IndexConfig(corpus=cfg.corpus, device=cfg.device),
                                  allow_updated=True)
    from rag.engine import open_engine, with_adapter

    gen = open_engine(cfg, [cfg.adapter] if cfg.adapter else [])  # --engine vllm|openai; None: transformers
    gen = with_adapter(gen, cfg.adapter or None) if gen else load_generator(cfg.generator, cfg.adapter or None,
                                                                             cfg.device, decode=cfg.decode)
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

"""`ragft corpora make-qa DOCS --out DIR` (qagen/build.py); registered in the `corpora` group (cli/corpora.py)."""

from __future__ import annotations

import click

from cli.options import config_options
from qagen.config import MakeQAConfig


def summary_lines(s: dict) -> list[str]:
    """The run's summary as printed: counts per kind and split, rejections per filter, wall time."""
    if s.get("dry_run"):
        return [
            f"make-qa dry run: {s['documents']} documents ({s['held_back']} held back), {s['chunks']} chunks",
            f"  pair generation: {s['pair_calls']} calls, {s['pair_prompt_tokens']} prompt tokens"
            f" ({s['pair_calls_cached']} calls cached)",
            f"  round trip: at most {s['round_trip_calls_max']} calls, ~{s['round_trip_prompt_tokens_max']} prompt tokens",
            f"  paraphrase: at most {s['paraphrase_calls_max']} calls, ~{s['paraphrase_prompt_tokens_max']} prompt "
            f"tokens; its round trip at most {s['paraphrase_round_trip_calls_max']} calls, "
            f"~{s['paraphrase_round_trip_prompt_tokens_max']} prompt tokens",
            "  new tokens per call at most: " + ", ".join(f"{k} {v}" for k, v in s["max_new_tokens"].items()),
            "nothing written",
        ]
    sh = s["shares"]
    rej = ", ".join(f"{k} {v}" for k, v in s["rejected"].items())
    lines = [
        f"{s['out']}: {s['documents']} documents ({s['held_back']} held back), {s['chunks']} chunks, "
        f"{s['candidates']} candidate pairs, {s['kept']} kept",
        f"  rejected (first failing filter): {rej}",
        f"  questions: {sh['train']} train, {sh['test']} test = {sh['trained']} trained-fact paraphrases + "
        f"{sh['doc_only']} document-only ({sh['doc_only_share']:.0%} of test facts) + {sh['unanswerable']} "
        f"unanswerable ({sh['unanswerable_share']:.0%} of test)",
        f"  generator calls: {s['generated_calls']} made, {s['cached_calls']} from the cache; "
        f"{s['seconds']:.0f} s",
    ]
    if sh["test"] and sh["unanswerable"] == 0:
        lines.append("  warning: no unanswerable question survived: raise --holdout or --questions-per-chunk")
    lines += [f"  validate: {p}" for p in s["problems"]] or ["  validate: OK"]
    return lines


@click.command("make-qa")
@config_options(MakeQAConfig, positional=("docs",))
def make_qa_cmd(**kw):
    """Write a QA set from documents: generated pairs, filtered, shaped for RAG vs fine-tuning (DIR: a corpus)."""
    from qagen.build import make_qa

    for line in summary_lines(make_qa(MakeQAConfig(**kw))):
        click.echo(line)

"""`ragft corpora list` and `ragft corpora stats NAME`: question counts by kind and split, and the shares the
issue asks for (unanswerable >= 15%, multi_hop >= 10%, >= 25% of answerable test questions on facts with no
train question, i.e. paraphrase_of null)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from corpora import DEFAULT_CORPUS, KINDS, SPLITS, Corpus, load_corpus, shipped_corpora
from corpora.config import check


@dataclass
class ListConfig:
    """No options: lists the shipped corpora."""

    def __post_init__(self):
        check(self)


@dataclass
class StatsConfig:
    corpus: str = DEFAULT_CORPUS
    """Shipped corpus name or a path: native folder, BEIR folder, SQuAD .json, .txt/.md folder (default atlantis)."""

    def __post_init__(self):
        check(self)


def kind_split_table(questions: list[dict]) -> pd.DataFrame:
    """Rows: kinds + total; columns: train, test, total. Counts of questions."""
    df = pd.DataFrame(questions, columns=["kind", "split"])
    table = pd.crosstab(df["kind"], df["split"], margins=True, margins_name="total")
    return table.reindex(index=[*KINDS, "total"], columns=[*SPLITS, "total"], fill_value=0).rename_axis(
        index="kind", columns=None)


def corpus_summary(corpus: Corpus) -> dict:
    """One flat record of counts and shares (percent, 1 decimal) for a corpus."""
    qa = corpus.qa
    n = len(qa)
    answerable_test = [q for q in qa if q["split"] == "test" and q["kind"] != "unanswerable"]
    new_facts = [q for q in answerable_test if q.get("paraphrase_of") is None]
    old_ids = {d["id"] for d in corpus.docs}

    def pct(k: int, total: int) -> float:
        return round(100 * k / total, 1) if total else float("nan")

    return {
        "corpus": corpus.name, "format": corpus.fmt, "docs": len(corpus.docs), "questions": n,
        "train": sum(q["split"] == "train" for q in qa), "test": sum(q["split"] == "test" for q in qa),
        **{k: sum(q["kind"] == k for q in qa) for k in KINDS},
        "unanswerable_pct": pct(sum(q["kind"] == "unanswerable" for q in qa), n),
        "multi_hop_pct": pct(sum(q["kind"] == "multi_hop" for q in qa), n),
        "answerable_test": len(answerable_test), "test_new_facts": len(new_facts),
        "test_new_facts_pct": pct(len(new_facts), len(answerable_test)),
        "update_docs": len(corpus.updates), "update_docs_new": sum(u["id"] not in old_ids for u in corpus.updates),
        "qa_updates": len(corpus.qa_updates),
        "qa_updates_train": sum(q["split"] == "train" for q in corpus.qa_updates),
        "qa_updates_test": sum(q["split"] == "test" for q in corpus.qa_updates),
    }


def format_stats(corpus: Corpus) -> str:
    """The `ragft corpora stats` text: the kind x split table, then the shares and the update counts."""
    s = corpus_summary(corpus)
    lines = [f"{corpus.name} ({corpus.fmt}, {corpus.path}): {s['docs']} documents, {s['questions']} questions"
             + (" (retrieval only: no gold answers)" if corpus.retrieval_only else "")]
    if corpus.qa:
        lines += ["", kind_split_table(corpus.qa).to_string(), "",
                  f"unanswerable: {s['unanswerable_pct']}%   multi_hop: {s['multi_hop_pct']}%",
                  f"answerable test questions with paraphrase_of null (facts with no train question): "
                  f"{s['test_new_facts']}/{s['answerable_test']} ({s['test_new_facts_pct']}%)"]
    if corpus.updates or corpus.qa_updates:
        lines += [f"updates: {s['update_docs']} documents ({s['update_docs'] - s['update_docs_new']} replace, "
                  f"{s['update_docs_new']} new); {s['qa_updates']} update questions "
                  f"({s['qa_updates_train']} train, {s['qa_updates_test']} test)"]
    return "\n".join(lines)


def list_table() -> pd.DataFrame:
    """One row per shipped corpus."""
    cols = ["corpus", "docs", "questions", "train", "test", *KINDS, "unanswerable_pct", "multi_hop_pct",
            "test_new_facts_pct", "update_docs", "qa_updates"]
    return pd.DataFrame([corpus_summary(load_corpus(name)) for name in shipped_corpora()], columns=cols)

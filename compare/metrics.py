"""Per-question scores. Pure functions of (answer, gold answers, kind, retrieved context).

Correctness is "the normalised answer contains a normalised gold answer" (SQuAD normalisation:
lower-case, punctuation and articles stripped); exact match and token F1 (SQuAD v1.1) are kept beside it.
Those answer-only scores (score_answer and its helpers) live in corpora/text.py and are re-exported here;
this file adds what needs the retrieval (grounding, gold recall, staleness, failure attribution) and
build_records, which scores every (system, question) of a run into one DataFrame row.
Hallucination counts abstention as the right answer to an unanswerable question, unlike RAGAS-style
faithfulness, which scores an abstention 0.
CRAG score (Yang et al. 2024, "CRAG - Comprehensive RAG Benchmark"): +1 correct, 0 abstained, -1 wrong.
"""

from __future__ import annotations

import math

# Answer matching and scoring live at the bottom layer (finetune/evaluate.py scores with them too); re-exported.
from corpora.text import (ABSTAIN_PHRASES, contains_gold, crag_score, exact_match, is_abstention,  # noqa: F401
                          normalize_answer, score_answer, token_f1)

# Function words left out of grounding: they occur in any context and say nothing about support.
STOPWORDS = frozenset("""
a an the and or but of in on at to for from by with as is are was were be been being it its this that these
those he she they them his her their there here who whom whose what which when where why how i you we our your
me my not no yes so than then too very can could would should will shall may might must do does did has have
had into onto about after before over under between also only just one
""".split())

# Failure labels for wrong answers (empty string for a correct one).
FAILURES = ("retrieval_miss", "generator_error", "parametric_hallucination", "declined", "stale")


def content_words(text: str) -> list[str]:
    """Normalised tokens without function words (numbers kept: '1632' is content)."""
    return [w for w in normalize_answer(text).split() if w not in STOPWORDS]


def grounding(answer: str, context: str | None) -> float:
    """Share of the answer's content words found in the retrieved context (NaN: no context or nothing to check).

    An abstention or an answer of only function words has nothing to ground: NaN, left out of means.
    """
    if context is None or is_abstention(answer):
        return math.nan
    words = content_words(answer)
    if not words:
        return math.nan
    ctx = set(normalize_answer(context).split())
    return sum(w in ctx for w in words) / len(words)


def gold_retrieved(gold_doc_ids: list[str], retrieved_ids: list[str]) -> bool | None:
    """A gold document is among the retrieved chunks (None: closed-book, nothing retrieved by design)."""
    if not retrieved_ids:
        return None
    return bool(set(gold_doc_ids) & set(retrieved_ids))


def gold_recall(gold_doc_ids: list[str], retrieved_ids: list[str]) -> float:
    """Share of the gold documents retrieved (multi-hop needs all of them). NaN for closed-book or no gold doc."""
    if not retrieved_ids or not gold_doc_ids:
        return math.nan
    return len(set(gold_doc_ids) & set(retrieved_ids)) / len(set(gold_doc_ids))


def is_stale(answer: str, old_answers: list[str] | None, golds: list[str]) -> bool:
    """The answer gives a fact that was true before the update (an old answer) and not the new one."""
    return bool(old_answers) and contains_gold(answer, old_answers) and not contains_gold(answer, golds)


def attribute_failure(score: dict, kind: str, retrieval: bool, gold_recall_: float, stale: bool = False) -> str:
    """Why a wrong answer is wrong ('' when correct).

    stale:                    the answer is a fact the update replaced (freshness experiment)
    retrieval_miss:           a retrieval arm did not retrieve every gold document (answerable questions)
    generator_error:          the gold documents were retrieved (or the question is unanswerable) and the
                              generator still answered wrong
    parametric_hallucination: closed-book, confident and wrong
    declined:                 closed-book, declined an answerable question (wrong, but not a hallucination)
    """
    if score["correct"]:
        return ""
    if stale:
        return "stale"
    if retrieval:
        if kind != "unanswerable" and not (gold_recall_ >= 1.0):
            return "retrieval_miss"
        return "generator_error"
    return "declined" if score["abstained"] else "parametric_hallucination"


# ---- one record per (system, question) -----------------------------------------------------------------------

def build_records(systems: list, questions: list[dict], answers: dict[str, list[dict]], adapters: dict,
                  index_meta: dict | None, leaks: dict, old_answers: dict | None = None):
    """Join questions, cached answers and scores -> DataFrame, one row per (system, question), systems in
    config order (systems: compare/systems.py System)."""
    import pandas as pd

    records = []
    for s in systems:
        by_qid = {a["qid"]: a for a in answers[s.name]}
        for q in questions:
            a = dict(by_qid[q["id"]])
            a.pop("qid")
            a.pop("qsha", None)  # the cache's question hash (compare/cache.py), not a record column
            rec = {"system": s.name, "family": s.family, "qid": q["id"], "kind": q["kind"],
                   "question": q["question"], "gold": q["answers"], "gold_doc_ids": q["doc_ids"], **a}
            olds = (old_answers or {}).get(q["id"])
            if olds is not None:
                rec["old_answers"] = olds
            rec.update(score_record(rec, s.uses_retrieval, olds))
            rec["train_seconds"] = float(adapters[s.adapter_key].get("train_seconds", 0.0)) if s.uses_adapter else 0.0
            rec["index_seconds"] = float(index_meta["build_seconds"]) if (s.uses_retrieval and index_meta) else 0.0
            rec["leak"] = q["id"] in leaks
            rec["leak_train_id"] = leaks.get(q["id"], {}).get("train_id", "")
            records.append(rec)
    return pd.DataFrame(records)


def score_record(rec: dict, retrieval: bool, old_answers: list[str] | None = None) -> dict:
    """Every per-question score of one answer record (the functions above)."""
    s = score_answer(rec["answer"], rec["gold"], rec["kind"])
    s["grounding"] = grounding(rec["answer"], rec.get("context")) if retrieval else math.nan
    s["gold_retrieved"] = gold_retrieved(rec["gold_doc_ids"], rec["retrieved_ids"]) if retrieval else None
    s["gold_recall"] = gold_recall(rec["gold_doc_ids"], rec["retrieved_ids"]) if retrieval else math.nan
    s["stale"] = is_stale(rec["answer"], old_answers, rec["gold"])
    s["failure"] = attribute_failure(s, rec["kind"], retrieval, s["gold_recall"], s["stale"])
    return s

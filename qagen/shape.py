"""The RAG-vs-fine-tuning shape of a generated QA set (issue 14, item 2). Pure.

Each kept fact (a pair from an output document) becomes one of:
  trained        a train question (the generated one) + a test question (the generator's paraphrase of it,
                 same answer, token Jaccard below the leakage threshold, paraphrase_of -> the train id):
                 fine-tuning saw the fact, the test asks it in other words
  document-only  a test question only: the fact is in the documents, never trained; >= 25% of test facts
  train-only     a train question only (facts beyond what the unanswerable share lets the test hold)
Each kept pair from a held-back document (left out of the output corpus, so its answer is absent) becomes an
*unanswerable* question, answers [] and no doc_ids: >= 15% of test questions, at most 25%; the rest go to
train, where fine-tuning learns to abstain ("I don't know", finetune/data.py).

The shares hold by construction whenever at least one unanswerable and one fact survived:
  test facts m <= 17/3 * unanswerable  <=>  unanswerable / (m + unanswerable) >= 0.15
  document-only = max(ceil(m / 4), m - facts with a paraphrase)  =>  document-only / m >= 0.25
"""

from __future__ import annotations

import random

MIN_DOC_ONLY = 0.25  # document-only share of test facts (at least)
MIN_UNANSWERABLE = 0.15  # unanswerable share of test questions (at least)
MAX_UNANSWERABLE = 0.25  # ... and at most: the rest train abstention


def plan(facts: list[dict], unanswerable: list[dict], seed: int) -> dict[str, list[dict]]:
    """Assign candidates to roles -> {"trained", "doc_only", "train_only", "unanswerable_test",
    "unanswerable_train"}, each in input order. facts: kept pairs of output documents, each with "paraphrase"
    (a valid test rewording or None); unanswerable: kept pairs of held-back documents. Seeded: which facts
    are trained and which document-only, which unanswerable pairs are tested."""
    rng = random.Random(seed)
    order = list(range(len(facts)))
    rng.shuffle(order)
    n, u = len(facts), len(unanswerable)
    m = n if u == 0 else min(n, u * 17 // 3)  # test facts (17 u >= 3 m: unanswerable >= 15% of the test)
    with_para = [i for i in order if facts[i].get("paraphrase")]
    without = [i for i in order if not facts[i].get("paraphrase")]
    doc_only_n = min(m, max((m + 3) // 4, m - len(with_para)))  # ceil(m / 4): >= 25% of test facts
    trained = with_para[:m - doc_only_n]
    rest = without + with_para[m - doc_only_n:]  # non-paraphrased first: they cannot be trained-and-tested
    doc_only, train_only = rest[:doc_only_n], rest[doc_only_n:]
    u_order = list(range(u))
    rng.shuffle(u_order)
    need = (3 * m + 16) // 17  # ceil(3 m / 17)
    u_test = min(u, max(need, m // 3))  # u <= m / 3: <= 25% (MAX_UNANSWERABLE) unless 15% needs more
    pick = lambda idx, items: [items[i] for i in sorted(idx)]  # noqa: E731
    return {"trained": pick(trained, facts), "doc_only": pick(doc_only, facts), "train_only": pick(train_only, facts),
            "unanswerable_test": pick(u_order[:u_test], unanswerable),
            "unanswerable_train": pick(u_order[u_test:], unanswerable)}


def question_rows(roles: dict[str, list[dict]], provenance) -> list[dict]:
    """qa.jsonl rows (ids q0001.. in file order: train, then test) from plan()'s roles. Each candidate has
    "id", "question", "answer", "doc_id" and, when trained, "paraphrase"; provenance(candidate, source) ->
    the provenance record (source: "question" | "paraphrase")."""
    rows: list[dict] = []
    ids: dict[str, str] = {}

    def add(c: dict, text: str, split: str, kind: str, source: str, paraphrase_of: str | None = None) -> None:
        qid = f"q{len(rows) + 1:04d}"
        if source == "question" and split == "train":
            ids[c["id"]] = qid
        answerable = kind != "unanswerable"
        rows.append({"id": qid, "question": text, "answers": [c["answer"]] if answerable else [],
                     "doc_ids": [c["doc_id"]] if answerable else [], "kind": kind, "split": split,
                     "paraphrase_of": paraphrase_of, "provenance": provenance(c, source)})

    for c in roles["trained"] + roles["train_only"]:
        add(c, c["question"], "train", "fact", "question")
    for c in roles["unanswerable_train"]:
        add(c, c["question"], "train", "unanswerable", "question")
    for c in roles["trained"]:
        add(c, c["paraphrase"], "test", "fact", "paraphrase", ids[c["id"]])
    for c in roles["doc_only"]:
        add(c, c["question"], "test", "fact", "question")
    for c in roles["unanswerable_test"]:
        add(c, c["question"], "test", "unanswerable", "question")
    return rows


def shares(rows: list[dict]) -> dict[str, float | int]:
    """Counts and the two shares of item 2, from qa rows (what the tests and the summary line check)."""
    test = [r for r in rows if r["split"] == "test"]
    facts = [r for r in test if r["kind"] != "unanswerable"]
    doc_only = [r for r in facts if not r["paraphrase_of"]]
    unans = [r for r in test if r["kind"] == "unanswerable"]
    return {"train": len(rows) - len(test), "test": len(test), "test_facts": len(facts),
            "trained": len(facts) - len(doc_only), "doc_only": len(doc_only), "unanswerable": len(unans),
            "doc_only_share": len(doc_only) / len(facts) if facts else 0.0,
            "unanswerable_share": len(unans) / len(test) if test else 0.0}

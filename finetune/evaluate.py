"""Closed-book accuracy of a trained adapter on the test questions whose facts were in train.

`python -m finetune.evaluate ADAPTER [--corpus atlantis]` prints accuracy on test questions with
`paraphrase_of` set (a rewording of a train question: the fact was trained), on the others (facts only in
the documents) and abstention on unanswerable ones. It asks exactly as the ft system of `ragft compare` does:
rag.pipeline.answer_questions(gen, None, questions, "none", 0), scored by corpora.text.score_answer (as compare
scores).
"""

from __future__ import annotations

import json
import sys

from corpora import DEFAULT_CORPUS, load_corpus
from corpora.text import score_answer


def evaluate(adapter: str | None, corpus: str = DEFAULT_CORPUS, generator: str = "smollm2-135m",
             device: str = "auto", batch_size: int = 16) -> dict:
    """{"trained_facts": acc, "untrained_facts": acc, "unanswerable_abstained": rate, "n_*": counts, "answers"}."""
    from rag.generate import load_generator
    from rag.pipeline import answer_questions

    c = load_corpus(corpus)
    test = c.questions("test")
    groups = {
        "trained_facts": [q for q in test if q.get("paraphrase_of") and q["kind"] != "unanswerable"],
        "untrained_facts": [q for q in test if not q.get("paraphrase_of") and q["kind"] != "unanswerable"],
        "unanswerable_abstained": [q for q in test if q["kind"] == "unanswerable"],
    }
    gen = load_generator(generator, adapter, device)
    out: dict = {"adapter": adapter, "corpus": corpus, "answers": {}}
    for name, qs in groups.items():
        recs = answer_questions(gen, None, [q["question"] for q in qs], "none", 0, batch_size=batch_size)
        scores = [score_answer(r["answer"], q["answers"], q["kind"]) for q, r in zip(qs, recs)]
        out[name] = sum(s["correct"] for s in scores) / max(1, len(qs))
        out[f"n_{name}"] = len(qs)
        out["answers"].update({q["id"]: r["answer"] for q, r in zip(qs, recs)})
    return out


if __name__ == "__main__":
    args = sys.argv[1:]
    corpus = args[args.index("--corpus") + 1] if "--corpus" in args else DEFAULT_CORPUS
    adapter = args[0] if args and not args[0].startswith("--") and args[0] != "none" else None
    res = evaluate(adapter, corpus)
    print(json.dumps({k: v for k, v in res.items() if k != "answers"}))

"""Step 4, prompt augmentation: the one prompt every system uses.

Closed-book and retrieval systems share the wording; only the context block differs. The fine-tuning
data (finetune/data.py) is built with the same function, so an adapter is trained on the prompt it is
tested on.
"""

from __future__ import annotations

import re
from typing import Callable

# Measured with SmolLM2-135M-Instruct on 28 answerable atlantis test questions, hybrid top-3, greedy, 2 cores:
#   terse system prompt "Reply with the answer only" + "Documents:" block + rule after the question   32%
#   "You are a helpful AI assistant." system + rule first + "Documents:" header                        39%
#   no system message (the template's default) + rule first + the text + the question (this one)       50%
# A tiny instruct model follows plain reading-comprehension framing best; none of the variants made it
# abstain on unanswerable questions, which is what the hallucination column shows.
ABSTAIN = "I don't know"


def format_passages(passages: list[dict]) -> str:
    """passages: chunks ({"doc_id", "title", "text"}) ordered best first; the doc id is the citation."""
    return "\n\n".join(f"[{p['doc_id']}] {p['title']}\n{p['text']}" for p in passages)


def build_messages(question: str, passages: list[dict] | None) -> list[dict]:
    """Chat messages for one question. passages=None: closed-book; a list (maybe empty): retrieval.

    One user turn; the system turn is left to the model's chat template (its default system prompt).
    """
    if passages is None:
        task, context = f'Answer the question. If you do not know the answer, say "{ABSTAIN}".', ""
    else:
        task = f'Read the text and answer the question. If the answer is not in the text, say "{ABSTAIN}".'
        context = f"\n\n{format_passages(passages) or '(no text found)'}"
    return [{"role": "user", "content": f"{task}{context}\n\nQuestion: {question}"}]


# ---- token budget and citations (pure; rag/pipeline.py calls them around build_messages) --------------------

MIN_CUT_TOKENS = 24  # a passage cut to fewer tokens than this is left out instead: a stub only distracts


def fit_passages(passages: list[dict], budget: int, count_tokens: Callable[[str], int]) -> list[dict]:
    """The passages (best first) that fit `budget` tokens of context, order kept: whole passages while they
    fit, then the next one cut at a word boundary to the tokens left (if >= MIN_CUT_TOKENS), then no more.

    count_tokens(text) -> tokens of text; a passage costs count_tokens of its formatted block plus its
    separator. A cut passage is a copy with shorter "text" and "end" and "truncated": True.
    """
    kept, left = [], budget
    for p in passages:
        cost = count_tokens(format_passages([p]) + "\n\n")
        if cost <= left:
            kept.append(p)
            left -= cost
            continue
        ends = [m.start() for m in re.finditer(r"\s+", p["text"])] + [len(p["text"])]
        lo, hi = 0, len(ends) - 1  # largest i with the text cut at ends[i] fitting; -1: none fits
        best = -1
        while lo <= hi:
            mid = (lo + hi) // 2
            if count_tokens(format_passages([{**p, "text": p["text"][:ends[mid]]}]) + "\n\n") <= left:
                best, lo = mid, mid + 1
            else:
                hi = mid - 1
        if best >= 0 and ends[best] > 0 and left >= MIN_CUT_TOKENS:
            text = p["text"][:ends[best]]
            kept.append({**p, "text": text, "end": p.get("start", 0) + len(text), "truncated": True})
        break
    return kept


def cited_ids(answer: str, doc_ids: list[str]) -> list[str]:
    """The doc ids among `doc_ids` (those shown in the prompt) that the answer mentions, as "[atl-005]" or
    bare, in order of first mention, each once."""
    pos = {}
    for d in dict.fromkeys(doc_ids):
        m = re.search(rf"(?<![\w-]){re.escape(d)}(?![\w-])", answer)
        if m:
            pos[d] = m.start()
    return sorted(pos, key=pos.get)

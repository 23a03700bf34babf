"""The filters a generated question/answer pair must pass to be kept (issue 14, item 1). Pure functions,
except `retrieval_rank`, which searches a real index.

  short       the answer is 1..MAX_ANSWER_WORDS words (a copied sentence is not an answer)
  (a) in_chunk      the normalised answer occurs, on word boundaries, in the normalised chunk; the answer
                    stored is then the chunk's own verbatim span (answer_span), so `corpora validate`'s
                    "answer appears in its document" holds by construction
  (b) no_leak       the question does not contain the answer (corpora.text.contains_gold, the scorer's test)
  (c) novel         not a near-duplicate of a question kept before it: token Jaccard >= the leakage threshold
                    of `ragft corpora validate` (corpora.text.near_duplicates, the same rule and 0.9)
  (d) retrieved     the question alone retrieves its source chunk within top-k over the whole output corpus
                    (hybrid BM25 + FAISS, the `rag` system's retriever)
  (e) round_trip    the generator, given only the chunk and the question, answers with the same answer
                    (contains-gold, as `ragft compare` scores)
  absent      (held-back documents only) the answer occurs in no document of the output corpus, so the
              question is unanswerable from it
"""

from __future__ import annotations

import re

from corpora.text import contains_gold, near_duplicates, normalize_answer, tokens
from corpora.validate import ValidateConfig
from qagen.parse import MAX_ANSWER_WORDS, answer_words

LEAK_JACCARD = ValidateConfig.jaccard  # the leakage threshold `ragft corpora validate` reports at (0.9)
_PUNCT_EDGE = "\"'`*()[]{}<>.,;:!?\u201c\u201d\u2018\u2019"


def short_answer(answer: str) -> bool:
    return 1 <= answer_words(answer) <= MAX_ANSWER_WORDS


def answer_span(answer: str, chunk_text: str) -> str | None:
    """(a) The verbatim span of `chunk_text` whose normalised words equal the normalised answer's, first
    occurrence, outer punctuation trimmed unless the answer has it too ("`.bseg`" keeps its dot); None when
    the answer does not occur. The span is a substring of the chunk, so of its document."""
    want = normalize_answer(answer).split()
    if not want:
        return None
    # (normalised word, start, end) of each whitespace token; a token may normalise to 0 or several words
    toks = []
    for m in re.finditer(r"\S+", chunk_text):
        for w in normalize_answer(m.group()).split():
            toks.append((w, m.start(), m.end()))
    n = len(want)
    for i in range(len(toks) - n + 1):
        if [t[0] for t in toks[i:i + n]] == want:
            start, end = toks[i][1], toks[i + n - 1][2]
            # A token may hold more than the answer's words ("(BCL-2.1)."): keep only the edge punctuation
            # the answer itself has there ("`.bseg`" keeps its dot).
            bare = answer.strip(" \"'`*\u201c\u201d\u2018\u2019")
            lead = len(bare) - len(bare.lstrip(_PUNCT_EDGE))
            trail = len(bare) - len(bare.rstrip(_PUNCT_EDGE))
            s_lead = len(chunk_text[start:end]) - len(chunk_text[start:end].lstrip(_PUNCT_EDGE))
            s_trail = len(chunk_text[start:end]) - len(chunk_text[start:end].rstrip(_PUNCT_EDGE))
            keep_lead = lead if lead and chunk_text[start:start + s_lead].endswith(bare[:lead]) else 0
            keep_trail = trail if trail and chunk_text[end - s_trail:end].startswith(bare[len(bare) - trail:]) else 0
            start, end = start + s_lead - keep_lead, end - s_trail + keep_trail
            return chunk_text[start:end]  # edge punctuation only: normalises as the answer does
    return None


def leaks_answer(question: str, answer: str) -> bool:
    """(b) True when the question contains the answer (so it gives it away)."""
    return contains_gold(question, [answer])


def near_duplicate(question: str, kept: list[str], threshold: float = LEAK_JACCARD) -> int | None:
    """(c) Index of the kept question this one is a near-duplicate of (token Jaccard >= threshold), or None."""
    hit = near_duplicates([tokens(k) for k in kept], [tokens(question)], threshold)
    return hit[0][0] if hit else None


def retrieval_rank(index, question: str, chunk_id: int, top_k: int) -> int | None:
    """(d) 1-based rank of chunk `chunk_id` among the hybrid top-k chunks for the question alone; None when
    it is not among them. index: rag.index.Index over the output corpus."""
    from rag.pipeline import retrieve_passages

    hits = retrieve_passages(index, question, "hybrid", top_k)["retrieved_chunks"]
    return hits.index(chunk_id) + 1 if chunk_id in hits else None


def round_trip(reply: str, answer: str) -> bool:
    """(e) True when the generator's reply (chunk + question only) contains the answer."""
    return contains_gold(reply, [answer])


def absent(answer: str, normalised_docs: list[str]) -> bool:
    """True when the answer occurs (normalised, on word boundaries) in none of the documents.
    normalised_docs: normalize_answer(doc text) of each output document."""
    a = f" {normalize_answer(answer)} "
    return a.strip() != "" and not any(a in f" {d} " for d in normalised_docs)

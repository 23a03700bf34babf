"""Reading the generator's replies: the fixed "Q: ...\\nA: ..." format, parsed robustly. Pure functions.

A small model (SmolLM2-135M) keeps to the format only roughly. Seen in its replies, and handled here:
  - numbering and bullets ("1. Q: ...", "- Question 2: ..."), markdown bold ("**Q:**"), "Question:/Answer:"
  - the same pair repeated until the token limit, a last pair cut off mid-way (dropped: no answer)
  - the answer restating the question: "The broker daemon is called `brindled`." for "What is the name of
    the broker daemon?" -> "`brindled`" (trim_answer), and a clause after the answer ("4.3.2, published on
    2025-01-21" -> "4.3.2") when the answer is longer than MAX_ANSWER_WORDS
  - quotes, backticks and a final full stop around the answer
"""

from __future__ import annotations

import re

from corpora.text import normalize_answer

# Longest answer kept, in words after normalisation (qagen/filters.py: short_answer). The shipped QA sets'
# gold answers are 1-5 words; a longer "answer" is a copied sentence, which contains-gold scoring would make
# nearly impossible to match.
MAX_ANSWER_WORDS = 6

_BULLET = r"(?:[-*\u2022]+\s*|\(?\d{1,2}[.):]\s*|#+\s*)*"
_BOLD = r"\**"
_Q = re.compile(rf"^\s*{_BULLET}{_BOLD}(?:q|question)\s*\d{{0,2}}\s*{_BOLD}\s*[:.)\-]\s*{_BOLD}\s*(.*)$", re.I)
_A = re.compile(rf"^\s*{_BULLET}{_BOLD}(?:a|answer)\s*\d{{0,2}}\s*{_BOLD}\s*[:.)\-]\s*{_BOLD}\s*(.*)$", re.I)
_INLINE_A = re.compile(r"\s+\**(?:a|answer)\s*\d{0,2}\**\s*:\s*", re.I)  # "Q: ...? A: ..." on one line
_WRAP = "\"'`*\u201c\u201d\u2018\u2019 "
# Words that join a restated question to its answer: "X is Y", "X is called Y".
_COPULA = {"is", "are", "was", "were", "called", "named", "be"}
_FILLER = {"the", "a", "an", "its", "it", "of", "in", "on", "for", "by", "to", "at", "that", "this", "and", "s"}
_WORD = re.compile(r"\w+")
_CLAUSE = re.compile(r"[,;]\s|\.\s|\s\(|\s-\s|\s\u2014\s")


def clean(text: str) -> str:
    """One line, outer quotes/backticks/bold and a final full stop removed."""
    text = " ".join(text.split()).strip(_WRAP)
    if text.endswith("."):
        text = text[:-1].rstrip(_WRAP)
    return text.lstrip(_WRAP)


def parse_pairs(text: str, limit: int = 0) -> list[dict]:
    """Generator reply -> [{"question", "answer"}] in order, complete pairs only, each distinct pair once;
    limit > 0: at most that many. A question without an answer line (cut off, or the model moved on) is
    dropped; lines that are neither Q nor A (prose, blank) are skipped."""
    pairs, seen = [], set()
    question, answer = None, None

    def close():
        nonlocal question, answer
        if question and answer:
            key = (question.casefold(), answer.casefold())
            if key not in seen:
                seen.add(key)
                pairs.append({"question": question, "answer": answer})
        question, answer = None, None

    for line in text.splitlines():
        mq, ma = _Q.match(line), _A.match(line)
        if mq:
            close()
            body = mq.group(1)
            parts = _INLINE_A.split(body, maxsplit=1)
            question = clean(parts[0]) or None
            if question and not question.endswith("?") and "?" in question:
                question = question[:question.index("?") + 1]
            if len(parts) == 2:
                answer = clean(parts[1]) or None
                close()
        elif ma and question:
            answer = clean(ma.group(1)) or None
            if answer:
                close()
    close()
    return pairs[:limit] if limit > 0 else pairs


def words(text: str) -> list[str]:
    return _WORD.findall(text.casefold())


def answer_words(text: str) -> int:
    """Length of an answer in words after the scoring normalisation (what MAX_ANSWER_WORDS bounds)."""
    return len(normalize_answer(text).split())


def trim_answer(question: str, answer: str) -> str:
    """The answer without a restatement of the question in front of it and without a clause after it.

    Restatement: a "label:" whose words all occur in the question, or the words before the first copula (is, are, called, ...) all occur in the question or are
    filler words ("The broker daemon is called `brindled`." -> "`brindled`"); what follows is then cut at
    its first clause boundary (", ", "; ", ". ", " (", " - "). Without a restatement the cut happens only
    when the answer is longer than MAX_ANSWER_WORDS. A short answer without a copula stays as it is."""
    text = clean(answer)
    q = set(words(question)) | _FILLER
    restated = False
    m = re.match(r"^([^:]{1,60}):\s+(\S.*)$", text)
    if m and set(words(m.group(1))) <= q:  # "E3104: queue already exists" for "What is error E3104?"
        text, restated = clean(m.group(2)), True
    tokens = text.split()
    for i, tok in enumerate(tokens):
        w = words(tok)
        if i > 0 and w and w[0] in _COPULA and all(set(words(t)) <= q | _COPULA for t in tokens[:i]):
            j = i + 1
            while j < len(tokens) and words(tokens[j])[:1] and words(tokens[j])[0] in _COPULA:
                j += 1  # "is called"
            if j < len(tokens):
                text, restated = clean(" ".join(tokens[j:])), True
            break
    if restated or answer_words(text) > MAX_ANSWER_WORDS:
        m = _CLAUSE.search(text)
        if m:
            text = clean(text[:m.start()])
    return text


def parse_question(text: str) -> str:
    """A reply that should be one question (the paraphrase) -> that question ('' when none): the first
    non-empty line, markers and numbering removed, cut after its first '?'."""
    for line in text.splitlines():
        m = _Q.match(line)
        body = m.group(1) if m else re.sub(r"^\s*(?:rewritten question|paraphrase|rewrite)\s*:\s*", "",
                                           re.sub(rf"^{_BULLET}", "", line), flags=re.I)
        body = clean(body)
        if body:
            return body[:body.index("?") + 1] if "?" in body else body
    return ""

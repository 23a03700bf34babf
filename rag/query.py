"""Step 2, query processing: turn a user's question into what the retrievers search with.

Three switches, each off/on in the config of the entry point (rag/pipeline.py: AskConfig):
  normalisation       always on: NFKC, collapsed whitespace
  stop-word removal   BM25 only: drop STOP_WORDS from the query tokens (documents keep theirs)
  LLM rewriting       the generator rewrites the question into a keyword search query (REWRITE_PROMPT);
                      both retrievers search with the rewrite, the prompt still shows the question
"""

from __future__ import annotations

import re
import unicodedata

_WORD = re.compile(r"\w+", re.UNICODE)

# English stop words: Lucene's list (bm25s.stopwords.STOPWORDS_EN, 33 words) plus the question words,
# pronouns, auxiliaries and prepositions of NLTK's English list, which matter for questions ("who", "what").
STOP_WORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below between
both but by can could did do does doing down during each few for from further had has have having he her
here hers herself him himself his how i if in into is it its itself just me more most my myself no nor not
now of off on once only or other our ours ourselves out over own same she should so some such than that the
their theirs them themselves then there these they this those through to too under until up very was we were
what when where which while who whom whose why will with would you your yours yourself yourselves
""".split())

# The rewriting instruction (a second, separate prompt: the answer prompt lives in rag/augment.py).
REWRITE_PROMPT = ("Rewrite the question as a short search query: the key names and words only, no question "
                  "words. Reply with the query only.\nQuestion: {question}")


def normalize_query(question: str) -> str:
    """NFKC, collapse whitespace, strip. Raises ValueError on an empty question."""
    q = " ".join(unicodedata.normalize("NFKC", question).split())
    if not q:
        raise ValueError("empty question")
    return q


def tokenize(text: str) -> list[str]:
    """BM25 tokens: lower-cased word characters. Used for documents and queries alike."""
    return _WORD.findall(text.lower())


def remove_stop_words(tokens: list[str]) -> list[str]:
    """tokens without STOP_WORDS; all tokens when every one is a stop word (a query never becomes empty)."""
    kept = [t for t in tokens if t not in STOP_WORDS]
    return kept or tokens


def query_tokens(query: str, stop_words: bool = False) -> list[str]:
    """What BM25 searches with: tokenize(query), optionally without stop words."""
    tokens = tokenize(query)
    return remove_stop_words(tokens) if stop_words else tokens


def rewrite_messages(question: str) -> list[dict]:
    """Chat messages asking the generator for a search query."""
    return [{"role": "user", "content": REWRITE_PROMPT.format(question=question)}]


def clean_rewrite(text: str, question: str) -> str:
    """The generator's reply -> a one-line search query; the question itself when the reply is empty.

    Small models often echo a label ("Query: ...") or wrap the query in quotes; both are stripped.
    """
    line = next((s for s in text.strip().splitlines() if s.strip()), "")
    line = re.sub(r"^\s*(search\s+)?query\s*:\s*", "", line, flags=re.IGNORECASE).strip().strip("\"'`").strip()
    return normalize_query(line) if line else question

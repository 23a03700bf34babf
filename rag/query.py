"""Step 2, query processing: turn a user's question into what the retrievers search with."""

from __future__ import annotations

import re
import unicodedata

_WORD = re.compile(r"\w+", re.UNICODE)


def normalize_query(question: str) -> str:
    """NFKC, collapse whitespace, strip. Raises ValueError on an empty question."""
    q = " ".join(unicodedata.normalize("NFKC", question).split())
    if not q:
        raise ValueError("empty question")
    return q


def tokenize(text: str) -> list[str]:
    """BM25 tokens: lower-cased word characters. Used for documents and queries alike."""
    return _WORD.findall(text.lower())

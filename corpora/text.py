"""Text normalisation shared by every layer: the answer normalisation that scoring, validation, leakage and
the injection canaries all use, and the tokeniser of the leakage rule. Pure functions."""

from __future__ import annotations

import re
import string
import unicodedata

_PUNCT = set(string.punctuation) | {"‘", "’", "“", "”", "–", "—"}
_ARTICLES = re.compile(r"\b(a|an|the)\b")
# American spellings of metric units, mapped to the British ones the shipped corpora use: "640 meters" is the
# right answer to a gold "640 metres" (seen in a demo run). Whole words only: "diameter" stays as it is.
_UNIT_SPELLING = re.compile(r"\b(kilo|centi|milli)?(met|lit)er(s?)\b")


def normalize_answer(text: str) -> str:
    """SQuAD v1.1 normalisation (lower-case, drop punctuation and articles, collapse whitespace), plus one
    spelling rule: metric units spelt the British way (meters -> metres, liters -> litres)."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _UNIT_SPELLING.sub(r"\1\2re\3", text)
    return " ".join(_ARTICLES.sub(" ", text).split())

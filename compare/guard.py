"""Checks of user input that need a model's tokenizer or config, run before a command writes anything, so a bad
question or adapter fails with file:line and exit 2 instead of half-way through a run (leaving a run directory).

Cheap: a tokenizer and a config load (< 1 s), no weights (an adapter is compared against the base model built
on the meta device, which allocates nothing).
"""

from __future__ import annotations

import json
from pathlib import Path

from corpora.errors import InputError


def qa_line(corpus_path: Path, qid: str) -> tuple[str | None, int | None]:
    """(path, line) of question `qid` in a native corpus's qa.jsonl; (corpus path, None) when not found."""
    qa = Path(corpus_path) / "qa.jsonl"
    if qa.is_file():
        for n, raw in enumerate(qa.read_bytes().split(b"\n"), start=1):
            try:
                if json.loads(raw).get("id") == qid:
                    return str(qa), n
            except (ValueError, AttributeError):
                continue
    return str(corpus_path), None


def check_question_lengths(generator: str, questions: list[dict], max_new_tokens: int, corpus_path: Path) -> None:
    """InputError (qa.jsonl:line) for the first question whose closed-book prompt plus max_new_tokens does not
    fit the generator's window (retrieval prompts trim their passages to fit; the question itself cannot be)."""
    from transformers import AutoConfig, AutoTokenizer

    from rag.augment import build_messages
    from rag.generate import prompt_ids
    from rag.models import resolve_generator

    path = resolve_generator(generator)
    try:
        tok = AutoTokenizer.from_pretrained(path)
        window = getattr(AutoConfig.from_pretrained(path), "max_position_embeddings", None)
    except (OSError, ValueError) as e:
        raise InputError(f"cannot load generator {generator!r}: {str(e).strip().splitlines()[0]}") from None
    if not window:
        return
    for q in questions:
        n = len(prompt_ids(tok, build_messages(q["question"], None)))
        if n + max_new_tokens > window:
            where, line = qa_line(corpus_path, q["id"])
            raise InputError(f"question {q['id']!r} is too long: its prompt has {n} tokens; with {max_new_tokens} "
                             f"new tokens it exceeds the model's {window}-token window", where, line)

"""Checks of user input run before a command writes anything or loads a model, so a corpus that cannot be
compared or a bad question or adapter fails with one line and exit 2 instead of half-way through a run (leaving a
run directory).

check_corpus_ready needs the corpus only; it names the next command where the corpus lacks what `ragft compare`
needs (gold answers, questions of the split, training data for the ft arms). check_question_lengths is cheap: a
tokenizer and a config load (< 1 s), no weights (an adapter is compared against the base model built on the meta
device, which allocates nothing).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from corpora.errors import InputError


def check_corpus_ready(corpus, questions: list[dict], systems, cfg) -> None:
    """InputError, one line naming what to run instead, when `ragft compare` cannot score this corpus: no gold
    answers (BEIR: queries and relevance judgements only) -> `ragft retrieval-eval` or `ragft corpora make-qa`;
    no questions in the split -> `ragft corpora make-qa`; ft arms to be trained here (no adapter given) whose
    recipes give no training example -> make-qa or `--recipe docs` (finetune/train.py: check_training_data)."""
    arg = shlex.quote(cfg.corpus)
    if corpus.retrieval_only:
        raise InputError(f"corpus {corpus.name!r} has no gold answers ({corpus.fmt}: queries and relevance "
                         f"judgements only), so `ragft compare` cannot score answers: evaluate retrieval with "
                         f"`ragft retrieval-eval --corpus {arg}`, or build a QA set with answers with "
                         f"`ragft corpora make-qa {arg} --out DIR`")
    if not questions:
        raise InputError(f"corpus {corpus.name!r} has no {cfg.split!r} questions: build a QA set from its "
                         f"documents with `ragft corpora make-qa {arg} --out DIR`, then `ragft compare --corpus DIR`")
    from finetune.train import FinetuneConfig, check_training_data, parse_recipes

    for key in dict.fromkeys(s.adapter_key for s in systems if s.uses_adapter):
        if key.startswith("path:") or (key == "default" and cfg.adapter):
            continue  # an adapter given: nothing is trained here
        recipe = key[7:] if key.startswith("recipe:") else cfg.recipe or FinetuneConfig.data
        check_training_data(corpus, parse_recipes(recipe.replace("+", ",")), cfg.corpus)


def qa_line(corpus_path: Path, qid: str) -> tuple[str | None, int | None]:
    """(path, line) of question `qid` in a native corpus's qa.jsonl; (corpus path, None) when not found."""
    qa = Path(corpus_path) / "qa.jsonl"
    if qa.is_file():
        for n, raw in enumerate(qa.read_bytes().removeprefix(b"\xef\xbb\xbf").split(b"\n"), start=1):  # BOM
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

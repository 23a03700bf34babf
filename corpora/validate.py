"""`ragft corpora validate PATH`: every problem of a corpus, each as `file:line: message`.

Loading (`load_corpus`) stops at the first hard error. Validation reads the same files in collecting mode
(corpora.Problems(strict=False)), so it reports every bad row, then checks what a loader cannot see row by row:
  - a gold answer of each answerable question appears in one of its doc_ids documents (case-insensitive,
    verbatim after whitespace normalisation), and its other gold answers at least after the scoring
    normalisation (so "27-21" may stand beside "27\u201321");
  - fact questions name a document, multi_hop questions at least two;
  - paraphrase_of names a train question of the same file that shares a gold answer;
  - train/test leakage: a test question whose text equals a train question's (after lower-casing and
    dropping punctuation) or whose token Jaccard with one is >= the threshold (0.9);
  - qa_updates.jsonl: old_answers appear in the documents before the update, answers after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from corpora import DEFAULT_CORPUS, Corpus, Problems, apply_updates, resolve_corpus
from corpora.config import check, opt
from corpora.errors import InputError
from corpora.text import near_duplicates, tokens  # the token-Jaccard leakage rule (corpora/text.py)


@dataclass
class ValidateConfig:
    path: str = DEFAULT_CORPUS
    """Corpus to check: shipped name, native folder, BEIR folder, SQuAD .json or .txt/.md folder (default atlantis)."""
    jaccard: float = opt(0.9, above=0.0, max=1.0)
    """Report a test question as leaked at this token Jaccard with a train question, 0-1 (default 0.9)."""

    def __post_init__(self):
        check(self)


def norm_space(text: str) -> str:
    """Case-insensitive, whitespace-normalised form used for 'the answer appears in the document'."""
    return " ".join(text.split()).casefold()


def check_answers_in_docs(questions: list[dict], docs: dict[str, str], key: str, when: str, report) -> None:
    """Answerable questions: at least one string of q[key] appears verbatim (case-insensitive, whitespace
    normalised) in one of q's doc_ids documents, and every other one at least after the scoring normalisation
    (corpora.text.normalize_answer: punctuation and articles dropped), so typographic variants such as
    "27-21" for "27–21" pass and a typo does not. docs: id -> norm_space(text)."""
    from corpora.text import normalize_answer

    loose: dict[str, str] = {}  # doc id -> normalize_answer(text), computed only where a variant needs it
    for q in questions:
        if q["kind"] == "unanswerable" or not q.get(key):
            continue
        ids = [d for d in q["doc_ids"] if d in docs]
        verbatim = [a for a in q[key] if any(norm_space(a) in docs[d] for d in ids)]
        where = f"{when} ({', '.join(q['doc_ids']) or 'no doc_ids'})"
        if not verbatim:
            shown = ", ".join(repr(a) for a in q[key])
            report(q, f"{key.replace('_', ' ')}: none of {shown} appears in its doc_ids documents{where}")
            continue
        for a in q[key]:
            if a in verbatim:
                continue
            for d in ids:
                loose.setdefault(d, normalize_answer(docs[d]))
            if not any(normalize_answer(a) in loose[d] for d in ids):
                report(q, f"{key.replace('_', ' ')}: {a!r} appears in none of its doc_ids documents{where}, "
                          "not even ignoring punctuation")


def reporter(problems: Problems, filename: str, default_path: Path):
    """report(question, message): a problem at the question's file:line (or the corpus path and its id)."""

    def report(q: dict, message: str) -> None:
        path, line = problems.at(filename, q["id"])
        problems.add(message if line else f"question {q['id']!r}: {message}", path or default_path, line)

    return report


def check_questions(corpus: Corpus, questions: list[dict], filename: str, problems: Problems, threshold: float) -> None:
    """The cross-row checks of one question file (module docstring)."""
    report = reporter(problems, filename, corpus.path)
    for q in questions:
        if q["kind"] == "fact" and not q["doc_ids"]:
            report(q, "a fact question needs a document in doc_ids")
        if q["kind"] == "multi_hop" and len(set(q["doc_ids"])) < 2:
            report(q, "a multi_hop question needs at least two documents in doc_ids")
    by_id = {q["id"]: q for q in questions}
    for q in questions:
        target = by_id.get(q["paraphrase_of"]) if q["paraphrase_of"] else None
        if q["paraphrase_of"] is None:
            continue
        if target is None:
            report(q, f"paraphrase_of names no question of {filename}: {q['paraphrase_of']!r}")
        elif target["split"] != "train" or q["split"] != "test":
            report(q, f"paraphrase_of must link a test question to a train question ({q['split']} -> "
                      f"{target['split']} {target['id']!r})")
        elif not corpus.retrieval_only and not {norm_space(a) for a in q["answers"]} & {
                norm_space(a) for a in target["answers"]}:
            report(q, f"paraphrase_of {target['id']!r} shares no gold answer with it")
    train = [q for q in questions if q["split"] == "train"]
    test = [q for q in questions if q["split"] == "test"]
    leaks = near_duplicates([tokens(q["question"]) for q in train], [tokens(q["question"]) for q in test], threshold)
    for j, (i, jac) in sorted(leaks.items()):
        same = tokens(test[j]["question"]) == tokens(train[i]["question"])
        how = "repeats" if same else f"is near-identical (token Jaccard {jac:.2f}) to"
        where = problems.at(filename, train[i]["id"])[1]
        report(test[j], f"train/test leakage: test question {test[j]['id']!r} {how} train question "
                        f"{train[i]['id']!r}" + (f" (line {where})" if where else ""))


def validate(path: str, threshold: float = 0.9) -> tuple[Corpus | None, list[InputError]]:
    """(the corpus as far as it loads, every problem found) for a shipped name or a path."""
    from corpora.load import load_path

    problems = Problems(strict=False)
    try:
        folder = resolve_corpus(path)
    except InputError as e:
        return None, [e]
    corpus = load_path(folder, problems)
    qa_file = {"native": "qa.jsonl", "text": "qa.jsonl", "beir": "queries.jsonl"}.get(corpus.fmt, "")
    old = {d["id"]: norm_space(d["text"]) for d in corpus.docs}

    if not corpus.retrieval_only:
        check_answers_in_docs(corpus.qa, old, "answers", "", reporter(problems, qa_file, corpus.path))
    check_questions(corpus, corpus.qa, qa_file, problems, threshold)
    if corpus.qa_updates:
        new = {d["id"]: norm_space(d["text"]) for d in apply_updates(corpus.docs, corpus.updates)}
        rep = reporter(problems, "qa_updates.jsonl", corpus.path)
        check_answers_in_docs(corpus.qa_updates, old, "old_answers", " before the update", rep)
        check_answers_in_docs(corpus.qa_updates, new, "answers", " after the update (updates.jsonl applied)", rep)
        check_questions(corpus, corpus.qa_updates, "qa_updates.jsonl", problems, threshold)
    return corpus, sort_problems(problems)


def sort_problems(problems: list[InputError]) -> list[InputError]:
    """In file order, then line order; problems without a line first within their file; stable otherwise."""
    return sorted(problems, key=lambda e: (str(e.path), e.line or 0))


def summary(corpus: Corpus) -> str:
    """The one-line OK summary."""
    qa = f", {len(corpus.qa)} questions" if corpus.qa else ""
    upd = f", {len(corpus.updates)} update documents" if corpus.updates else ""
    qau = f", {len(corpus.qa_updates)} update questions" if corpus.qa_updates else ""
    return f"{corpus.path}: OK ({corpus.fmt}): {len(corpus.docs)} documents{qa}{upd}{qau}"

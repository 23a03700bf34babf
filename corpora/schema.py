"""Corpora and QA sets: the schema, the shipped corpora, and the native loader.

A native corpus folder holds these files, one JSON object per line:
  docs.jsonl        {"id", "title", "text"}           (BEIR's "_id" is accepted for "id")
  qa.jsonl          {"id", "question", "answers": [..], "doc_ids": [..],
                     "kind": "fact"|"multi_hop"|"unanswerable", "split": "train"|"test",
                     "paraphrase_of": null | train id}  (paraphrase_of is optional)
  updates.jsonl     optional, documents as in docs.jsonl: an id already in docs.jsonl replaces that document,
                    a new id adds one (the freshness experiment)
  qa_updates.jsonl  optional, questions as in qa.jsonl plus "old_answers": the gold answer before the update
Shipped corpora live in folders beside this file and are loaded by name ("atlantis").
Other formats (BEIR folder, SQuAD JSON, folder of .txt/.md files) are read by corpora/load.py into the same
`Corpus`; `load_corpus` dispatches on what the path is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from corpora.errors import InputError

SHIPPED_DIR = Path(__file__).parent
DEFAULT_CORPUS = "atlantis"
KINDS = ("fact", "multi_hop", "unanswerable")
SPLITS = ("train", "test")
DOC_FIELDS = {"id": str, "title": str, "text": str}
QA_FIELDS = {"id": str, "question": str, "answers": list, "doc_ids": list, "kind": str, "split": str}
QA_OPTIONAL = {"paraphrase_of": (str, type(None)), "old_answers": list}
QA_UPDATE_FIELDS = {**QA_FIELDS, "old_answers": list}
QA_UPDATE_OPTIONAL = {"paraphrase_of": (str, type(None))}


@dataclass
class Corpus:
    name: str
    path: Path
    docs: list[dict]  # {"id", "title", "text"}
    qa: list[dict] = field(default_factory=list)  # schema above
    updates: list[dict] = field(default_factory=list)  # documents, schema of docs
    qa_updates: list[dict] = field(default_factory=list)  # questions with "old_answers"
    fmt: str = "native"  # native | beir | squad | text
    # True when questions carry relevant doc_ids but no gold answers (BEIR): only retrieval can be scored.
    retrieval_only: bool = False

    def questions(self, split: str | None = None) -> list[dict]:
        return [q for q in self.qa if split is None or q["split"] == split]


def apply_updates(docs: list[dict], updates: list[dict]) -> list[dict]:
    """The documents after the update: same-id documents replaced in place, new ids appended in order."""
    by_id = {u["id"]: u for u in updates}
    out = [by_id.get(d["id"], d) for d in docs]
    old = {d["id"] for d in docs}
    return out + [u for u in updates if u["id"] not in old]


class Problems(list):
    """Where loaders send bad input. strict: raise the first as InputError (loading); else collect them all
    (validation), and remember where each row came from so later checks can name file:line."""

    def __init__(self, strict: bool = True):
        super().__init__()
        self.strict = strict
        self.where: dict[tuple[str, str], tuple[str, int | None]] = {}  # (file name, row id) -> (path, line)

    def add(self, message: str, path, line: int | None = None) -> None:
        err = InputError(message, str(path), line)
        if self.strict:
            raise err
        self.append(err)

    def locate(self, path: Path, row_id: str, line: int | None) -> None:
        if not self.strict:
            self.where.setdefault((path.name, row_id), (str(path), line))

    def at(self, filename: str, row_id: str) -> tuple[str | None, int | None]:
        return self.where.get((filename, row_id), (None, None))


def shipped_corpora() -> list[str]:
    return sorted(p.name for p in SHIPPED_DIR.iterdir() if (p / "docs.jsonl").is_file())


def resolve_corpus(name_or_path: str) -> Path:
    """A shipped corpus name or a path that exists -> that path. Raises InputError for neither."""
    p = Path(name_or_path)
    if p.exists():
        return p
    if (SHIPPED_DIR / name_or_path / "docs.jsonl").is_file():
        return SHIPPED_DIR / name_or_path
    raise InputError(
        f"unknown corpus {name_or_path!r}: not a shipped corpus ({', '.join(shipped_corpora())}) nor a path "
        "(a folder with docs.jsonl, a BEIR folder, a SQuAD .json file or a folder of .txt/.md files)"
    )


def bad_line(raw: bytes, path: Path, n: int, problems: Problems) -> dict | None:
    """One JSONL line -> the object, or None after reporting why it is not one."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        problems.add(f"not UTF-8 (byte {e.start})", path, n)
        return None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        problems.add(f"malformed JSON: {e.msg} at column {e.colno}", path, n)
        return None
    if not isinstance(obj, dict):
        problems.add(f"expected a JSON object, got {type(obj).__name__}", path, n)
        return None
    return obj


def scan_jsonl(path: Path, problems: Problems) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line that parses, in order; each bad line goes to problems
    (a generator, so a strict caller stops at the first bad line of the file, whatever kind of bad)."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        problems.add(f"cannot read: {e.strerror}", path)
        return
    for n, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        obj = bad_line(line, path, n, problems)
        if obj is not None:
            yield n, obj


def read_jsonl(path: Path) -> list[tuple[int, dict]]:
    """(line number, object) for each non-blank line; a bad line raises InputError with file:line."""
    return list(scan_jsonl(path, Problems(strict=True)))


def check_fields(obj: dict, required: dict, optional: dict, path: Path, n: int, problems: Problems | None = None) -> bool:
    """Every required key present with its type, no unknown keys, optional keys typed. False if any problem."""
    problems = Problems(strict=True) if problems is None else problems
    before = len(problems)
    for key, typ in required.items():
        if key not in obj:
            problems.add(f"missing field {key!r}", path, n)
        elif not isinstance(obj[key], typ):
            problems.add(f"field {key!r} must be {typ.__name__}, got {type(obj[key]).__name__}", path, n)
    for key in sorted(obj.keys() - required.keys()):
        if key not in optional:
            problems.add(f"unknown field {key!r}", path, n)
        elif not isinstance(obj[key], optional[key]):
            problems.add(f"field {key!r} has the wrong type {type(obj[key]).__name__}", path, n)
    return len(problems) == before


def load_docs(path: Path, problems: Problems | None = None, require: bool = True) -> list[dict]:
    """docs.jsonl (or updates.jsonl) -> documents. require: no documents at all is an error."""
    problems = Problems(strict=True) if problems is None else problems
    docs, seen = [], set()
    for n, obj in scan_jsonl(path, problems):
        if "_id" in obj and "id" not in obj:  # BEIR
            obj = {"id": obj.pop("_id"), **obj}
        obj.setdefault("title", "")
        obj.pop("metadata", None)
        if not check_fields(obj, DOC_FIELDS, {}, path, n, problems):
            continue
        if obj["id"] in seen:
            problems.add(f"duplicate doc id {obj['id']!r}", path, n)
            continue
        seen.add(obj["id"])
        if not obj["text"].strip():
            problems.add(f"document {obj['id']!r} has empty text", path, n)
            continue
        problems.locate(path, obj["id"], n)
        docs.append(obj)
    if require and not docs and path.is_file():
        problems.add("no documents", path)
    return docs


def load_qa(path: Path, doc_ids: set[str], problems: Problems | None = None, updates: bool = False) -> list[dict]:
    """qa.jsonl (updates: qa_updates.jsonl, where old_answers is required) -> questions."""
    problems = Problems(strict=True) if problems is None else problems
    required, optional = (QA_UPDATE_FIELDS, QA_UPDATE_OPTIONAL) if updates else (QA_FIELDS, QA_OPTIONAL)
    qa, seen = [], set()
    for n, obj in scan_jsonl(path, problems):
        if not check_fields(obj, required, optional, path, n, problems):
            continue
        obj.setdefault("paraphrase_of", None)
        before = len(problems)
        if obj["id"] in seen:
            problems.add(f"duplicate question id {obj['id']!r}", path, n)
            continue
        seen.add(obj["id"])
        if not obj["question"].strip():
            problems.add("empty question", path, n)
        if obj["kind"] not in KINDS:
            problems.add(f"kind must be one of {', '.join(KINDS)}, got {obj['kind']!r}", path, n)
        if obj["split"] not in SPLITS:
            problems.add(f"split must be one of {', '.join(SPLITS)}, got {obj['split']!r}", path, n)
        for key in ("answers", "doc_ids", "old_answers"):
            if key in obj and not all(isinstance(a, str) and a.strip() for a in obj[key]):
                problems.add(f"field {key!r} must hold non-empty strings", path, n)
        if (obj["kind"] == "unanswerable") != (not obj["answers"]):
            problems.add("answers must be empty exactly when kind is 'unanswerable'", path, n)
        missing = [d for d in obj["doc_ids"] if d not in doc_ids]
        if missing:
            problems.add(f"doc_ids name missing documents: {', '.join(map(str, missing))}", path, n)
        if len(problems) == before:
            problems.locate(path, obj["id"], n)
            qa.append(obj)
    return qa


def load_native(folder: Path, problems: Problems | None = None) -> Corpus:
    """A native folder: docs.jsonl, qa.jsonl if present, updates.jsonl and qa_updates.jsonl if present."""
    problems = Problems(strict=True) if problems is None else problems
    docs = load_docs(folder / "docs.jsonl", problems)
    ids = {d["id"] for d in docs}
    qa_path = folder / "qa.jsonl"
    qa = load_qa(qa_path, ids, problems) if qa_path.is_file() else []
    upd_path, qa_upd_path = folder / "updates.jsonl", folder / "qa_updates.jsonl"
    updates = load_docs(upd_path, problems, require=False) if upd_path.is_file() else []
    qa_updates = []
    if qa_upd_path.is_file():
        qa_updates = load_qa(qa_upd_path, ids | {u["id"] for u in updates}, problems, updates=True)
    return Corpus(name=folder.name, path=folder, docs=docs, qa=qa, updates=updates, qa_updates=qa_updates)


def load_corpus(name_or_path: str, problems: Problems | None = None) -> Corpus:
    """Load a corpus by shipped name or path, in any supported format (corpora/load.py says which).

    Raises InputError (file:line) on the first bad row; pass Problems(strict=False) to collect them all.
    """
    from corpora.load import load_path

    return load_path(resolve_corpus(name_or_path), problems)

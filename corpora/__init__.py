"""Corpora and QA sets: the schema, the shipped corpora, and the loader.

A corpus folder holds two files, one JSON object per line:
  docs.jsonl  {"id", "title", "text"}           (BEIR's "_id" is accepted for "id")
  qa.jsonl    {"id", "question", "answers": [..], "doc_ids": [..],
               "kind": "fact"|"multi_hop"|"unanswerable", "split": "train"|"test",
               "paraphrase_of": null | train id}  (paraphrase_of is optional)
Shipped corpora live in folders beside this file and are loaded by name ("atlantis").
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from corpora.errors import InputError

SHIPPED_DIR = Path(__file__).parent
DEFAULT_CORPUS = "atlantis"
KINDS = ("fact", "multi_hop", "unanswerable")
SPLITS = ("train", "test")
DOC_FIELDS = {"id": str, "title": str, "text": str}
QA_FIELDS = {"id": str, "question": str, "answers": list, "doc_ids": list, "kind": str, "split": str}
QA_OPTIONAL = {"paraphrase_of": (str, type(None)), "old_answers": list}


@dataclass
class Corpus:
    name: str
    path: Path
    docs: list[dict]  # {"id", "title", "text"}
    qa: list[dict] = field(default_factory=list)  # schema above

    def questions(self, split: str | None = None) -> list[dict]:
        return [q for q in self.qa if split is None or q["split"] == split]


def shipped_corpora() -> list[str]:
    return sorted(p.name for p in SHIPPED_DIR.iterdir() if (p / "docs.jsonl").is_file())


def resolve_corpus(name_or_path: str) -> Path:
    """A shipped corpus name or a folder path -> the folder. Raises InputError for neither."""
    p = Path(name_or_path)
    if (p / "docs.jsonl").is_file() or (p / "corpus.jsonl").is_file():
        return p
    if (SHIPPED_DIR / name_or_path / "docs.jsonl").is_file():
        return SHIPPED_DIR / name_or_path
    raise InputError(
        f"unknown corpus {name_or_path!r}: not a shipped corpus ({', '.join(shipped_corpora())}) "
        "nor a folder with docs.jsonl"
    )


def read_jsonl(path: Path) -> list[tuple[int, dict]]:
    """(line number, object) for each non-blank line; a bad line raises InputError with file:line."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", str(path)) from None
    rows = []
    for n, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InputError(f"not UTF-8 (byte {e.start})", str(path), n) from None
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(f"malformed JSON: {e.msg} at column {e.colno}", str(path), n) from None
        if not isinstance(obj, dict):
            raise InputError(f"expected a JSON object, got {type(obj).__name__}", str(path), n)
        rows.append((n, obj))
    return rows


def check_fields(obj: dict, required: dict, optional: dict, path: Path, n: int) -> None:
    for key, typ in required.items():
        if key not in obj:
            raise InputError(f"missing field {key!r}", str(path), n)
        if not isinstance(obj[key], typ):
            raise InputError(f"field {key!r} must be {typ.__name__}, got {type(obj[key]).__name__}", str(path), n)
    for key in obj.keys() - required.keys():
        if key not in optional:
            raise InputError(f"unknown field {key!r}", str(path), n)
        if not isinstance(obj[key], optional[key]):
            raise InputError(f"field {key!r} has the wrong type {type(obj[key]).__name__}", str(path), n)


def load_docs(path: Path) -> list[dict]:
    docs, seen = [], set()
    for n, obj in read_jsonl(path):
        if "_id" in obj and "id" not in obj:  # BEIR
            obj = {"id": obj.pop("_id"), **obj}
        obj.setdefault("title", "")
        obj.pop("metadata", None)
        check_fields(obj, DOC_FIELDS, {}, path, n)
        if obj["id"] in seen:
            raise InputError(f"duplicate doc id {obj['id']!r}", str(path), n)
        if not obj["text"].strip():
            raise InputError(f"document {obj['id']!r} has empty text", str(path), n)
        seen.add(obj["id"])
        docs.append(obj)
    if not docs:
        raise InputError("no documents", str(path))
    return docs


def load_qa(path: Path, doc_ids: set[str]) -> list[dict]:
    qa, seen = [], set()
    for n, obj in read_jsonl(path):
        check_fields(obj, QA_FIELDS, QA_OPTIONAL, path, n)
        obj.setdefault("paraphrase_of", None)
        if obj["id"] in seen:
            raise InputError(f"duplicate question id {obj['id']!r}", str(path), n)
        if not obj["question"].strip():
            raise InputError("empty question", str(path), n)
        if obj["kind"] not in KINDS:
            raise InputError(f"kind must be one of {', '.join(KINDS)}, got {obj['kind']!r}", str(path), n)
        if obj["split"] not in SPLITS:
            raise InputError(f"split must be one of {', '.join(SPLITS)}, got {obj['split']!r}", str(path), n)
        if (obj["kind"] == "unanswerable") != (not obj["answers"]):
            raise InputError("answers must be empty exactly when kind is 'unanswerable'", str(path), n)
        missing = [d for d in obj["doc_ids"] if d not in doc_ids]
        if missing:
            raise InputError(f"doc_ids name missing documents: {', '.join(map(str, missing))}", str(path), n)
        seen.add(obj["id"])
        qa.append(obj)
    return qa


def load_corpus(name_or_path: str) -> Corpus:
    """Load and validate a corpus folder (or a shipped corpus by name)."""
    folder = resolve_corpus(name_or_path)
    docs = load_docs(folder / "docs.jsonl")
    qa_path = folder / "qa.jsonl"
    qa = load_qa(qa_path, {d["id"] for d in docs}) if qa_path.is_file() else []
    return Corpus(name=folder.name, path=folder, docs=docs, qa=qa)

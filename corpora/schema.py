"""The corpus schema, the shipped corpora, and the native loader (docs.jsonl, qa.jsonl, updates).

A native corpus folder holds these files, one JSON object per line:
  docs.jsonl        {"id", "title", "text"}           (BEIR's "_id" is accepted for "id")
  qa.jsonl          {"id", "question", "answers": [..], "doc_ids": [..],
                     "kind": "fact"|"multi_hop"|"unanswerable", "split": "train"|"test",
                     "paraphrase_of": null | train id}  (paraphrase_of is optional)
                    optional "provenance": {...} where a question came from (`ragft corpora make-qa` writes it)
  updates.jsonl     optional, documents as in docs.jsonl: an id already in docs.jsonl replaces that document,
                    a new id adds one (the freshness experiment)
  qa_updates.jsonl  optional, questions as in qa.jsonl plus "old_answers": the gold answer before the update
Shipped corpora live in folders beside this file and are loaded by name ("atlantis").
Other formats (BEIR folder, SQuAD JSON, folder of .txt/.md files) are read by corpora/load.py into the same
`Corpus`; `load_corpus` dispatches on what the path is.
"""

from __future__ import annotations

import json
import re
import sys
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
QA_OPTIONAL = {"paraphrase_of": (str, type(None)), "old_answers": list, "provenance": dict}
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


BOM = b"\xef\xbb\xbf"  # a UTF-8 byte-order mark, which editors on Windows put at the start of a file: skipped


def json_problem(e: Exception) -> str:
    """What json.loads raised, as one line: its syntax errors, and the two it raises without a position
    (an integer longer than Python's int-string limit, ValueError; nesting deeper than the stack, RecursionError)."""
    if isinstance(e, json.JSONDecodeError):
        return f"malformed JSON: {e.msg} at column {e.colno}"
    if isinstance(e, RecursionError):
        return "malformed JSON: nested too deeply to read (more than ~1000 levels of [ or {)"
    if "integer string conversion" in str(e):
        return f"malformed JSON: an integer longer than {sys.get_int_max_str_digits()} digits (Python's limit)"
    return f"malformed JSON: {str(e).splitlines()[0] if str(e) else type(e).__name__}"


def lone_surrogate(obj, where: str = "") -> str | None:
    """Where in a parsed JSON value a string holds a lone UTF-16 surrogate (\\ud800 without its pair: not
    Unicode text, and the tokenizers fail on it), e.g. "field 'text'"; None when there is none."""
    if isinstance(obj, str):
        try:
            obj.encode("utf-8")
        except UnicodeEncodeError as e:
            return f"{where or 'a string'} (\\u{ord(obj[e.start]):04x})"
        return None
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for k, v in items:
        key = f"field {k!r}" if isinstance(obj, dict) and not where else f"{where}[{k!r}]"
        found = lone_surrogate(k, f"the key {k!r}") if isinstance(k, str) else None
        found = found or lone_surrogate(v, key)
        if found:
            return found
    return None


SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")  # the only way a lone surrogate gets into JSON text


def bad_line(raw: bytes, path: Path, n: int, problems: Problems) -> dict | None:
    """One JSONL line -> the object, or None after reporting why it is not one."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        problems.add(f"not UTF-8 (byte {e.start})", path, n)
        return None
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError
        problems.add(json_problem(e), path, n)
        return None
    if not isinstance(obj, dict):
        problems.add(f"expected a JSON object, got {type(obj).__name__}", path, n)
        return None
    try:
        where = lone_surrogate(obj) if SURROGATE_ESCAPE.search(raw) else None
    except RecursionError as e:
        problems.add(json_problem(e), path, n)
        return None
    if where:
        problems.add(f"{where} holds a lone surrogate, half of a UTF-16 pair: not valid Unicode text", path, n)
        return None
    return obj


def is_file_or_absent(path: Path, problems: Problems) -> bool:
    """True when path is a file; False when it is absent, or (reported) a folder or something else."""
    if path.is_file():
        return True
    if path.exists():
        problems.add("expected a file, found a folder" if path.is_dir() else "expected a regular file", path)
    return False


def nonblank_lines(path: Path, problems: Problems) -> Iterator[tuple[int, bytes]]:
    """(line number, raw line) for each non-blank line of a file, a UTF-8 byte-order mark at its start skipped;
    an unreadable file goes to problems and yields nothing."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        problems.add(f"cannot read: {e.strerror}", path)
        return
    for n, line in enumerate(raw.removeprefix(BOM).split(b"\n"), start=1):
        if line.strip():
            yield n, line


def scan_jsonl(path: Path, problems: Problems) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line that parses, in order; each bad line goes to problems
    (a generator, so a strict caller stops at the first bad line of the file, whatever kind of bad).
    A UTF-8 byte-order mark at the start of the file is skipped."""
    for n, line in nonblank_lines(path, problems):
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


def load_qa(path: Path, doc_ids: set[str], problems: Problems | None = None, updates: bool = False,
            doc_hint: str = "") -> list[dict]:
    """qa.jsonl (updates: qa_updates.jsonl, where old_answers is required) -> questions.
    doc_hint: said after "doc_ids name missing documents: ..." (how this corpus names its documents)."""
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
            problems.add(f"doc_ids name missing documents: {', '.join(map(str, missing))}{doc_hint}", path, n)
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
    qa = load_qa(qa_path, ids, problems) if is_file_or_absent(qa_path, problems) else []
    upd_path, qa_upd_path = folder / "updates.jsonl", folder / "qa_updates.jsonl"
    updates = load_docs(upd_path, problems, require=False) if is_file_or_absent(upd_path, problems) else []
    qa_updates = []
    if is_file_or_absent(qa_upd_path, problems):
        qa_updates = load_qa(qa_upd_path, ids | {u["id"] for u in updates}, problems, updates=True)
    return Corpus(name=folder.name, path=folder, docs=docs, qa=qa, updates=updates, qa_updates=qa_updates)

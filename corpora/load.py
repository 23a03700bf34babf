"""Loaders for users' own data, each returning the same in-memory `Corpus` as the native folder.

Which loader reads a path is decided here, in one place (`load_path`):
  folder with docs.jsonl             native (corpora/__init__.py)
  folder with corpus.jsonl           BEIR: corpus.jsonl {"_id", "title", "text", "metadata"},
                                     queries.jsonl {"_id", "text", "metadata"}, qrels/<split>.tsv
                                     (query-id, corpus-id, score; header line optional)
  a .json file                       SQuAD v1.1 / v2.0 ({"data": [{"title", "paragraphs": [{"context", "qas"}]}]})
  folder of .txt / .md files         id = path relative to the folder ("guide/ports.txt"), title = first heading
                                     or stem; a qa.jsonl beside them (native schema, doc_ids naming those ids)
                                     gives the questions

How each maps onto the native schema:
  BEIR   a query with qrels score > 0 becomes a question: kind "fact", answers [] and doc_ids its relevant
         documents, "grades" {doc id: score} (nDCG gains; recall and MRR count every score > 0 as relevant);
         qrels/train.tsv gives split "train", any other file (test, dev) "test"; without a train.tsv the
         questions get the seeded train share below. The corpus is marked retrieval_only: BEIR has no gold
         answers, so only retrieval (gold_retrieved, recall) is scored.
  SQuAD  each paragraph context becomes a document ("<article>-<paragraph>", title = the article title);
         each question keeps its id, answers are the distinct answer texts, doc_ids its context; v2
         is_impossible becomes kind "unanswerable" with answers [] (doc_ids still names the context that
         lacks the answer, as in the shipped corpora). split: the seeded train share below (the default,
         "auto"), or "test" / "train" for all.
  text   a text folder without qa.jsonl has documents only; `ragft corpora make-qa` builds questions.

The seeded train share (`seeded_split`), so the fine-tuned arms of `ragft compare` have data to train on:
questions that share a document are one group (linked through any shared doc id); the groups are shuffled
with random.Random(SPLIT_SEED = 0) and taken into train, in that order, whenever the whole group still fits
under floor(TRAIN_SHARE x questions) (TRAIN_SHARE = 0.5); everything else is test. So a test question never
asks about a document a train question was drawn from: test facts are not train facts. When no group fits
(one document holds every question) the questions themselves are shuffled with the same seed and split at
that count. The split depends only on the file's contents, not on the run's --seed.

Bad input is one `file:line: what` (corpora.errors.InputError): JSON that Python cannot read (an integer of
more than 4300 digits, nesting deeper than ~1000 levels), a lone UTF-16 surrogate (\\ud800) in a string, a
SQuAD answer text that is not a string, a blank question, a qa.jsonl or qrels entry that is a folder. A UTF-8
byte-order mark at the start of a file is skipped. A symlink in a text folder that points outside it is
skipped with a warning on stderr, never read.
"""

from __future__ import annotations

import json
import os
import random
import re
import sys
from pathlib import Path

from corpora.schema import (Corpus, Problems, is_file_or_absent, json_problem, load_docs, load_native,
                            load_qa, lone_surrogate, nonblank_lines, resolve_corpus, scan_jsonl)

TEXT_SUFFIXES = (".txt", ".md")
TRAIN_SHARE = 0.5  # share of the questions seeded_split puts into train (floor)
SPLIT_SEED = 0  # seed of seeded_split's shuffle: fixed, so a file always splits the same way


def load_path(path: Path, problems: Problems | None = None) -> Corpus:
    """Dispatch on what the path is (module docstring)."""
    problems = Problems(strict=True) if problems is None else problems
    if path.is_dir() and (path / "docs.jsonl").is_file():
        return load_native(path, problems)
    if path.is_dir() and (path / "corpus.jsonl").is_file():
        return load_beir(path, problems)
    if path.is_file() and path.suffix.lower() == ".json":
        return load_squad(path, problems)
    if path.is_dir() and text_files(path):
        return load_text_folder(path, problems)
    problems.add("not a corpus: expected a folder with docs.jsonl (native) or corpus.jsonl (BEIR), "
                 "a SQuAD .json file, or a folder of .txt/.md files", path)
    return Corpus(name=path.stem, path=path, docs=[])


# --- the seeded train share ----------------------------------------------------------------------------------


def seeded_split(qa: list[dict], share: float = TRAIN_SHARE, seed: int = SPLIT_SEED) -> None:
    """Set every question's "split" in place: groups of questions that share a document go to train whole, in
    a seeded order, while they fit under floor(share x questions); the rest is test (module docstring)."""
    parent: dict = {}

    def find(x):
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for q in qa:
        for d in q["doc_ids"]:
            parent[find(("q", q["id"]))] = find(("d", d))
    groups: dict = {}  # root -> questions, in first-appearance order
    for q in qa:
        groups.setdefault(find(("q", q["id"])), []).append(q)
    target = int(len(qa) * share)
    order = list(groups.values())
    random.Random(seed).shuffle(order)
    train: list[dict] = []
    for g in order:
        if len(train) + len(g) <= target:
            train += g
    if not train and target:  # every group is larger than the share: split the questions themselves
        shuffled = list(qa)
        random.Random(seed).shuffle(shuffled)
        train = shuffled[:target]
    in_train = {id(q) for q in train}
    for q in qa:
        q["split"] = "train" if id(q) in in_train else "test"


# --- BEIR --------------------------------------------------------------------------------------------------


def qrels_split(path: Path) -> str:
    return "train" if path.stem == "train" else "test"


def load_beir(folder: Path, problems: Problems | None = None) -> Corpus:
    problems = Problems(strict=True) if problems is None else problems
    docs = load_docs(folder / "corpus.jsonl", problems)
    doc_ids = {d["id"] for d in docs}
    queries: dict[str, str] = {}
    q_path = folder / "queries.jsonl"
    for n, obj in scan_jsonl(q_path, problems) if is_file_or_absent(q_path, problems) else []:
        qid, text = obj.get("_id", obj.get("id")), obj.get("text")
        if not isinstance(qid, str) or not isinstance(text, str):
            problems.add("a query needs string fields '_id' and 'text'", q_path, n)
        elif qid in queries:
            problems.add(f"duplicate query id {qid!r}", q_path, n)
        elif not text.strip():
            problems.add(f"query {qid!r} has empty text", q_path, n)
        else:
            queries[qid] = text
            problems.locate(q_path, qid, n)
    relevant: dict[str, dict] = {}  # query id -> {"doc_ids": [...], "grades": {doc id: score}, "split": ...}
    qrels = sorted((folder / "qrels").glob("*.tsv")) if (folder / "qrels").is_dir() else []
    if not qrels:
        problems.add("no qrels/*.tsv: BEIR queries need relevance judgements", folder / "qrels")
    for path in qrels:
        if not is_file_or_absent(path, problems):
            continue
        for n, line in nonblank_lines(path, problems):
            try:
                cols = line.decode("utf-8").rstrip("\r").split("\t")
            except UnicodeDecodeError as e:
                problems.add(f"not UTF-8 (byte {e.start})", path, n)
                continue
            if n == 1 and cols[0] in ("query-id", "query_id", "qid"):
                continue  # header
            if len(cols) != 3:
                problems.add(f"expected 3 tab-separated columns (query-id, corpus-id, score), got {len(cols)}",
                             path, n)
                continue
            qid, did, score = cols
            try:
                score = int(score)
            except ValueError:
                problems.add(f"score must be an integer, got {score[:40]!r}", path, n)
                continue
            if qid not in queries:
                problems.add(f"query id {qid!r} is not in queries.jsonl", path, n)
            elif did not in doc_ids:
                problems.add(f"corpus id {did!r} is not in corpus.jsonl", path, n)
            elif score > 0:
                rel = relevant.setdefault(qid, {"doc_ids": [], "grades": {}, "split": qrels_split(path)})
                if qrels_split(path) == "test":  # a query judged in train and test files is a test query
                    rel["split"] = "test"
                if did not in rel["doc_ids"]:
                    rel["doc_ids"].append(did)
                rel["grades"][did] = max(score, rel["grades"].get(did, 0))
    qa = [{"id": qid, "question": queries[qid], "answers": [], "doc_ids": rel["doc_ids"], "kind": "fact",
           "split": rel["split"], "paraphrase_of": None, "grades": rel["grades"]} for qid, rel in relevant.items()]
    if not any(qrels_split(p) == "train" for p in qrels):  # no train judgements: the seeded train share
        seeded_split(qa)
    return Corpus(name=folder.name, path=folder, docs=docs, qa=qa, fmt="beir", retrieval_only=True)


# --- SQuAD -------------------------------------------------------------------------------------------------

# A lone surrogate escape: a high one (\ud800-\udbff) not followed by a low one, or a low one not after a high.
LONE_ESCAPE = re.compile(r"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
                         r"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}")


def line_at(text: str, pos: int | None) -> int | None:
    return None if pos is None else text.count("\n", 0, pos) + 1


def deepest_line(text: str) -> int | None:
    """The line where the JSON text first reaches its deepest nesting of [ and { (strings skipped)."""
    depth, best, at, in_str, esc, line = 0, 0, None, False, False, 1
    for ch in text:
        if ch == "\n":
            line += 1
        if in_str:
            esc, in_str = (False, True) if esc else (ch == "\\", ch != '"')
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if depth > best:
                best, at = depth, line
        elif ch in "]}":
            depth -= 1
    return at


def json_error_line(text: str, e: Exception) -> int | None:
    """The line of what json.loads raised: its own for syntax errors, found in the text for the others."""
    if isinstance(e, json.JSONDecodeError):
        return e.lineno
    if isinstance(e, RecursionError):
        return deepest_line(text)
    m = re.search(r"\d{%d,}" % (sys.get_int_max_str_digits() + 1), text)
    return line_at(text, m.start() if m else None)


def question_line(text: str, qid) -> int | None:
    """The line of `"id": "<qid>"` in a SQuAD file (the question's own line), None when not found."""
    if not isinstance(qid, str):
        return None
    for quoted in dict.fromkeys((json.dumps(qid), json.dumps(qid, ensure_ascii=False))):
        m = re.search(r'"id"\s*:\s*' + re.escape(quoted), text)
        if m:
            return line_at(text, m.start())
    return None


def load_squad(path: Path, problems: Problems | None = None, split: str = "auto") -> Corpus:
    """SQuAD v1.1/v2.0 JSON. Errors name the file, the line where it can be found (a question's "id") and the
    JSON position (data[i].paragraphs[j].qas[k]). split: auto (the seeded train share), test or train."""
    problems = Problems(strict=True) if problems is None else problems
    if split not in ("auto", "train", "test"):
        problems.add(f"split must be auto, train or test, got {split!r}", path)
    empty = Corpus(name=path.stem, path=path, docs=[], fmt="squad")
    try:
        raw = path.read_bytes()
    except OSError as e:
        problems.add(f"cannot read: {e.strerror}", path)
        return empty
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        problems.add(f"not UTF-8 (byte {e.start})", path, raw[:e.start].count(b"\n") + 1)
        return empty
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError
        problems.add(json_problem(e), path, json_error_line(text, e))
        return empty
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        problems.add("not SQuAD: expected an object with a 'data' list", path)
        return empty
    where = lone_surrogate(data) if LONE_ESCAPE.search(text) else None
    if where:
        m = LONE_ESCAPE.search(text)
        problems.add(f"a string holds a lone surrogate ({m.group(0)}), half of a UTF-16 pair: not valid Unicode "
                     "text", path, line_at(text, m.start()))
        return empty
    docs, qa, seen = [], [], set()
    for i, article in enumerate(data["data"]):
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            problems.add(f"data[{i}]: expected an object with a 'paragraphs' list", path)
            continue
        title = str(article.get("title", ""))
        for j, para in enumerate(paragraphs):
            where = f"data[{i}].paragraphs[{j}]"
            if not isinstance(para, dict) or not isinstance(para.get("context"), str) or not para["context"].strip():
                problems.add(f"{where}: missing or empty 'context'", path)
                continue
            doc_id = f"{i}-{j}"
            docs.append({"id": doc_id, "title": title.replace("_", " "), "text": para["context"]})
            qas = para.get("qas") or []
            if not isinstance(qas, list):
                problems.add(f"{where}: 'qas' must be a list, got {type(qas).__name__}", path)
                continue
            for k, q in enumerate(qas):
                at = f"{where}.qas[{k}]"
                line = question_line(text, q.get("id")) if isinstance(q, dict) else None
                if not isinstance(q, dict) or not isinstance(q.get("id"), str) or not isinstance(q.get("question"), str):
                    problems.add(f"{at}: a question needs string fields 'id' and 'question'", path, line)
                    continue
                if q["id"] in seen:
                    problems.add(f"{at}: duplicate question id {q['id']!r}", path, line)
                    continue
                seen.add(q["id"])
                if not q["question"].strip():
                    problems.add(f"{at}: question {q['id']!r} is blank", path, line)
                    continue
                impossible = bool(q.get("is_impossible", False))
                given = q.get("answers", [])
                if not isinstance(given, list):
                    problems.add(f"{at}: 'answers' must be a list, got {type(given).__name__}", path, line)
                    continue
                bad = next((m for m, a in enumerate(given)
                            if not isinstance(a, dict) or not isinstance(a.get("text", ""), str)), None)
                if bad is not None:
                    a = given[bad]
                    what = (f"'text' must be a string, got {type(a.get('text')).__name__} {a.get('text')!r}"[:120]
                            if isinstance(a, dict) else f"must be an object with 'text', got {type(a).__name__}")
                    problems.add(f"{at}.answers[{bad}]: {what}", path, line)
                    continue
                answers = [] if impossible else list(dict.fromkeys(
                    a["text"].strip() for a in given if a.get("text", "").strip()))
                if not impossible and not answers:
                    problems.add(f"{at}: question {q['id']!r} has no answers and is not is_impossible", path, line)
                    continue
                qa.append({"id": q["id"], "question": q["question"], "answers": answers, "doc_ids": [doc_id],
                           "kind": "unanswerable" if impossible else "fact",
                           "split": "test" if split == "auto" else split, "paraphrase_of": None})
    if not docs:
        problems.add("no documents", path)
    if split == "auto":
        seeded_split(qa)
    return Corpus(name=path.stem, path=path, docs=docs, qa=qa, fmt="squad")


# --- folder of .txt / .md ----------------------------------------------------------------------------------


def first_heading(text: str) -> str:
    """The first markdown heading ('# Title'), or '' if none."""
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("#") and s.lstrip("#").strip():
            return s.lstrip("#").strip()
    return ""


def text_files(folder: Path, outside: list[Path] | None = None) -> list[Path]:
    """The .txt/.md files below folder, sorted; hidden files and folders (.git, .obsidian) left out, and so is
    anything that resolves outside the folder (a symlink to elsewhere: appended to `outside`, never read).
    Symlinked folders inside it are followed once each."""
    root = folder.resolve()
    found, seen = [], set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        here = Path(dirpath)
        if here.resolve() in seen:  # a link back to a folder already walked
            dirnames[:] = []
            continue
        seen.add(here.resolve())
        keep = []
        for d in dirnames:
            if d.startswith("."):
                continue
            if not (here / d).resolve().is_relative_to(root):
                if outside is not None:
                    outside.append(here / d)
                continue
            keep.append(d)
        dirnames[:] = keep
        for f in filenames:
            p = here / f
            if f.startswith(".") or p.suffix.lower() not in TEXT_SUFFIXES or not p.is_file():
                continue
            if not p.resolve().is_relative_to(root):
                if outside is not None:
                    outside.append(p)
                continue
            found.append(p)
    return sorted(found)


def load_text_folder(folder: Path, problems: Problems | None = None) -> Corpus:
    """Every .txt/.md file below the folder, sorted by relative path; the questions of a qa.jsonl beside them
    (native schema; doc_ids are those relative paths). Symlinks out of the folder: a warning, skipped."""
    problems = Problems(strict=True) if problems is None else problems
    docs, outside = [], []
    for p in text_files(folder, outside):
        try:
            raw = p.read_bytes()
        except OSError as e:
            problems.add(f"cannot read: {e.strerror}", p)
            continue
        try:
            text = raw.decode("utf-8").removeprefix("\ufeff")
        except UnicodeDecodeError as e:
            problems.add(f"not UTF-8 (byte {e.start})", p, raw[:e.start].count(b"\n") + 1)
            continue
        if not text.strip():
            problems.add("empty document", p)
            continue
        docs.append({"id": p.relative_to(folder).as_posix(), "title": first_heading(text) or p.stem, "text": text})
    for p in outside:
        print(f"ragft: warning: {p}: skipped, a symlink to {os.path.realpath(p)}, outside {folder}",
              file=sys.stderr)
    qa_path, qa = folder / "qa.jsonl", []
    if is_file_or_absent(qa_path, problems):
        shown = ", ".join(repr(d["id"]) for d in docs[:3]) + (", ..." if len(docs) > 3 else "")
        qa = load_qa(qa_path, {d["id"] for d in docs}, problems,
                     doc_hint=f" (a text folder names its documents by their path below the folder: {shown})")
    return Corpus(name=folder.name, path=folder, docs=docs, qa=qa, fmt="text")


def load_corpus(name_or_path: str, problems: Problems | None = None) -> Corpus:
    """Load a corpus by shipped name or path, in any supported format (corpora/load.py says which).

    Raises InputError (file:line) on the first bad row; pass Problems(strict=False) to collect them all.
    """
    return load_path(resolve_corpus(name_or_path), problems)

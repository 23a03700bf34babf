"""Loaders for users' own data, each returning the same in-memory `Corpus` as the native folder.

Which loader reads a path is decided here, in one place (`load_path`):
  folder with docs.jsonl             native (corpora/__init__.py)
  folder with corpus.jsonl           BEIR: corpus.jsonl {"_id", "title", "text", "metadata"},
                                     queries.jsonl {"_id", "text", "metadata"}, qrels/<split>.tsv
                                     (query-id, corpus-id, score; header line optional)
  a .json file                       SQuAD v1.1 / v2.0 ({"data": [{"title", "paragraphs": [{"context", "qas"}]}]})
  folder of .txt / .md files         documents only: id = path relative to the folder, title = first heading or stem

How each maps onto the native schema:
  BEIR   a query with qrels score > 0 becomes a question: kind "fact", answers [] and doc_ids its relevant
         documents; qrels/train.tsv gives split "train", any other file (test, dev) "test". The corpus is
         marked retrieval_only: BEIR has no gold answers, so only retrieval (gold_retrieved, recall) is scored.
  SQuAD  each paragraph context becomes a document ("<article>-<paragraph>", title = the article title);
         each question keeps its id, answers are the distinct answer texts, doc_ids its context; v2
         is_impossible becomes kind "unanswerable" with answers [] (doc_ids still names the context that
         lacks the answer, as in the shipped corpora). split: "test" for all (the default) or "train".
"""

from __future__ import annotations

import json
from pathlib import Path

from corpora import Corpus, Problems, load_docs, load_native, scan_jsonl

TEXT_SUFFIXES = (".txt", ".md")


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


# --- BEIR --------------------------------------------------------------------------------------------------


def qrels_split(path: Path) -> str:
    return "train" if path.stem == "train" else "test"


def load_beir(folder: Path, problems: Problems | None = None) -> Corpus:
    problems = Problems(strict=True) if problems is None else problems
    docs = load_docs(folder / "corpus.jsonl", problems)
    doc_ids = {d["id"] for d in docs}
    queries: dict[str, str] = {}
    q_path = folder / "queries.jsonl"
    for n, obj in scan_jsonl(q_path, problems) if q_path.is_file() else []:
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
    relevant: dict[str, dict] = {}  # query id -> {"doc_ids": [...], "split": ...}
    qrels = sorted((folder / "qrels").glob("*.tsv")) if (folder / "qrels").is_dir() else []
    if not qrels:
        problems.add("no qrels/*.tsv: BEIR queries need relevance judgements", folder / "qrels")
    for path in qrels:
        for n, raw in enumerate(path.read_bytes().split(b"\n"), start=1):
            if not raw.strip():
                continue
            try:
                cols = raw.decode("utf-8").rstrip("\r").split("\t")
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
                problems.add(f"score must be an integer, got {score!r}", path, n)
                continue
            if qid not in queries:
                problems.add(f"query id {qid!r} is not in queries.jsonl", path, n)
            elif did not in doc_ids:
                problems.add(f"corpus id {did!r} is not in corpus.jsonl", path, n)
            elif score > 0:
                rel = relevant.setdefault(qid, {"doc_ids": [], "split": qrels_split(path)})
                if qrels_split(path) == "test":  # a query judged in train and test files is a test query
                    rel["split"] = "test"
                if did not in rel["doc_ids"]:
                    rel["doc_ids"].append(did)
    qa = [{"id": qid, "question": queries[qid], "answers": [], "doc_ids": rel["doc_ids"], "kind": "fact",
           "split": rel["split"], "paraphrase_of": None} for qid, rel in relevant.items()]
    return Corpus(name=folder.name, path=folder, docs=docs, qa=qa, fmt="beir", retrieval_only=True)


# --- SQuAD -------------------------------------------------------------------------------------------------


def load_squad(path: Path, problems: Problems | None = None, split: str = "test") -> Corpus:
    """SQuAD v1.1/v2.0 JSON. Errors name the file and the JSON position (data[i].paragraphs[j].qas[k])."""
    problems = Problems(strict=True) if problems is None else problems
    if split not in ("train", "test"):
        problems.add(f"split must be train or test, got {split!r}", path)
    empty = Corpus(name=path.stem, path=path, docs=[], fmt="squad")
    try:
        raw = path.read_bytes()
    except OSError as e:
        problems.add(f"cannot read: {e.strerror}", path)
        return empty
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        problems.add(f"not UTF-8 (byte {e.start})", path, raw[:e.start].count(b"\n") + 1)
        return empty
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        problems.add(f"malformed JSON: {e.msg} at column {e.colno}", path, e.lineno)
        return empty
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        problems.add("not SQuAD: expected an object with a 'data' list", path)
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
            for k, q in enumerate(para.get("qas") or []):
                at = f"{where}.qas[{k}]"
                if not isinstance(q, dict) or not isinstance(q.get("id"), str) or not isinstance(q.get("question"), str):
                    problems.add(f"{at}: a question needs string fields 'id' and 'question'", path)
                    continue
                if q["id"] in seen:
                    problems.add(f"{at}: duplicate question id {q['id']!r}", path)
                    continue
                seen.add(q["id"])
                impossible = bool(q.get("is_impossible", False))
                answers = [] if impossible else list(dict.fromkeys(
                    a["text"].strip() for a in q.get("answers", []) if isinstance(a, dict) and str(a.get("text", "")).strip()))
                if not impossible and not answers:
                    problems.add(f"{at}: question {q['id']!r} has no answers and is not is_impossible", path)
                    continue
                qa.append({"id": q["id"], "question": q["question"], "answers": answers, "doc_ids": [doc_id],
                           "kind": "unanswerable" if impossible else "fact", "split": split, "paraphrase_of": None})
    if not docs:
        problems.add("no documents", path)
    return Corpus(name=path.stem, path=path, docs=docs, qa=qa, fmt="squad")


# --- folder of .txt / .md ----------------------------------------------------------------------------------


def first_heading(text: str) -> str:
    """The first markdown heading ('# Title'), or '' if none."""
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("#") and s.lstrip("#").strip():
            return s.lstrip("#").strip()
    return ""


def text_files(folder: Path) -> list[Path]:
    """The .txt/.md files below folder, sorted; hidden files and folders (.git, .obsidian) left out."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in TEXT_SUFFIXES and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def load_text_folder(folder: Path, problems: Problems | None = None) -> Corpus:
    """Every .txt/.md file below the folder, sorted by relative path; documents only, no questions."""
    problems = Problems(strict=True) if problems is None else problems
    docs = []
    for p in text_files(folder):
        raw = p.read_bytes()
        try:
            text = raw.decode("utf-8").removeprefix("\ufeff")
        except UnicodeDecodeError as e:
            problems.add(f"not UTF-8 (byte {e.start})", p, raw[:e.start].count(b"\n") + 1)
            continue
        if not text.strip():
            problems.add("empty document", p)
            continue
        docs.append({"id": p.relative_to(folder).as_posix(), "title": first_heading(text) or p.stem, "text": text})
    return Corpus(name=folder.name, path=folder, docs=docs, fmt="text")


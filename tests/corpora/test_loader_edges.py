"""Loader edges (issue 17 item 6): each bad input is one `file:line: what` line (InputError with path and line),
or, for a BOM, accepted; never a traceback. In-process and model-free: each case is loaded directly and through
`ragft corpora validate` (cli.main.main), which must exit 2 with exactly one line on stderr."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from corpora import load_corpus
from corpora.errors import InputError
from tests.conftest import TINY_DOCS, TINY_QA, write_jsonl

BOM = b"\xef\xbb\xbf"


def native(folder: Path, docs_raw: bytes | None = None, qa_raw: bytes | None = None) -> Path:
    folder.mkdir(parents=True)
    if docs_raw is None:
        write_jsonl(folder / "docs.jsonl", TINY_DOCS)
    else:
        (folder / "docs.jsonl").write_bytes(docs_raw)
    if qa_raw is None:
        write_jsonl(folder / "qa.jsonl", TINY_QA)
    else:
        (folder / "qa.jsonl").write_bytes(qa_raw)
    return folder


def lines(rows) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


def squad(path: Path, qas: list, context: str = "Port Ilmaren was founded in 1403 by Corvane Ilmar.") -> Path:
    path.write_text(json.dumps({"version": "v2.0", "data": [{"title": "T", "paragraphs": [
        {"context": context, "qas": qas}]}]}, indent=1))
    return path


def beir(folder: Path) -> Path:
    (folder / "qrels").mkdir(parents=True)
    write_jsonl(folder / "corpus.jsonl", [{"_id": "c1", "title": "Tides", "text": "Tides are driven by the moon."},
                                          {"_id": "c2", "title": "Salt", "text": "Sea salt is sodium chloride."}])
    write_jsonl(folder / "queries.jsonl", [{"_id": "1", "text": "what drives the tides"},
                                           {"_id": "2", "text": "what is sea salt"}])
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n1\tc1\t1\n2\tc2\t2\n")
    return folder


def validate_cli(path: Path, capsys) -> str:
    """`ragft corpora validate PATH` in-process: exit 2, each problem one `file[:line]: what` line on stdout,
    one summary line on stderr, no traceback -> stdout."""
    from cli.main import main

    with pytest.raises(SystemExit) as e:
        main(["corpora", "validate", str(path)])
    out, err = capsys.readouterr()
    assert e.value.code == 2, out + err
    assert "Traceback" not in out + err
    assert len(err.strip().splitlines()) == 1 and err.startswith("ragft: ") and " problem" in err, err
    return out


def expect(path: Path, pattern: str, capsys, cli_pattern: str | None = None) -> InputError:
    """load_corpus raises one InputError matching `pattern` (which names file:line); validate reports it too."""
    with pytest.raises(InputError, match=pattern) as e:
        load_corpus(str(path))
    assert "\n" not in str(e.value)
    out = validate_cli(path, capsys)
    assert re.search(cli_pattern or pattern, out), out
    return e.value


def test_integer_of_5000_digits_is_one_line(tmp_path, capsys):
    rows = lines(TINY_QA[:1]) + b'{"id": "q2", "question": "x?", "answers": [], "doc_ids": [], "kind": "unanswerable", ' \
        b'"split": "test", "n": ' + b"7" * 5000 + b"}\n"
    d = native(tmp_path / "c", qa_raw=rows)
    e = expect(d, r"qa.jsonl:2: malformed JSON: an integer longer than 4300 digits", capsys, r"qa.jsonl:2:")
    assert e.line == 2 and e.path.endswith("qa.jsonl")
    # SQuAD: json.loads reads the whole file; the line is found in the text
    s = tmp_path / "big.json"
    s.write_text('{"data": [\n{"title": "t", "paragraphs": []},\n{"n": ' + "9" * 5000 + "}\n]}")
    expect(s, r"big.json:3: malformed JSON: an integer longer than 4300 digits", capsys)


def test_100k_deep_nesting_is_one_line(tmp_path, capsys):
    deep = b'{"id": "d1", "title": "", "text": "x", "deep": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"
    d = native(tmp_path / "c", docs_raw=deep + lines(TINY_DOCS[1:]))
    expect(d, r"docs.jsonl:1: malformed JSON: nested too deeply", capsys, r"docs.jsonl:1:")
    s = tmp_path / "deep.json"
    s.write_text('{"data": [\n{"title": "t",\n "paragraphs": ' + "[" * 100_000 + "]" * 100_000 + "}]}")
    expect(s, r"deep.json:3: malformed JSON: nested too deeply", capsys)


def test_lone_surrogate_is_rejected_at_load(tmp_path, capsys):
    docs = lines([{**TINY_DOCS[0]}, TINY_DOCS[1]]) + b'{"id": "d3", "title": "L", "text": "bad \\ud800 here"}\n'
    d = native(tmp_path / "c", docs_raw=docs)
    expect(d, r"docs.jsonl:3: field 'text' \(\\ud800\) holds a lone surrogate", capsys, r"docs.jsonl:3:")
    # a low surrogate alone, in a question, and in a key of a nested object
    qa = lines(TINY_QA[:2]) + b'{"id": "q3", "question": "How tall \\udc00?", "answers": [], "doc_ids": [], ' \
        b'"kind": "unanswerable", "split": "test"}\n'
    expect(native(tmp_path / "c2", qa_raw=qa), r"qa.jsonl:3: field 'question' \(\\udc00\) holds a lone", capsys)
    # a proper pair (an emoji written as two escapes) is text, and loads
    ok = lines(TINY_DOCS[:2]) + b'{"id": "d3", "title": "L", "text": "The Lantern Festival \\ud83d\\ude00 of Brask."}\n'
    c = load_corpus(str(native(tmp_path / "c3", docs_raw=ok)))
    assert c.docs[2]["text"] == "The Lantern Festival \U0001F600 of Brask."
    # SQuAD: the line of the escape
    s = tmp_path / "sur.json"
    s.write_text('{"data": [{"title": "T", "paragraphs": [\n{"context": "Port \\ud800 Ilmaren.", "qas": []}]}]}')
    expect(s, r"sur.json:2: a string holds a lone surrogate \(\\ud800\)", capsys)


def test_squad_answer_text_that_is_a_number(tmp_path, capsys):
    s = squad(tmp_path / "num.json", [
        {"id": "a1", "question": "Who founded Port Ilmaren?", "answers": [{"text": "Corvane Ilmar", "answer_start": 35}]},
        {"id": "a2", "question": "When was Port Ilmaren founded?", "answers": [{"text": 1403, "answer_start": 28}]}])
    e = expect(s, r"num.json:\d+: data\[0\]\.paragraphs\[0\]\.qas\[1\]\.answers\[0\]: 'text' must be a string, "
                  r"got int 1403", capsys)
    text = s.read_text().splitlines()
    assert '"a2"' in text[e.line - 1]  # the line of the question's id


def test_blank_squad_question(tmp_path, capsys):
    s = squad(tmp_path / "blank.json", [{"id": "b1", "question": "   ", "answers": [{"text": "1403"}]}])
    e = expect(s, r"blank.json:\d+: data\[0\]\.paragraphs\[0\]\.qas\[0\]: question 'b1' is blank", capsys)
    assert '"b1"' in s.read_text().splitlines()[e.line - 1]


def test_qrels_entry_that_is_a_folder(tmp_path, capsys):
    b = beir(tmp_path / "b")
    (b / "qrels" / "dev.tsv").mkdir()
    expect(b, r"qrels/dev.tsv: expected a file, found a folder", capsys)


def test_qa_jsonl_that_is_a_folder(tmp_path, capsys):
    d = tmp_path / "c"
    d.mkdir()
    write_jsonl(d / "docs.jsonl", TINY_DOCS)
    (d / "qa.jsonl").mkdir()  # today: 0 questions, silently
    expect(d, r"qa.jsonl: expected a file, found a folder", capsys)
    t = tmp_path / "notes"
    t.mkdir()
    (t / "a.md").write_text("# A\nAlpha is first.\n")
    (t / "qa.jsonl").mkdir()
    expect(t, r"notes/qa.jsonl: expected a file, found a folder", capsys)


def test_utf8_bom_at_the_start_of_a_file_is_accepted(tmp_path, capsys):
    from cli.main import main

    d = native(tmp_path / "c", docs_raw=BOM + lines(TINY_DOCS), qa_raw=BOM + lines(TINY_QA))
    c = load_corpus(str(d))
    assert [x["id"] for x in c.docs] == ["d1", "d2", "d3"] and [q["id"] for q in c.qa] == ["q1", "q2", "q3"]
    with pytest.raises(SystemExit) as e:
        main(["corpora", "validate", str(d)])
    assert e.value.code == 0
    assert "OK (native): 3 documents, 3 questions" in capsys.readouterr().out
    b = beir(tmp_path / "b")
    for name in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"):
        (b / name).write_bytes(BOM + (b / name).read_bytes())
    assert {q["id"] for q in load_corpus(str(b)).qa} == {"1", "2"}
    s = squad(tmp_path / "bom.json", [{"id": "a1", "question": "Who founded it?", "answers": [{"text": "Corvane Ilmar"}]}])
    s.write_bytes(BOM + s.read_bytes())
    assert [q["answers"] for q in load_corpus(str(s)).qa] == [["Corvane Ilmar"]]
    # a BOM anywhere else is not skipped: it is part of the line (and malformed JSON there)
    bad = native(tmp_path / "c2", docs_raw=lines(TINY_DOCS[:1]) + BOM + lines(TINY_DOCS[1:]))
    expect(bad, r"docs.jsonl:2: malformed JSON", capsys)


def test_symlink_out_of_a_text_folder_is_skipped_with_a_warning(tmp_path, capsys):
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "passwords.txt").write_text("root: hunter2\n")
    notes = tmp_path / "notes"
    (notes / "sub").mkdir(parents=True)
    (notes / "a.md").write_text("# Alpha\nAlpha is first.\n")
    (notes / "leak.txt").symlink_to(secret / "passwords.txt")
    (notes / "outside").symlink_to(secret, target_is_directory=True)
    (notes / "sub" / "b.txt").write_text("Beta is second.\n")
    (notes / "alias.md").symlink_to(notes / "a.md")  # a link inside the folder is read
    (notes / "sub" / "loop").symlink_to(notes, target_is_directory=True)  # walked once, no endless loop
    c = load_corpus(str(notes))
    err = capsys.readouterr().err
    assert [d["id"] for d in c.docs] == ["a.md", "alias.md", "sub/b.txt"]
    assert not any("hunter2" in d["text"] for d in c.docs)
    warned = err.strip().splitlines()
    assert len(warned) == 2 and all(w.startswith("ragft: warning: ") and "outside" in w for w in warned)
    assert any("leak.txt" in w for w in warned) and any(w.split(": ")[2].endswith("outside") for w in warned)
    assert "Traceback" not in err


def test_index_manifest_embedder_must_stay_inside_or_be_known(tmp_path):
    """A copied index whose manifest names a model folder elsewhere is refused at load (one line); the shipped
    name, a folder inside the index folder, a hub id and the embedder the user named are loaded."""
    from dataclasses import asdict

    import faiss
    import numpy as np

    from rag.index import Index, IndexConfig, build_sparse, check_manifest_embedder, chunk_documents, chunk_view, \
        corpus_hash, load_index
    from rag.query import tokenize

    chunks = chunk_documents(TINY_DOCS, 500, 50)
    tokens = [tokenize(chunk_view(c)) for c in chunks]
    vecs = np.random.default_rng(0).standard_normal((len(chunks), 384)).astype(np.float32)
    dense = faiss.IndexFlatIP(384)
    dense.add(vecs)
    manifest = {"config": asdict(IndexConfig()), "n_docs": 3, "n_chunks": len(chunks), "dim": 384,
                "corpus_hash": corpus_hash(TINY_DOCS), "source_hash": corpus_hash(TINY_DOCS), "build_seconds": 0.0,
                "timings": {}, "doc_hashes": {}, "updates": []}
    idx = tmp_path / "idx"
    Index(chunks, build_sparse(tokens, "bm25s"), dense, manifest, tokens=tokens).save(idx)
    assert load_index(idx).manifest["config"]["embedder"] == "minilm-l6"
    elsewhere = tmp_path / "evil-model"
    elsewhere.mkdir()
    m = json.loads((idx / "manifest.json").read_text())
    m["config"]["embedder"] = str(elsewhere)
    (idx / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(InputError, match=r"idx: manifest.json names the embedder folder .*evil-model.*, outside the "
                                         r"index folder") as e:
        load_index(idx)
    assert "\n" not in str(e.value)
    assert load_index(idx, embedder=str(elsewhere)).manifest["n_chunks"] == len(chunks)  # the user named it
    # ../ out of the folder is outside too; a folder inside it, and a hub id (cache only), are fine
    for name, ok in ((str(idx / ".." / "evil-model"), False), (str(idx / "embedder"), True),
                     ("sentence-transformers/all-MiniLM-L6-v2", True)):
        (idx / "embedder").mkdir(exist_ok=True)
        if ok:
            check_manifest_embedder(idx, {"config": {"embedder": name}})
        else:
            with pytest.raises(InputError, match="outside the index folder"):
                check_manifest_embedder(idx, {"config": {"embedder": name}})
    # a symlink inside the index folder that points out is outside
    os.symlink(elsewhere, idx / "linked")
    with pytest.raises(InputError, match="outside the index folder"):
        check_manifest_embedder(idx, {"config": {"embedder": str(idx / "linked")}})

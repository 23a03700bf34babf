"""Loaders for users' data: a tiny sample of each format, built in a temp dir, read into the same Corpus."""

import json

import pytest

from tests.conftest import write_jsonl
from corpora import load_corpus
from corpora.errors import InputError
from corpora.validate import validate


@pytest.fixture
def beir(tmp_path):
    d = tmp_path / "scifact-mini"
    (d / "qrels").mkdir(parents=True)
    write_jsonl(d / "corpus.jsonl", [
        {"_id": "c1", "title": "Tides", "text": "Tides are driven by the moon.", "metadata": {}},
        {"_id": "c2", "title": "Salt", "text": "Sea salt is mostly sodium chloride.", "metadata": {"y": 1}},
        {"_id": "c3", "title": "", "text": "Kelp forests grow in cold water."},
    ])
    write_jsonl(d / "queries.jsonl", [
        {"_id": "1", "text": "what drives the tides", "metadata": {}},
        {"_id": "2", "text": "what is sea salt made of"},
        {"_id": "3", "text": "where does kelp grow"},
        {"_id": "4", "text": "a query nobody judged"},
    ])
    (d / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n1\tc1\t1\n2\tc2\t2\n2\tc3\t0\n")
    (d / "qrels" / "train.tsv").write_text("3\tc3\t1\n")
    return d


def test_beir_folder_becomes_retrieval_only_questions(beir):
    c = load_corpus(str(beir))
    assert c.fmt == "beir" and c.retrieval_only
    assert [d["id"] for d in c.docs] == ["c1", "c2", "c3"]
    assert c.docs[1] == {"id": "c2", "title": "Salt", "text": "Sea salt is mostly sodium chloride."}
    qa = {q["id"]: q for q in c.qa}
    assert set(qa) == {"1", "2", "3"}  # query 4 has no judgement; score 0 (2 -> c3) is not relevant
    assert qa["2"]["doc_ids"] == ["c2"] and qa["2"]["question"] == "what is sea salt made of"
    assert (qa["1"]["split"], qa["3"]["split"]) == ("test", "train")
    assert all(q["answers"] == [] and q["kind"] == "fact" for q in c.qa)
    corpus, problems = validate(str(beir))
    assert problems == [] and corpus.retrieval_only


def test_beir_bad_qrels_line_names_file_and_line(beir):
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n1\tc1\t1\n1\tc404\t1\n")
    with pytest.raises(InputError, match=r"qrels/test.tsv:3: corpus id 'c404' is not in corpus.jsonl"):
        load_corpus(str(beir))


SQUAD_V2 = {"version": "v2.0", "data": [
    {"title": "Port_Ilmaren", "paragraphs": [
        {"context": "Port Ilmaren was founded in 1403 by Corvane Ilmar.", "qas": [
            {"id": "s1", "question": "Who founded Port Ilmaren?", "is_impossible": False,
             "answers": [{"text": "Corvane Ilmar", "answer_start": 35}, {"text": "Corvane Ilmar", "answer_start": 35},
                         {"text": "Ilmar", "answer_start": 43}]},
            {"id": "s2", "question": "How tall is the Port Ilmaren lighthouse?", "is_impossible": True,
             "answers": [], "plausible_answers": [{"text": "1403", "answer_start": 28}]},
        ]},
        {"context": "The river Sorrowin meets the sea at Port Ilmaren.", "qas": [
            {"id": "s3", "question": "Which river meets the sea at Port Ilmaren?", "is_impossible": False,
             "answers": [{"text": "Sorrowin", "answer_start": 10}]}]},
    ]},
    {"title": "Saltglass", "paragraphs": [{"context": "Saltglass is blue.", "qas": []}]},
]}


def test_squad_v2_contexts_become_documents_and_impossible_unanswerable(tmp_path):
    path = tmp_path / "dev-v2.0.json"
    path.write_text(json.dumps(SQUAD_V2))
    c = load_corpus(str(path))
    assert c.fmt == "squad" and not c.retrieval_only
    assert [(d["id"], d["title"]) for d in c.docs] == [("0-0", "Port Ilmaren"), ("0-1", "Port Ilmaren"),
                                                        ("1-0", "Saltglass")]
    qa = {q["id"]: q for q in c.qa}
    assert qa["s1"]["answers"] == ["Corvane Ilmar", "Ilmar"] and qa["s1"]["kind"] == "fact"
    assert qa["s2"]["kind"] == "unanswerable" and qa["s2"]["answers"] == [] and qa["s2"]["doc_ids"] == ["0-0"]
    assert qa["s3"]["doc_ids"] == ["0-1"]
    # the seeded train share (corpora/load.py: seeded_split): 3 questions -> 1 in train, a whole context's
    # group that fits (0-1's s3; 0-0 holds two), so no test question shares a document with a train one
    assert {q["id"]: q["split"] for q in c.qa} == {"s1": "test", "s2": "test", "s3": "train"}
    assert validate(str(path))[1] == []


def test_squad_v1_and_train_split(tmp_path):
    from corpora.load import load_squad

    v1 = {"version": "1.1", "data": [{"title": "T", "paragraphs": [
        {"context": "Oren Tasque leads the Saltglass Guild.",
         "qas": [{"id": "a", "question": "Who leads the guild?", "answers": [{"text": "Oren Tasque", "answer_start": 0}]}]}]}]}
    path = tmp_path / "train-v1.1.json"
    path.write_text(json.dumps(v1))
    c = load_squad(path, split="train")
    assert [(q["kind"], q["split"], q["answers"]) for q in c.qa] == [("fact", "train", ["Oren Tasque"])]


def test_squad_errors_name_file_and_place(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"data": [\n  {"title": "x",\n   "paragraphs": [}\n]}')
    with pytest.raises(InputError, match=r"bad.json:3: malformed JSON"):
        load_corpus(str(path))
    bad = json.loads(json.dumps(SQUAD_V2))
    bad["data"][0]["paragraphs"][1]["qas"][0]["answers"] = []
    path.write_text(json.dumps(bad))
    with pytest.raises(InputError, match=r"data\[0\]\.paragraphs\[1\]\.qas\[0\]: question 's3' has no answers"):
        load_corpus(str(path))


def test_text_folder_documents_only(tmp_path):
    d = tmp_path / "notes"
    (d / "guide").mkdir(parents=True)
    (d / "intro.md").write_text("Some preface.\n\n# Welcome to Brindle\n\nBrindle is a queue.\n")
    (d / "guide" / "ports.txt").write_text("Lantern listens on port 9130.\n")
    (d / "image.png").write_bytes(b"\x89PNG")
    (d / ".git").mkdir()
    (d / ".git" / "notes.md").write_text("# not a document\n")
    c = load_corpus(str(d))
    assert c.fmt == "text" and c.qa == []
    assert [(x["id"], x["title"]) for x in c.docs] == [("guide/ports.txt", "ports"), ("intro.md", "Welcome to Brindle")]
    assert c.docs[0]["text"] == "Lantern listens on port 9130.\n"
    assert validate(str(d))[1] == []
    (d / "guide" / "old.txt").write_bytes(b"line one\nna\xefve\n")
    with pytest.raises(InputError, match=r"guide/old.txt:2: not UTF-8"):
        load_corpus(str(d))


def test_unknown_path_kind_is_an_input_error(tmp_path):
    (tmp_path / "data.csv").write_text("a,b\n")
    with pytest.raises(InputError, match="not a corpus"):
        load_corpus(str(tmp_path))

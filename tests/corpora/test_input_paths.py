"""Every input path ends in a comparison or in one line naming the next command, before any model loads (issue
14 item 4): a text folder's qa.jsonl is read (or refused, saying why); SQuAD and BEIR get a seeded train share;
`compare` refuses a corpus without gold answers, or without questions, and `finetune` one without training
data, each naming `ragft corpora make-qa` (and `ragft retrieval-eval` / `--recipe docs`). Each error path:
exit 2, one line on stderr, no traceback, nothing written (cli.main.main in-process; no model is loaded)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corpora import load_corpus
from corpora.errors import InputError
from corpora.validate import validate
from tests.conftest import TINY_DOCS, write_jsonl


def text_folder(folder: Path, qa: list[dict] | None = None) -> Path:
    (folder / "guide").mkdir(parents=True)
    (folder / "intro.md").write_text("# Port Ilmaren\n\nPort Ilmaren was founded in 1632 by Quorra Vell.\n")
    (folder / "guide" / "guild.txt").write_text("The Saltglass Guild makes blue glass. Its guildmaster is Oren Tasque.\n")
    (folder / "festival.md").write_text("The Lantern Festival of Brask is held every autumn.\n")
    if qa is not None:
        write_jsonl(folder / "qa.jsonl", qa)
    return folder


TEXT_QA = [
    {"id": "t1", "question": "Who founded Port Ilmaren?", "answers": ["Quorra Vell"], "doc_ids": ["intro.md"],
     "kind": "fact", "split": "train"},
    {"id": "t2", "question": "Who leads the Saltglass Guild?", "answers": ["Oren Tasque"],
     "doc_ids": ["guide/guild.txt"], "kind": "fact", "split": "test"},
    {"id": "t3", "question": "When is the Lantern Festival held?", "answers": ["every autumn"],
     "doc_ids": ["festival.md"], "kind": "fact", "split": "test"},
]


def refused(argv: list[str], tmp_path: Path, monkeypatch, capsys, no_model: bool = True) -> str:
    """Run `ragft ARGV` in-process in an empty working folder: exit 2, one stderr line, no traceback, and the
    working folder (where --out, runs/ and the history would go) left as it was -> the error line."""
    from cli.main import main

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    if no_model:  # any model load is a failure of "before any model loads"
        import rag.models

        def no_load(*a, **k):
            raise AssertionError("a model was loaded before the input was refused")

        for name in ("load_causal_lm", "load_embedder", "load_generator"):
            if hasattr(rag.models, name):
                monkeypatch.setattr(rag.models, name, no_load)
        import finetune.train

        monkeypatch.setattr(finetune.train, "load_model", no_load)
        monkeypatch.setattr(finetune.train, "load_causal_lm", no_load)
    with pytest.raises(SystemExit) as e:
        main(argv)
    out, err = capsys.readouterr()
    assert e.value.code == 2, out + err
    assert "Traceback" not in out + err and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ragft: error: "), err
    assert sorted(p.name for p in work.iterdir()) == [], "something was written"
    return lines[0]


# --- a text folder with its own qa.jsonl -------------------------------------------------------------------


def test_text_folder_qa_jsonl_is_read_with_its_questions(tmp_path):
    d = text_folder(tmp_path / "notes", TEXT_QA)
    c = load_corpus(str(d))
    assert c.fmt == "text" and [x["id"] for x in c.docs] == ["festival.md", "guide/guild.txt", "intro.md"]
    assert [(q["id"], q["split"], q["doc_ids"]) for q in c.qa] == [
        ("t1", "train", ["intro.md"]), ("t2", "test", ["guide/guild.txt"]), ("t3", "test", ["festival.md"])]
    corpus, problems = validate(str(d))
    assert problems == [] and corpus.qa == c.qa
    # validate's cross-row checks see the file too, at its line: an answer that is in no named document
    bad = [*TEXT_QA[:2], {**TEXT_QA[2], "answers": ["every spring"]}]
    write_jsonl(d / "qa.jsonl", bad)
    problems = validate(str(d))[1]
    assert [str(p) for p in problems] == [f"{d / 'qa.jsonl'}:3: answers: none of 'every spring' appears in its "
                                          "doc_ids documents (festival.md)"]


def test_text_folder_qa_jsonl_naming_no_document_is_refused_saying_why(tmp_path, monkeypatch, capsys):
    d = text_folder(tmp_path / "notes", [*TEXT_QA[:2], {**TEXT_QA[2], "doc_ids": ["festival"]}])
    with pytest.raises(InputError, match=r"qa.jsonl:3: doc_ids name missing documents: festival \(a text folder "
                                         r"names its documents by their path below the folder: 'festival.md', "
                                         r"'guide/guild.txt', 'intro.md'\)"):
        load_corpus(str(d))
    line = refused(["compare", "--corpus", str(d), "--out", "run"], tmp_path, monkeypatch, capsys)
    assert f"{d / 'qa.jsonl'}:3: doc_ids name missing documents: festival (a text folder names" in line


# --- compare refuses what it cannot score ------------------------------------------------------------------


def test_compare_on_documents_without_questions_names_make_qa(tmp_path, monkeypatch, capsys):
    d = text_folder(tmp_path / "mydocs")
    line = refused(["compare", "--corpus", str(d), "--out", "run"], tmp_path, monkeypatch, capsys)
    assert line == (f"ragft: error: corpus 'mydocs' has no 'test' questions: build a QA set from its documents with "
                    f"`ragft corpora make-qa {d} --out DIR`, then `ragft compare --corpus DIR`")


def beir(folder: Path, train: bool = False, n: int = 6) -> Path:
    (folder / "qrels").mkdir(parents=True)
    write_jsonl(folder / "corpus.jsonl", [{"_id": f"c{i}", "title": f"T{i}", "text": f"Fact number {i} is {i * 7}."}
                                          for i in range(n)])
    write_jsonl(folder / "queries.jsonl", [{"_id": f"q{i}", "text": f"what is fact number {i}"} for i in range(n)])
    rows = [f"q{i}\tc{i}\t{1 + i % 2}" for i in range(n)] + ["q0\tc1\t1"]  # q0 and q1 share c1: one group
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(rows) + "\n")
    if train:
        (folder / "qrels" / "train.tsv").write_text(f"q{n - 1}\tc{n - 1}\t1\n")
    return folder


def test_compare_on_a_corpus_without_gold_answers_points_to_retrieval_eval_and_make_qa(tmp_path, monkeypatch, capsys):
    b = beir(tmp_path / "scifact")
    line = refused(["compare", "--corpus", str(b), "--out", "run"], tmp_path, monkeypatch, capsys)
    assert line == (f"ragft: error: corpus 'scifact' has no gold answers (beir: queries and relevance judgements "
                    f"only), so `ragft compare` cannot score answers: evaluate retrieval with `ragft retrieval-eval "
                    f"--corpus {b}`, or build a QA set with answers with `ragft corpora make-qa {b} --out DIR`")


def test_compare_ft_arms_without_training_data_name_make_qa_and_recipe_docs(tmp_path, monkeypatch, capsys):
    d = text_folder(tmp_path / "notes", [q for q in TEXT_QA if q["split"] == "test"])
    line = refused(["compare", "--corpus", str(d), "--systems", "base,ft", "--out", "run"], tmp_path, monkeypatch,
                   capsys)
    assert line == (f"ragft: error: no training examples from recipes 'qa' on corpus '{d}': its train split has no "
                    f"questions; build a QA set from its documents with `ragft corpora make-qa {d} --out DIR`, or "
                    "train on the documents alone with `--recipe docs`")
    # the same corpus passes the guard without ft arms, with --recipe docs, or with an adapter given
    from compare.config import CompareConfig
    from compare.guard import check_corpus_ready
    from compare.systems import parse_systems

    corpus = load_corpus(str(d))
    qs = corpus.questions("test")
    for systems, extra in (("base,rag", {}), ("base,ft", {"recipe": "docs"}), ("ft+rag", {"adapter": "somewhere"}),
                           ("ft:docs", {})):
        check_corpus_ready(corpus, qs, parse_systems(systems), CompareConfig(corpus=str(d), systems=systems, **extra))
    with pytest.raises(InputError, match=r"from recipes 'raft' on corpus"):
        check_corpus_ready(corpus, qs, parse_systems("raft+rag"), CompareConfig(corpus=str(d), systems="raft+rag"))


# --- finetune refuses before the model loads ---------------------------------------------------------------


def test_finetune_without_training_examples_fails_before_the_model_loads(tmp_path, monkeypatch, capsys):
    d = text_folder(tmp_path / "mydocs")
    line = refused(["finetune", "--corpus", str(d), "--out", "adapter"], tmp_path, monkeypatch, capsys)
    assert line == (f"ragft: error: no training examples from recipes 'qa,paraphrase' on corpus '{d}': its train "
                    f"split has no questions; build a QA set from its documents with `ragft corpora make-qa {d} "
                    "--out DIR`, or train on the documents alone with `--recipe docs`")
    b = beir(tmp_path / "scifact")  # a train share, but no gold answers to train on
    (tmp_path / "b").mkdir()
    line = refused(["finetune", "--corpus", str(b), "--recipe", "qa", "--out", "adapter"], tmp_path / "b",
                   monkeypatch, capsys)
    assert "no training examples from recipes 'qa'" in line and "it has no gold answers" in line
    assert "`--recipe docs`" in line


def test_check_training_data_rule():
    from corpora import Corpus
    from finetune.train import check_training_data

    qa = [{"id": "u", "question": "?", "answers": [], "doc_ids": [], "kind": "unanswerable", "split": "train"}]
    c = Corpus(name="c", path=Path("c"), docs=TINY_DOCS, qa=qa)
    check_training_data(c, ["qa"], "c")  # an unanswerable train question trains "I don't know." with abstain
    with pytest.raises(InputError, match="its train questions give no examples for these recipes"):
        check_training_data(c, ["qa", "raft"], "c", abstain=False)
    with pytest.raises(InputError):
        check_training_data(Corpus(name="c", path=Path("c"), docs=TINY_DOCS, qa=[{**qa[0], "answers": ["x"],
                                                                             "kind": "fact"}]),
                            ["paraphrase"], "c", paraphrases=0)
    check_training_data(Corpus(name="c", path=Path("c"), docs=TINY_DOCS), ["docs"], "c")


# --- the seeded train share of SQuAD and BEIR ---------------------------------------------------------------


ASKED = ["When was island {} charted?", "In which year did a captain first map island {}?",
         "What year is on the oldest chart of island {}?", "Island {} appears on charts from which year?",
         "Since when has island {} been known?"]


def squad_file(path: Path, paragraphs: int = 10, per: int = 2) -> Path:
    data = {"version": "v2.0", "data": [{"title": "Isles", "paragraphs": [
        {"context": f"Island {j} was charted in {1500 + j} by captain {j}.", "qas": [
            {"id": f"p{j}q{k}", "question": ASKED[k].format(j), "is_impossible": False,
             "answers": [{"text": f"{1500 + j}", "answer_start": 20}]} for k in range(per)]}
        for j in range(paragraphs)]}]}
    path.write_text(json.dumps(data))
    return path


def test_squad_gets_a_seeded_train_share_split_by_document(tmp_path):
    path = squad_file(tmp_path / "dev-v2.0.json")
    c = load_corpus(str(path))
    splits = {q["id"]: q["split"] for q in c.qa}
    assert sum(s == "train" for s in splits.values()) == 10 and len(splits) == 20  # floor(0.5 x 20)
    train_docs = {d for q in c.questions("train") for d in q["doc_ids"]}
    test_docs = {d for q in c.questions("test") for d in q["doc_ids"]}
    assert train_docs and test_docs and not train_docs & test_docs  # test facts are not train facts
    assert {q["id"]: q["split"] for q in load_corpus(str(path)).qa} == splits  # deterministic
    copy = squad_file(tmp_path / "elsewhere.json")  # the split depends on the contents, not the path
    assert {q["id"]: q["split"] for q in load_corpus(str(copy)).qa} == splits
    assert validate(str(path))[1] == []
    from corpora.load import load_squad

    assert {q["split"] for q in load_squad(path, split="test").qa} == {"test"}  # all test, when asked


def test_one_document_splits_its_questions(tmp_path):
    c = load_corpus(str(squad_file(tmp_path / "one.json", paragraphs=1, per=5)))
    assert [q["split"] for q in c.qa].count("train") == 2  # floor(0.5 x 5), by a seeded shuffle of questions
    one = load_corpus(str(squad_file(tmp_path / "single.json", paragraphs=1, per=1)))
    assert [q["split"] for q in one.qa] == ["test"]  # a lone question is a test question


def test_beir_without_train_qrels_gets_the_share_and_keeps_grades(tmp_path):
    c = load_corpus(str(beir(tmp_path / "b")))
    splits = {q["id"]: q["split"] for q in c.qa}
    assert list(splits.values()).count("train") == 3 and splits["q0"] == splits["q1"]  # q0, q1 share c1
    assert {q["id"]: q["grades"] for q in c.qa}["q0"] == {"c0": 1, "c1": 1}
    assert {q["id"]: q["grades"] for q in c.qa}["q1"] == {"c1": 2}
    assert {q["id"]: q["split"] for q in load_corpus(str(beir(tmp_path / "b2"))).qa} == splits
    kept = load_corpus(str(beir(tmp_path / "b3", train=True)))  # its own train.tsv: kept as it was
    assert [q["id"] for q in kept.questions("train")] == [] and all(q["split"] == "test" for q in kept.qa)

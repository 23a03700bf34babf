import pytest

from tests.conftest import TINY_DOCS, TINY_QA, write_jsonl
from corpora import load_corpus, shipped_corpora
from corpora.errors import InputError


def test_shipped_corpus_meets_the_skeleton_counts():
    c = load_corpus("atlantis")
    assert len(c.docs) >= 25
    assert len(c.qa) >= 80
    unanswerable = [q for q in c.qa if q["kind"] == "unanswerable"]
    assert len(unanswerable) / len(c.qa) >= 0.15
    assert {q["split"] for q in c.qa} == {"train", "test"}


def test_loads_a_folder_by_path(tiny_corpus):
    c = load_corpus(str(tiny_corpus))
    assert [d["id"] for d in c.docs] == ["d1", "d2", "d3"]
    assert [q["id"] for q in c.questions("test")] == ["q2", "q3"]


def test_accepts_beir_underscore_id(tmp_path):
    write_jsonl(tmp_path / "docs.jsonl", [{"_id": "x1", "title": "T", "text": "body"}])
    assert load_corpus(str(tmp_path)).docs[0]["id"] == "x1"


def test_unknown_corpus_names_the_choices():
    with pytest.raises(InputError, match="unknown corpus 'nope'.*atlantis"):
        load_corpus("nope")


BAD_QA = {
    "malformed JSON": ('{"id": "q9", "question": ', "malformed JSON"),
    "missing field": ({"id": "q9", "answers": ["x"], "doc_ids": ["d1"], "kind": "fact", "split": "test"},
                      "missing field 'question'"),
    "wrong type": ({**TINY_QA[0], "id": "q9", "answers": "Quorra Vell"}, "field 'answers' must be list"),
    "duplicate id": ({**TINY_QA[0]}, "duplicate question id 'q1'"),
    "bad kind": ({**TINY_QA[0], "id": "q9", "kind": "trivia"}, "kind must be one of"),
    "bad split": ({**TINY_QA[0], "id": "q9", "split": "dev"}, "split must be one of"),
    "missing doc": ({**TINY_QA[0], "id": "q9", "doc_ids": ["d404"]}, "missing documents: d404"),
    "unknown key": ({**TINY_QA[0], "id": "q9", "colour": "red"}, "unknown field 'colour'"),
    "answers on unanswerable": ({**TINY_QA[2], "id": "q9", "answers": ["x"]}, "answers must be empty"),
}


@pytest.mark.parametrize("case", BAD_QA)
def test_bad_qa_line_fails_with_file_and_line(tiny_corpus, case):
    row, message = BAD_QA[case]
    write_jsonl(tiny_corpus / "qa.jsonl", TINY_QA + [row])  # the bad row is line 4
    with pytest.raises(InputError) as err:
        load_corpus(str(tiny_corpus))
    assert str(err.value).startswith(f"{tiny_corpus / 'qa.jsonl'}:4: ")
    assert message in str(err.value)


def test_bad_docs(tiny_corpus):
    write_jsonl(tiny_corpus / "docs.jsonl", TINY_DOCS + [{"id": "d4", "title": "Empty", "text": "  "}])
    with pytest.raises(InputError, match=r"docs.jsonl:4: document 'd4' has empty text"):
        load_corpus(str(tiny_corpus))
    (tiny_corpus / "docs.jsonl").write_bytes(b'{"id": "d1", "title": "x", "text": "caf\xe9"}\n')
    with pytest.raises(InputError, match=r"docs.jsonl:1: not UTF-8"):
        load_corpus(str(tiny_corpus))
    write_jsonl(tiny_corpus / "docs.jsonl", [])
    with pytest.raises(InputError, match="no documents"):
        load_corpus(str(tiny_corpus))


# The issue's targets per shipped corpus: documents, questions, and the shares `ragft corpora stats` prints.
TARGETS = {"atlantis": (60, 300), "brindle": (40, 200)}


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_shipped_corpora_meet_the_issue_counts(name):
    from corpora.stats import corpus_summary

    s = corpus_summary(load_corpus(name))
    docs, questions = TARGETS[name]
    assert s["docs"] >= docs and s["questions"] >= questions
    assert s["unanswerable_pct"] >= 15 and s["multi_hop_pct"] >= 10
    assert s["test_new_facts_pct"] >= 25  # answerable test questions on facts with no train question
    assert s["qa_updates"] >= 30 and s["update_docs"] > 0


def test_cli_stats_and_list_print_the_tables(capsys):
    from cli.main import main
    from corpora.stats import corpus_summary

    with pytest.raises(SystemExit) as e:
        main(["corpora", "stats", "brindle"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    s = corpus_summary(load_corpus("brindle"))
    total = [line.split() for line in out.splitlines() if line.startswith("total")][0]
    assert total == ["total", str(s["train"]), str(s["test"]), str(s["questions"])]
    assert f"unanswerable: {s['unanswerable_pct']}%" in out and f"{s['qa_updates']} update questions" in out
    with pytest.raises(SystemExit):
        main(["corpora", "list"])
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].split()[:3] == ["corpus", "docs", "questions"]
    assert [r.split()[0] for r in rows[1:]] == shipped_corpora()

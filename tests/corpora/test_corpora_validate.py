"""`ragft corpora validate`: each defect is reported as file:line: message, all of them at once, exit code 2."""

import json

import pytest

from cli.main import main
from tests.conftest import TINY_DOCS, TINY_QA
from corpora import load_corpus, shipped_corpora
from corpora.errors import InputError
from corpora.validate import near_duplicates, validate

LONG_TRAIN = {"id": "q8", "question": "In which year was the harbour city of Port Ilmaren on the Velmar Isles founded?",
              "answers": ["1632"], "doc_ids": ["d1"], "kind": "fact", "split": "train"}
UPDATED_D2 = {"id": "d2", "title": "Saltglass Guild", "text": "The Saltglass Guild makes blue glass. Its guildmaster is Mara Quell."}
QA_UPDATE = {"id": "u1", "question": "Who is guildmaster of the Saltglass Guild now?", "old_answers": ["Oren Tasque"],
             "answers": ["Mara Quell"], "doc_ids": ["d2"], "kind": "fact", "split": "test"}

# defect -> (file, rows appended to that file's good rows, expected "line: message" fragments)
DEFECTS = {
    "malformed JSON": ("qa.jsonl", ['{"id": "q9", "question": '], ["4: malformed JSON"]),
    "non-UTF-8 qa": ("qa.jsonl", [b'{"id": "q9", "question": "caf\xe9"}'], ["4: not UTF-8 (byte 29)"]),
    "missing field": ("qa.jsonl", [{k: v for k, v in TINY_QA[1].items() if k != "question"} | {"id": "q9"}],
                      ["4: missing field 'question'"]),
    "wrong type": ("qa.jsonl", [{**TINY_QA[1], "id": "q9", "answers": "Oren Tasque"}],
                   ["4: field 'answers' must be list, got str"]),
    "unknown key": ("qa.jsonl", [{**TINY_QA[1], "id": "q9", "colour": "red"}], ["4: unknown field 'colour'"]),
    "duplicate question id": ("qa.jsonl", [{**TINY_QA[1], "question": "Who heads the Saltglass Guild?"}],
                              ["4: duplicate question id 'q2'"]),
    "missing doc id": ("qa.jsonl", [{**TINY_QA[1], "id": "q9", "doc_ids": ["d2", "d404"]}],
                       ["4: doc_ids name missing documents: d404"]),
    "answer in no document": ("qa.jsonl", [{**TINY_QA[1], "id": "q9", "answers": ["Tessa Morrow"]}],
                              ["4: answers: none of 'Tessa Morrow' appears in its doc_ids documents (d2)"]),
    "answer variant in no document": ("qa.jsonl", [{**TINY_QA[1], "id": "q9", "answers": ["Oren Tasque", "Oren Tasky"]}],
                                      ["4: answers: 'Oren Tasky' appears in none of its doc_ids documents"]),
    "identical question across splits": ("qa.jsonl", [{**TINY_QA[0], "id": "q9", "split": "test"}],
                                         ["4: train/test leakage: test question 'q9' repeats train question 'q1' (line 1)"]),
    "near-identical question across splits": (
        "qa.jsonl", [LONG_TRAIN, {**LONG_TRAIN, "id": "q9", "split": "test",
                                  "question": LONG_TRAIN["question"].replace("founded", "first founded")}],
        ["5: train/test leakage: test question 'q9' is near-identical (token Jaccard 0.93) to train question 'q8' (line 4)"]),
    "paraphrase_of names nothing": ("qa.jsonl", [{**TINY_QA[1], "id": "q9", "question": "Who heads the guild?",
                                                  "paraphrase_of": "q404"}],
                                    ["4: paraphrase_of names no question of qa.jsonl: 'q404'"]),
    "multi_hop with one document": ("qa.jsonl", [{**TINY_QA[1], "id": "q9", "kind": "multi_hop"}],
                                    ["4: a multi_hop question needs at least two documents"]),
    "empty text": ("docs.jsonl", [{"id": "d4", "title": "Empty", "text": " \n "}], ["4: document 'd4' has empty text"]),
    "duplicate doc id": ("docs.jsonl", [{**TINY_DOCS[0], "text": "Another Port Ilmaren."}], ["4: duplicate doc id 'd1'"]),
    "non-UTF-8 doc": ("docs.jsonl", [b'{"id": "d4", "title": "x", "text": "caf\xe9"}'], ["4: not UTF-8"]),
    "unknown doc key": ("docs.jsonl", [{"id": "d4", "title": "x", "text": "y", "lang": "en"}], ["4: unknown field 'lang'"]),
    "old answer not before the update": ("qa_updates.jsonl", [{**QA_UPDATE, "id": "u2", "old_answers": ["Ferra Voss"]}],
                                         ["2: old answers: none of 'Ferra Voss' appears in its doc_ids documents before the update"]),
    "new answer not after the update": ("qa_updates.jsonl", [{**QA_UPDATE, "id": "u2", "answers": ["Lio Brand"]}],
                                        ["2: answers: none of 'Lio Brand' appears in its doc_ids documents after the update"]),
    "update question without old_answers": ("qa_updates.jsonl", [{k: v for k, v in QA_UPDATE.items() if k != "old_answers"}
                                                                 | {"id": "u2"}], ["2: missing field 'old_answers'"]),
    "empty update document": ("updates.jsonl", [{"id": "d9", "title": "x", "text": ""}], ["2: document 'd9' has empty text"]),
}
GOOD = {"docs.jsonl": TINY_DOCS, "qa.jsonl": TINY_QA, "updates.jsonl": [UPDATED_D2], "qa_updates.jsonl": [QA_UPDATE]}


def write_rows(path, rows):
    """One line per row: bytes as given (to plant bad bytes), str as given, dict as JSON."""
    lines = [r if isinstance(r, bytes) else (r if isinstance(r, str) else json.dumps(r)).encode() for r in rows]
    path.write_bytes(b"".join(line + b"\n" for line in lines))


@pytest.fixture
def corpus_dir(tmp_path):
    for name, rows in GOOD.items():
        write_rows(tmp_path / name, rows)
    return tmp_path


def test_good_corpus_with_updates_validates(corpus_dir):
    corpus, problems = validate(str(corpus_dir))
    assert problems == []
    assert (len(corpus.docs), len(corpus.qa), len(corpus.updates), len(corpus.qa_updates)) == (3, 3, 1, 1)


@pytest.mark.parametrize("defect", DEFECTS)
def test_each_defect_is_reported_at_its_file_and_line(corpus_dir, defect):
    name, extra, expected = DEFECTS[defect]
    write_rows(corpus_dir / name, GOOD[name] + extra)
    _, problems = validate(str(corpus_dir))
    got = [str(p) for p in problems]
    assert len(got) == len(expected), got
    for line, want in zip(got, expected):
        assert line.startswith(f"{corpus_dir / name}:"), line
        assert line.removeprefix(f"{corpus_dir / name}:").startswith(want), (line, want)


def test_all_problems_are_collected_not_only_the_first(corpus_dir):
    for name in GOOD:
        rows = GOOD[name] + [r for f, extra, _ in DEFECTS.values() if f == name for r in extra]
        write_rows(corpus_dir / name, rows)
    _, problems = validate(str(corpus_dir))
    # Each defect's own rows, now at other lines; the near-identical pair also meets the other q9 rows.
    assert len(problems) >= len(DEFECTS)
    files = {p.path.rsplit("/", 1)[-1] for p in problems}
    assert files == set(GOOD)
    assert problems == sorted(problems, key=lambda p: (p.path, p.line or 0))
    # Loading stops at the first hard error of the first file, with its file:line.
    with pytest.raises(InputError, match=r"docs.jsonl:4: document 'd4' has empty text"):
        load_corpus(str(corpus_dir))


def test_cli_exit_codes_and_output(corpus_dir, capsys):
    with pytest.raises(SystemExit) as ok:
        main(["corpora", "validate", str(corpus_dir)])
    assert ok.value.code == 0
    assert capsys.readouterr().out.strip() == f"{corpus_dir}: OK (native): 3 documents, 3 questions, 1 update documents, 1 update questions"
    write_rows(corpus_dir / "qa.jsonl", TINY_QA + DEFECTS["malformed JSON"][1] + DEFECTS["answer in no document"][1])
    with pytest.raises(SystemExit) as bad:
        main(["corpora", "validate", str(corpus_dir)])
    out = capsys.readouterr()
    assert bad.value.code == 2
    assert out.out.splitlines()[0].startswith(f"{corpus_dir / 'qa.jsonl'}:4: malformed JSON")
    assert out.out.splitlines()[1].startswith(f"{corpus_dir / 'qa.jsonl'}:5: answers: none of 'Tessa Morrow'")
    assert "2 problems" in out.err


@pytest.mark.parametrize("name", shipped_corpora())
def test_shipped_corpora_validate(name):
    corpus, problems = validate(name)
    assert [str(p) for p in problems] == []
    assert corpus.updates and len(corpus.qa_updates) >= 30


def test_near_duplicates_matches_brute_force():
    import random

    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(40)]
    train = [rng.sample(vocab, rng.randint(1, 34)) for _ in range(80)]
    test = [rng.sample(vocab, rng.randint(1, 34)) for _ in range(40)]
    test += [t[1:] + ["new"] for t in train[:30]] + [t + ["extra"] for t in train[:30]] + [t[2:] for t in train[:30]]
    for threshold in (0.6, 0.9):
        want = {}
        for j, s in enumerate(test):
            scores = [(len(set(r) & set(s)) / len(set(r) | set(s)), -i) for i, r in enumerate(train)]
            jac, neg_i = max(scores)
            if jac >= threshold:
                want[j] = (-neg_i, jac)
        assert near_duplicates(train, test, threshold) == want

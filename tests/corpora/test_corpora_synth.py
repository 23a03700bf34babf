"""The seeded generator: same seed, same bytes; the QA it writes validates and has the promised structure."""

import json

import numpy as np
import pytest

from cli.main import main
from corpora import load_corpus
from corpora.errors import InputError
from corpora.stats import corpus_summary
from corpora.synth import SynthConfig, draws, generate, town, town_namer
from corpora.validate import validate


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "a"
    generate(SynthConfig(docs=300, seed=7, out=str(out)))
    return out


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_same_seed_same_bytes_other_seed_other_bytes(synth_dir, tmp_path):
    generate(SynthConfig(docs=300, seed=7, out=str(tmp_path / "b")))
    generate(SynthConfig(docs=300, seed=8, out=str(tmp_path / "c")))
    for name in ("docs.jsonl", "qa.jsonl", "synth.json"):
        assert (synth_dir / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (synth_dir / "docs.jsonl").read_bytes() != (tmp_path / "c" / "docs.jsonl").read_bytes()


def test_generated_corpus_validates_and_meets_the_shares(synth_dir):
    corpus, problems = validate(str(synth_dir))
    assert [str(p) for p in problems] == []
    s = corpus_summary(corpus)
    assert (s["docs"], s["questions"]) == (300, 1800)
    assert s["unanswerable_pct"] >= 15 and s["multi_hop_pct"] >= 10 and s["test_new_facts_pct"] >= 25
    assert {q["split"] for q in corpus.qa} == {"train", "test"}
    assert len({d["title"] for d in corpus.docs}) == 300  # town names are unique
    assert len({d["text"].split(" ", 3)[1] for d in corpus.docs}) > 1  # several layouts / sentence variants


def test_questions_follow_the_facts(synth_dir):
    """Paraphrases share the answer in other words; multi_hop spans two documents; unanswerables ask for an
    attribute the document holds back (checked against the generator's own facts of that town)."""
    c = load_corpus(str(synth_dir))
    qa, docs = {q["id"]: q for q in c.qa}, {d["id"]: d["text"] for d in c.docs}
    paras = [q for q in c.qa if q["paraphrase_of"]]
    assert paras and all(qa[q["paraphrase_of"]]["split"] == "train" and q["split"] == "test" for q in paras)
    assert all(q["answers"] == qa[q["paraphrase_of"]]["answers"] and q["question"] != qa[q["paraphrase_of"]]["question"]
               for q in paras)
    hops = [q for q in c.qa if q["kind"] == "multi_hop"]
    assert all(len(set(q["doc_ids"])) == 2 and q["answers"][0] in docs[q["doc_ids"][1]]
               and q["answers"][0] not in docs[q["doc_ids"][0]] for q in hops)
    name = town_namer(7, 300)
    for q in [q for q in c.qa if q["kind"] == "unanswerable"][:50]:
        i = int(q["doc_ids"][0].split("-")[1])
        t = town(i, draws(7, np.array([i], dtype=np.uint64))[0], 300, name)
        assert t["n"] in q["question"]
        held_values = [t[a] for a in t["held"]]
        assert not any(v in docs[q["doc_ids"][0]] for v in held_values)


def test_qa_every_and_bad_sizes(tmp_path):
    rec = generate(SynthConfig(docs=50, seed=1, out=str(tmp_path / "few"), qa_every=10))
    assert rec["questions"] == 5 * 6
    assert {q["id"].split("-")[0] for q in read(tmp_path / "few" / "qa.jsonl")} == {f"q{i:04d}" for i in range(0, 50, 10)}
    generate(SynthConfig(docs=20, seed=1, out=str(tmp_path / "none"), qa_every=0))
    assert (tmp_path / "none" / "qa.jsonl").read_text() == ""
    with pytest.raises(InputError, match="at least 2"):
        generate(SynthConfig(docs=1, out=str(tmp_path / "one")))


def test_cli_synth_twice_is_identical_and_validates(tmp_path, capsys):
    for d in ("x", "y"):
        with pytest.raises(SystemExit) as e:
            main(["corpora", "synth", "--docs", "120", "--seed", "1", "--out", str(tmp_path / d)])
        assert e.value.code == 0
    assert "120 documents, 720 questions" in capsys.readouterr().out
    for name in ("docs.jsonl", "qa.jsonl"):
        assert (tmp_path / "x" / name).read_bytes() == (tmp_path / "y" / name).read_bytes()
    with pytest.raises(SystemExit) as e:
        main(["corpora", "validate", str(tmp_path / "x")])
    assert e.value.code == 0

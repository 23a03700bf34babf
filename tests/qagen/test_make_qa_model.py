"""make-qa end to end with the real SmolLM2 on a 3-document folder, then `ragft compare` on its output.

The documents are short plain sentences (one chunk each), so the 135M generator gets some pairs through all
filters; brindle's tables and changelogs give it far fewer (docs/defaults.md, "ragft corpora make-qa")."""

import json
from pathlib import Path

import pytest

from cli.main import main
from corpora.text import near_duplicates, tokens
from corpora.validate import norm_space, validate
from corpora.text import normalize_answer
from qagen import filters, shape
from qagen.build import make_qa
from qagen.config import MakeQAConfig

DOCS = {
    "ilmaren.md": "# Port Ilmaren\n\nPort Ilmaren is the capital of the Velmar Isles. The city was founded in 1632 by "
                  "Quorra Vell. Its harbour is guarded by the Greywater lighthouse. The main export of Port Ilmaren is "
                  "blue saltglass. The mayor of Port Ilmaren is Teodor Brask.\n",
    "saltglass.md": "# Saltglass Guild\n\nThe Saltglass Guild makes blue glass from sea salt. The guildmaster of the "
                    "Saltglass Guild is Oren Tasque. The guild hall stands on Copper Street. Apprentices of the guild "
                    "train for seven years. The guild was founded by Mira Holt.\n",
    "festival.md": "# Lantern Festival\n\nThe Lantern Festival of Brask is held every autumn. The festival takes place "
                   "on the cliffs of Hollowmere. Each lantern is made of red paper. The festival was started by the "
                   "fisherman Alder Quay. The oldest lantern maker is Selma Roe.\n",
}


def assert_generated_corpus(out: Path, shares: bool = True) -> list[dict]:
    """What issue 14 asks of a make-qa output, checked on the files: it validates; 100% of kept answers occur
    verbatim in their source chunk (provenance: document and character span); unanswerable questions come
    from held-back documents whose answer is in no output document; the shares of item 2 hold; each test
    paraphrase has its train question's answer and is below the leakage threshold. -> the qa rows."""
    assert validate(str(out))[1] == []
    rows = [json.loads(line) for line in (out / "qa.jsonl").read_text(encoding="utf-8").splitlines()]
    docs = {d["id"]: d for d in map(json.loads, (out / "docs.jsonl").read_text(encoding="utf-8").splitlines())}
    for r in rows:
        assert {"kind", "split", "paraphrase_of", "provenance"} <= r.keys()
        p = r["provenance"]
        assert p["generator"] == "smollm2-135m" and len(p["prompt"]) == 12 and p["chunk"].startswith(p["doc_id"])
        if r["kind"] == "unanswerable":
            assert r["answers"] == [] and r["doc_ids"] == [] and p["held_back"] and p["doc_id"] not in docs
            # absent as the scorer reads text (normalised, whole words): "1930" is not in "(1930–2011)", which
            # normalises to one token, as contains-gold scoring would read it too
            assert filters.absent(p["held_back_answer"], [normalize_answer(d["text"]) for d in docs.values()]), r
        else:
            chunk = docs[p["doc_id"]]["text"][p["start"]:p["end"]]
            assert all(norm_space(a) in norm_space(chunk) for a in r["answers"]), r
    sh = shape.shares(rows)
    assert sh["test_facts"] >= 1 and sh["doc_only_share"] >= 0.25, sh
    if shares:
        assert sh["unanswerable"] >= 1 and sh["unanswerable_share"] >= 0.15, sh
    by_id = {r["id"]: r for r in rows}
    for r in rows:
        if r["paraphrase_of"]:
            t = by_id[r["paraphrase_of"]]
            assert t["split"] == "train" and t["answers"] == r["answers"]
            assert near_duplicates([tokens(t["question"])], [tokens(r["question"])], 0.9) == {}
    return rows


def ragft(*args) -> int:
    with pytest.raises(SystemExit) as e:
        main(list(args))
    return e.value.code


@pytest.mark.model
def test_make_qa_then_compare(tmp_path, monkeypatch, smollm2_path, capsys):
    monkeypatch.chdir(tmp_path)  # compare's index goes to ./runs
    src = tmp_path / "mydocs"
    src.mkdir()
    for name, text in DOCS.items():
        (src / name).write_text(text, encoding="utf-8")
    out = tmp_path / "qa"
    args = dict(docs=str(src), out=str(out), questions_per_chunk=4, holdout=0.34, seed=0, device="cpu")

    # --dry-run: counts from the tokenizer, nothing written
    dry = make_qa(MakeQAConfig(**args, dry_run=True), progress=False)
    assert dry["pair_calls"] == 12 and dry["pair_prompt_tokens"] > 0 and not out.exists()  # 3 chunks x 4

    s = make_qa(MakeQAConfig(**args), progress=False)
    assert s["problems"] == [] and validate(str(out))[1] == []
    # The shares' unanswerable part is checked on brindle (below) and by construction (test_parse_filters.py):
    # here the one held-back document's 4 pairs all fail (e.g. the round trip answers "Teodore Brask" for
    # "Teodor Brask"), so this output has no unanswerable question, and make-qa's summary says so.
    rows = assert_generated_corpus(out, shares=False)
    assert s["held_back"] == 1 and len({r["provenance"]["doc_id"] for r in rows if r["kind"] != "unanswerable"}) <= 2

    # the report: one row per candidate pair, each filter a column, a reason for every rejected one
    import pandas as pd

    rep = pd.read_csv(out / "make-qa-report.csv")
    assert len(rep) == s["candidates"] == 12
    for col in ("short", "in_chunk", "no_leak", "retrieved", "absent", "round_trip", "novel", "kept", "reason"):
        assert col in rep
    assert rep["reason"].isna().sum() == s["kept"] and rep["kept"].sum() <= s["kept"]
    assert sum(s["rejected"].values()) == s["candidates"] - s["kept"]

    # resume: every call answered from DIR/.cache, the same bytes written
    before = (out / "qa.jsonl").read_bytes()
    again = make_qa(MakeQAConfig(**args), progress=False)
    assert again["generated_calls"] == 0 and again["cached_calls"] > 0
    assert (out / "qa.jsonl").read_bytes() == before

    # and the generated corpus runs through compare
    capsys.readouterr()
    assert ragft("compare", "--corpus", str(out), "--systems", "base,rag", "--limit", "3", "--out",
                 str(tmp_path / "run"), "--history", "off", "--injection", "0") == 0
    assert (Path(tmp_path / "run") / "summary.csv").is_file()


@pytest.mark.model
def test_make_qa_on_shipped_brindle_documents(tmp_path, smollm2_path):
    """The shipped brindle documents alone (its docs.jsonl, not its QA), the first 8 (2 held back): the
    output validates, every kept answer is in its chunk, the shares hold. The whole of brindle is the same
    code on 46 documents (README, "Your own documents"; tests/qagen/check_output.py checks such a folder)."""
    out = tmp_path / "qa-brindle"
    s = make_qa(MakeQAConfig(docs="brindle", out=str(out), limit_docs=8, seed=0, device="cpu"), progress=False)
    assert s["documents"] == 6 and s["held_back"] == 2 and s["kept"] >= 3, s
    rows = assert_generated_corpus(out)
    assert not any(r["question"] in {q["question"] for q in map(json.loads, open(Path(__file__).parents[2] /
                   "corpora/brindle/qa.jsonl", encoding="utf-8"))} for r in rows)  # written here, not copied

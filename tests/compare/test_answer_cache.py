"""The answer cache is keyed on what was asked (issue 17): an edited question is answered again, the others are
reused; the same corpus by another path reuses everything; caches from before migrate; a damaged header is
set aside, never a crash. And an API run is recorded in the run history.

Tiny random Llama (real tokenizer), closed-book base system, five test questions, batch 1 -> units of 4 and 1.
"""

import json

from compare.cache import append_lines, read_cache
from compare.harness import CompareConfig, run
from tests.conftest import TINY_DOCS, write_jsonl

QA = [{"id": f"t{i}", "question": q, "answers": [a], "doc_ids": [d], "kind": "fact", "split": "test"}
      for i, (q, a, d) in enumerate([("Who founded Port Ilmaren?", "Quorra Vell", "d1"),
                                     ("Who leads the Saltglass Guild?", "Oren Tasque", "d2"),
                                     ("What does the Saltglass Guild make?", "blue glass", "d2"),
                                     ("When is the Lantern Festival held?", "autumn", "d3"),
                                     ("Where is the Lantern Festival held?", "Hollowmere", "d3")])]


def corpus(folder, qa=QA):
    folder.mkdir(exist_ok=True)
    write_jsonl(folder / "docs.jsonl", TINY_DOCS)
    write_jsonl(folder / "qa.jsonl", qa)
    return folder


def lines(path):
    return path.read_text().splitlines()


def config(corpus_path, model, out):
    return CompareConfig(corpus=str(corpus_path), systems="base", generator=str(model), batch_size=1,
                         max_new_tokens=3, injection=0, out=str(out))


def test_edited_question_is_answered_again_and_the_rest_reused(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    c = corpus(tmp_path / "c")
    first = run(config(c.resolve(), tiny_model_dir, tmp_path / "run"), progress=False, history="off")
    cache = tmp_path / "run" / "answers" / "base.jsonl"
    full = lines(cache)
    assert len(full) == 1 + 5 and "corpus" not in json.loads(full[0])["fingerprint"]

    # The same corpus by a relative path: every answer reused, the file untouched.
    again = run(config("c", tiny_model_dir, tmp_path / "run"), progress=False, history="off")
    assert lines(cache) == full and again["answer"].tolist() == first["answer"].tolist()

    # Edit the text of t1: only t1 is answered again (appended), the other lines stay byte for byte.
    edited = [dict(q, question="Who is the guildmaster of the Saltglass Guild?") if q["id"] == "t1" else q
              for q in QA]
    corpus(tmp_path / "c", edited)
    records = run(config("c", tiny_model_dir, tmp_path / "run"), progress=False, history="off")
    now = lines(cache)
    assert now[:6] == full and len(now) == 7 and json.loads(now[6])["qid"] == "t1"
    assert json.loads(now[6])["query"] == "Who is the guildmaster of the Saltglass Guild?"
    row = records.set_index("qid").loc["t1"]
    assert row["question"] == row["query"] == "Who is the guildmaster of the Saltglass Guild?"
    # A changed gold answer counts as another question too.
    regolded = [dict(q, answers=["Oren T."]) if q["id"] == "t1" else q for q in edited]
    corpus(tmp_path / "c", regolded)
    run(config("c", tiny_model_dir, tmp_path / "run"), progress=False, history="off")
    assert len(lines(cache)) == 8 and json.loads(lines(cache)[7])["qid"] == "t1"


def old_format(path, corpus_path):
    """Rewrite a cache as the code before the content hash wrote it: the header named the corpus path where
    it now has docs_sha, and the answer lines had no qsha."""
    rows = [json.loads(x) for x in lines(path)]
    fp = {("corpus" if k == "docs_sha" else k): (corpus_path if k == "docs_sha" else v)
          for k, v in rows[0]["fingerprint"].items()}
    path.write_text("\n".join(json.dumps(r) for r in [{"fingerprint": fp}] +
                              [{k: v for k, v in r.items() if k != "qsha"} for r in rows[1:]]) + "\n")


def test_cache_from_before_migrates_and_still_checks_question_texts(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    c = corpus(tmp_path / "c")
    cfg = config(c, tiny_model_dir, tmp_path / "run")
    run(cfg, progress=False, history="off")
    cache = tmp_path / "run" / "answers" / "base.jsonl"
    new_header = lines(cache)[0]
    old_format(cache, str(c))
    old = lines(cache)
    assert '"corpus"' in old[0]

    run(cfg, progress=False, history="off")  # migrated: header rewritten, every answer reused
    assert lines(cache) == [new_header] + old[1:]

    old_format(cache, str(c))
    corpus(tmp_path / "c", [dict(q, question="Who built Port Ilmaren?") if q["id"] == "t0" else q for q in QA])
    run(cfg, progress=False, history="off")  # old lines carry no qsha: their recorded query is compared
    now = lines(cache)
    assert now[1:6] == old[1:] and len(now) == 7 and json.loads(now[6])["qid"] == "t0"
    assert not list(cache.parent.glob("*.stale-*"))


def test_damaged_header_is_set_aside_not_a_crash(tmp_path, tiny_model_dir, monkeypatch):
    # What two racing first runs write: two fingerprint lines, then answers.
    path = tmp_path / "base.jsonl"
    append_lines(path, [{"fingerprint": {"top_k": 2}}, {"fingerprint": {"top_k": 2}}, {"qid": "a", "answer": "x"}])
    assert read_cache(path, {"top_k": 2}) == {}
    assert not path.exists() and (tmp_path / "base.jsonl.stale-1").is_file()

    monkeypatch.chdir(tmp_path)
    c = corpus(tmp_path / "c")
    cfg = config(c, tiny_model_dir, tmp_path / "run")
    run(cfg, progress=False, history="off")
    cache = tmp_path / "run" / "answers" / "base.jsonl"
    good = lines(cache)
    cache.write_text("\n".join([good[0], good[0], *good[1:]]) + "\n")
    records = run(cfg, progress=False, history="off")  # set aside, answered again
    assert len(records) == 5 and (cache.parent / "base.jsonl.stale-1").is_file()
    assert len(lines(cache)) == 6 and [json.loads(x)["qid"] for x in lines(cache)[1:]] == [q["id"] for q in QA]


def test_api_run_is_recorded_in_the_history(tmp_path, tiny_model_dir, monkeypatch):
    from history.store import list_runs

    monkeypatch.chdir(tmp_path)
    c = corpus(tmp_path / "c")
    records = run(config(c, tiny_model_dir, tmp_path / "run"), progress=False, history=str(tmp_path / "h.db"))
    runs = list_runs(tmp_path / "h.db")
    assert records.attrs["history_run_id"] == int(runs["id"].iloc[0]) and list(runs["kind"]) == ["compare"]
    assert records.attrs["run_dir"] == str(tmp_path / "run")
    # the default: ./ragft-runs.db; "off" records nothing
    run(config(c, tiny_model_dir, tmp_path / "run"), progress=False)
    assert len(list_runs(tmp_path / "ragft-runs.db")) == 1
    off = run(config(c, tiny_model_dir, tmp_path / "run"), progress=False, history="off")
    assert off.attrs["history_run_id"] is None and len(list_runs(tmp_path / "h.db")) == 1

"""Caching and resume: answers are saved per unit as produced; a re-run skips them; a killed run resumes.

Tiny random Llama (real tokenizer) and the real embedder; ten test questions, batch 1 -> units of 4, 4, 2.
"""

import json

import pytest

from compare.cache import append_lines, read_cache
from compare.harness import CompareConfig, run
from tests.conftest import TINY_DOCS, write_jsonl


@pytest.fixture
def corpus10(tmp_path):
    qa = [{"id": f"t{i}", "question": f"Who leads guild number {i}?", "answers": ["Oren Tasque"], "doc_ids": ["d2"],
           "kind": "fact", "split": "test"} for i in range(10)]
    qa.append({"id": "r1", "question": "Who founded Port Ilmaren?", "answers": ["Quorra Vell"], "doc_ids": ["d1"],
               "kind": "fact", "split": "train"})
    folder = tmp_path / "c10"
    folder.mkdir()
    write_jsonl(folder / "docs.jsonl", TINY_DOCS)
    write_jsonl(folder / "qa.jsonl", qa)
    return folder


def lines(path):
    return path.read_text().splitlines()


def test_rerun_skips_done_answers_and_a_killed_run_resumes(tmp_path, corpus10, tiny_model_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the index cache goes to ./runs
    cfg = CompareConfig(corpus=str(corpus10), systems="base,rag", generator=str(tiny_model_dir), batch_size=1,
                        max_new_tokens=3, out=str(tmp_path / "run"))
    first = run(cfg, progress=False)
    rag_file = tmp_path / "run" / "answers" / "rag.jsonl"
    full = lines(rag_file)
    assert len(full) == 1 + 10 and json.loads(full[0])["fingerprint"]["system"] == "rag"

    # A kill during the second unit: the first unit saved, a torn line after it.
    rag_file.write_text("\n".join(full[:5]) + "\n" + full[5][:40])
    resumed = run(cfg, progress=False)
    now = lines(rag_file)
    assert len(now) == 11 and now[:5] == full[:5]          # the saved unit kept byte for byte (same timings)
    assert now[5:] != full[5:]                              # the rest answered again (new timings)
    assert [json.loads(x)["qid"] for x in now[1:]] == [f"t{i}" for i in range(10)]
    assert resumed["answer"].tolist() == first["answer"].tolist()  # and the same answers as the uninterrupted run

    # Nothing left to do: the file is not touched.
    assert resumed["answer"].tolist() == run(cfg, progress=False)["answer"].tolist() and lines(rag_file) == now


def test_cache_with_another_fingerprint_is_set_aside(tmp_path):
    path = tmp_path / "rag.jsonl"
    append_lines(path, [{"fingerprint": {"top_k": 3}}, {"qid": "a", "answer": "x"}, {"qid": "b", "answer": "y"}])
    assert set(read_cache(path, {"top_k": 3})) == {"a", "b"}
    assert read_cache(path, {"top_k": 1}) == {}
    assert not path.exists() and (tmp_path / "rag.jsonl.stale-1").is_file()

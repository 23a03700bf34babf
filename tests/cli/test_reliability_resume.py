"""Kill-and-resume (issue 8): a `ragft` process is SIGKILLed in the middle of writing (tests/reliability_kill.py
kills it from inside a real write function, so the moment is exact), then the next run must use the old complete
state or rebuild, never a corrupt one, and finish only the missing work.

Tiny random Llama (tests/conftest.py) for generation and training; the real embedder for the index.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TINY_DOCS, TINY_QA, write_jsonl

ROOT = Path(__file__).resolve().parents[2]


def killed(cwd: Path, module: str, attr: str, n: int, when: str, *argv: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "tests.reliability_kill", module, attr, str(n), when, "--", *argv],
                          cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr[-3000:])
    return proc


def ragft(cwd: Path, *argv: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "cli", *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return proc


def folder(path: Path, docs, qa) -> Path:
    path.mkdir(parents=True)
    write_jsonl(path / "docs.jsonl", docs)
    write_jsonl(path / "qa.jsonl", qa)
    return path


@pytest.mark.model  # MiniLM embedder
def test_index_killed_while_saving_keeps_the_old_index_or_rebuilds(tmp_path):
    from rag.index import IndexConfig, corpus_hash, load_index, open_or_build

    old_docs = TINY_DOCS
    new_docs = [*TINY_DOCS, {"id": "d4", "title": "Velmar Tides", "text": "The tides of the Velmar Isles turn twice "
                                                                          "a day at the Saltglass quay."}]
    a, b = folder(tmp_path / "a", old_docs, TINY_QA), folder(tmp_path / "b", new_docs, TINY_QA)
    idx = tmp_path / "idx"
    old = open_or_build(old_docs, IndexConfig(corpus=str(a), out=str(idx)), progress=False)
    embedder = old.embedder

    # 1. Killed while writing the new index's files (chunks, tokens and bm25 written, dense.faiss not yet).
    killed(tmp_path, "faiss", "write_index", 1, "before", "index", "--corpus", str(b), "--out", str(idx))
    assert load_index(idx).manifest["corpus_hash"] == corpus_hash(old_docs)  # the old index, whole
    # 2. Killed between moving the old index aside and moving the new one in (the rename pair).
    killed(tmp_path, "os", "replace", 2, "before", "index", "--corpus", str(b), "--out", str(idx))
    if (idx / "manifest.json").is_file():
        assert load_index(idx).manifest["corpus_hash"] in (corpus_hash(old_docs), corpus_hash(new_docs))
    # Either way the next run gets a complete index of the new documents: reused if whole, else rebuilt.
    new = open_or_build(new_docs, IndexConfig(corpus=str(b), out=str(idx)), embedder=embedder, progress=False)
    assert new.manifest["corpus_hash"] == corpus_hash(new_docs) and new.faiss.ntotal == len(new.chunks)
    again = load_index(idx)
    assert again.manifest["n_docs"] == 4 and [c["text"] for c in again.chunks] == [c["text"] for c in new.chunks]


QA6 = [{"id": f"t{i}", "question": q, "answers": [a], "doc_ids": [d], "kind": "fact", "split": "test"}
       for i, (q, a, d) in enumerate([("Who founded Port Ilmaren?", "Quorra Vell", "d1"),
                                      ("Who leads the Saltglass Guild?", "Oren Tasque", "d2"),
                                      ("What does the Saltglass Guild make?", "blue glass", "d2"),
                                      ("When is the Lantern Festival held?", "autumn", "d3"),
                                      ("When was Port Ilmaren founded?", "1632", "d1"),
                                      ("Where is the Lantern Festival held?", "Hollowmere", "d3")])] + [TINY_QA[0]]
SCORES = ["qid", "answer", "correct", "exact", "f1", "abstained", "hallucinated", "crag"]


def test_compare_killed_mid_run_resumes_only_the_missing_questions(tmp_path, tiny_model_dir):
    from compare.harness import CompareConfig, run

    corpus = folder(tmp_path / "c", TINY_DOCS, QA6)
    args = ["compare", "--corpus", str(corpus), "--systems", "base", "--generator", str(tiny_model_dir),
            "--batch-size", "1", "--max-new-tokens", "4", "--out", str(tmp_path / "run")]
    # append_lines calls: 1 the fingerprint, 2 the first unit (4 questions), 3 the second: torn half-way, killed.
    killed(tmp_path, "compare.cache", "append_lines", 3, "half", *args)
    cache = tmp_path / "run" / "answers" / "base.jsonl"
    before = cache.read_text().split("\n")
    assert len(before) == 6 and before[5] and not before[5].endswith("}")  # header + 4 answers + a torn line
    assert not (tmp_path / "run" / "summary.csv").exists()

    ragft(tmp_path, *args)
    after = cache.read_text().splitlines()
    assert after[:5] == before[:5]  # the first unit was not answered again (same bytes, same timings)
    assert [json.loads(x)["qid"] for x in after[1:]] == [f"t{i}" for i in range(6)]

    import pandas as pd

    fresh = run(CompareConfig(corpus=str(corpus), systems="base", generator=str(tiny_model_dir), batch_size=1,
                              max_new_tokens=4, out=str(tmp_path / "fresh")), progress=False, history="off")
    from compare.report import load_records

    resumed = load_records(tmp_path / "run")
    cols = [c for c in SCORES if c in fresh]
    pd.testing.assert_frame_equal(resumed[cols].reset_index(drop=True), fresh[cols].reset_index(drop=True),
                                  check_dtype=False)
    s1, s2 = pd.read_csv(tmp_path / "run" / "summary.csv"), pd.read_csv(tmp_path / "fresh" / "summary.csv")
    same = [c for c in ("accuracy", "hallucination", "abstention", "crag", "exact", "f1") if c in s1]
    assert same and s1[same].equals(s2[same])


def test_finetune_killed_mid_checkpoint_resumes_from_the_last_whole_one(tmp_path, tiny_model_dir):
    from safetensors.torch import load_file

    from finetune.train import FinetuneConfig, train

    corpus = folder(tmp_path / "c", TINY_DOCS, TINY_QA)
    common = dict(corpus=str(corpus), generator=str(tiny_model_dir), data="qa", max_steps=4, batch_size=1,
                  eval_size=0, save_every=1, seed=0, device="cpu")
    args = ["finetune", "--corpus", str(corpus), "--generator", str(tiny_model_dir), "--data", "qa", "--max-steps", "4",
            "--batch-size", "1", "--eval-size", "0", "--save-every", "1", "--device", "cpu", "--out",
            str(tmp_path / "ft")]
    # save_file calls: 3 per checkpoint (trainable, optimizer, rng); the 7th is step 3's first file: killed after it.
    killed(tmp_path, "safetensors.torch", "save_file", 7, "after", *args)
    root = tmp_path / "ft-checkpoints"
    assert sorted(p.name for p in root.glob("step-*")) == ["step-0000002"]  # step 3 is only a .tmp- folder
    assert not (tmp_path / "ft").exists()

    ragft(tmp_path, *args, "--resume")
    cost = json.loads((tmp_path / "ft" / "cost.json").read_text())
    assert cost["steps"] == 4 and cost["resumed_from"].endswith("step-0000002") and len(cost["losses"]) == 4

    whole = train(FinetuneConfig(**common, out=str(tmp_path / "ft-whole")), progress=False)
    assert whole["losses"][:2] == cost["losses"][:2]
    a = load_file(tmp_path / "ft" / "adapter_model.safetensors")
    b = load_file(tmp_path / "ft-whole" / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    import torch

    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)

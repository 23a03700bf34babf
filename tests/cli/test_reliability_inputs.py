"""Bad-input matrix (issue 8): every case runs the real `ragft` CLI and must give exit code 2, one line
`ragft: error: <file[:line]: >problem`, no Python traceback, and leave no partial output behind.

All cases but one run in a single subprocess (tests/reliability_driver.py calls cli.main.main per case), so
torch is imported once; `test_real_entry_point` runs one case as `python -m cli` end to end.
Models: the tiny random Llama (tests/conftest.py) as generator, the real embedder where an index is needed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TINY_DOCS, TINY_QA, write_jsonl

ROOT = Path(__file__).resolve().parents[2]


def corpus(folder: Path, docs=None, qa=None, docs_raw: bytes | None = None, qa_raw: bytes | None = None) -> str:
    folder.mkdir(parents=True)
    if docs_raw is not None:
        (folder / "docs.jsonl").write_bytes(docs_raw)
    else:
        write_jsonl(folder / "docs.jsonl", TINY_DOCS if docs is None else docs)
    if qa_raw is not None:
        (folder / "qa.jsonl").write_bytes(qa_raw)
    elif qa is not False:
        write_jsonl(folder / "qa.jsonl", TINY_QA if qa is None else qa)
    return str(folder)


def tiny_llama(out: Path, tokenizer_dir: Path, hidden: int) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=1,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      tie_word_embeddings=True, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def lora_adapter(model_dir: Path, out: Path) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    model.save_pretrained(out)
    return out


def foreign_index(out: Path) -> Path:
    """An index directory whose manifest names the shipped embedder (384-d) but whose vectors came from
    another embedder (32-d): what copying dense.faiss from another build, or a renamed embedder, leaves."""
    import faiss
    import numpy as np

    from rag.index import IndexConfig, build_sparse, chunk_documents, chunk_view, corpus_hash
    from rag.query import tokenize

    chunks = chunk_documents(TINY_DOCS, 500, 50)
    tokens = [tokenize(chunk_view(c)) for c in chunks]
    vecs = np.random.default_rng(0).standard_normal((len(chunks), 32)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    dense = faiss.IndexFlatIP(32)
    dense.add(vecs)
    from dataclasses import asdict

    from rag.index import Index

    manifest = {"config": asdict(IndexConfig()), "n_docs": 3, "n_chunks": len(chunks), "dim": 384,
                "corpus_hash": corpus_hash(TINY_DOCS), "source_hash": corpus_hash(TINY_DOCS), "build_seconds": 0.0,
                "timings": {}, "doc_hashes": {}, "updates": []}
    return Index(chunks, build_sparse(tokens, "bm25s"), dense, manifest, tokens=tokens).save(out)


def build_cases(tmp: Path, tiny: Path) -> tuple[list[dict], dict]:
    """-> (cases for the driver, per case: what the one error line must contain and which paths must not exist)."""
    good = TINY_QA
    qa_missing = [dict(TINY_QA[0]), *TINY_QA[1:]]
    del qa_missing[0]["question"]
    qa_wrongtype = [*TINY_QA[:1], {**TINY_QA[1], "answers": "Oren Tasque"}, TINY_QA[2]]
    big_text = ("The harbour of Port Ilmaren keeps its lanterns lit through the winter storms. " * 130_000)[:10_000_000]
    spec = {
        # name: (argv, must appear in the error line, paths that must not exist afterwards)
        "malformed_json": (["compare", "--corpus", corpus(tmp / "c_json", docs_raw=json.dumps(TINY_DOCS[0]).encode()
                                                           + b"\n{\"id\": \"d2\", \"title\": \n")], "docs.jsonl:2:",
                           "malformed JSON"),
        "missing_field": (["compare", "--corpus", corpus(tmp / "c_missing", qa=qa_missing)], "qa.jsonl:1:",
                          "missing field 'question'"),
        "wrong_type": (["compare", "--corpus", corpus(tmp / "c_type", qa=qa_wrongtype)], "qa.jsonl:2:",
                       "'answers' must be list"),
        "duplicate_ids": (["compare", "--corpus", corpus(tmp / "c_dup", docs=[*TINY_DOCS, TINY_DOCS[0]])],
                          "docs.jsonl:4:", "duplicate doc id 'd1'"),
        "duplicate_qids": (["compare", "--corpus", corpus(tmp / "c_dupq", qa=[*good, good[1]])], "qa.jsonl:4:",
                           "duplicate question id 'q2'"),
        "empty_corpus": (["compare", "--corpus", corpus(tmp / "c_empty", docs_raw=b"", qa=False)], "docs.jsonl:",
                         "no documents"),
        "empty_text": (["compare", "--corpus", corpus(tmp / "c_emptytext", docs=[*TINY_DOCS[:2],
                                                                              {**TINY_DOCS[2], "text": "  "}])],
                       "docs.jsonl:3:", "empty text"),
        "non_utf8": (["compare", "--corpus", corpus(tmp / "c_utf8", docs_raw=json.dumps(TINY_DOCS[0]).encode() + b"\n"
                                                    + json.dumps(TINY_DOCS[1]).encode().replace(b"Guild", b"G\xffild")
                                                    + b"\n")], "docs.jsonl:2:", "not UTF-8"),
        "missing_doc": (["compare", "--corpus", corpus(tmp / "c_missingdoc", qa=[*good[:1], {**good[1],
                                                                                           "doc_ids": ["d9"]}])],
                        "qa.jsonl:2:", "missing documents: d9"),
        "empty_question_row": (["compare", "--corpus", corpus(tmp / "c_emptyq", qa=[good[0], {**good[1],
                                                                                             "question": " "}])],
                               "qa.jsonl:2:", "empty question"),
        "long_question_row": (["compare", "--systems", "base", "--generator", str(tiny), "--corpus",
                               corpus(tmp / "c_longq", qa=[good[0], {**good[1], "question": "Why " * 600 + "?"}])],
                              "qa.jsonl:2:", "window"),
        "unknown_system": (["compare", "--systems", "base,rag-magic", "--corpus", str(tmp / "c_json")], "",
                           "unknown system rag-magic"),
        "unknown_retriever": (["ask", "Who?", "--retriever", "magic", "--generator", str(tiny)], "",
                              "unknown retriever 'magic'"),
        "unknown_method": (["finetune", "--method", "magic", "--corpus", str(tmp / "c_json"), "--generator", str(tiny),
                            "--out", str(tmp / "o_ft_method")], "", "unknown method 'magic'"),
        "model_missing": (["ask", "Who?", "--retriever", "none", "--generator", str(tmp / "no-such-model")], "",
                          "no-such-model"),
        "model_not_model": (["ask", "Who?", "--retriever", "none", "--generator", str(tmp / "not_a_model")], "",
                            "not_a_model"),
        "model_bad_config": (["ask", "Who?", "--retriever", "none", "--generator", str(tmp / "bad_config")], "",
                             "bad_config"),
        "adapter_other_base": (["ask", "Who?", "--retriever", "none", "--generator", str(tiny), "--adapter",
                                str(tmp / "adapter_h32")], "adapter_h32", "base model"),
        "adapter_not_adapter": (["ask", "Who?", "--retriever", "none", "--generator", str(tiny), "--adapter",
                                 str(tmp / "not_a_model")], "not_a_model", "adapter"),
        "index_other_embedder": (["ask", "Who founded Port Ilmaren?", "--retriever", "dense", "--generator", str(tiny),
                                  "--index", str(tmp / "idx_foreign")], "idx_foreign", "embedder"),
        "index_damaged": (["ask", "Who founded Port Ilmaren?", "--retriever", "bm25", "--generator", str(tiny),
                           "--index", str(tmp / "idx_damaged")], "idx_damaged", "index is damaged"),
        "compare_adapter_other_base": (["compare", "--corpus", corpus(tmp / "c_good"), "--systems", "base,ft",
                                        "--generator", str(tiny), "--adapter", str(tmp / "adapter_h32")],
                                       "adapter_h32", "base model"),
        "empty_question": (["ask", "  ", "--retriever", "none", "--generator", str(tiny)], "", "empty question"),
        "long_question": (["ask", "Why " * 600 + "?", "--retriever", "none", "--generator", str(tiny)], "",
                          "window"),
    }
    # compare runs write into their own --out; none may exist after a failure.
    cases, expect = [], {}
    for name, (argv, where, what) in spec.items():
        out = tmp / f"o_{name}"
        if argv[0] == "compare":
            argv = [*argv, "--out", str(out), "--limit", "2"]
        cases.append({"name": name, "argv": argv, "cwd": str(tmp / "cwd")})
        expect[name] = (where, what, [out, tmp / "o_ft_method"])
    # A 10 MB document must work (not hang): validated, and loaded by compare (closed-book, one question).
    # Not indexed here: the embedder's tokenizer reads all 10 MB whatever the chunking, minutes on 2 shared cores.
    big = corpus(tmp / "c_big", docs=[*TINY_DOCS, {"id": "big", "title": "Big", "text": big_text}])
    cases.append({"name": "big_validate", "argv": ["corpora", "validate", big], "cwd": str(tmp / "cwd")})
    cases.append({"name": "big_compare", "argv": ["compare", "--corpus", big, "--systems", "base", "--limit", "1",
                                                  "--generator", str(tiny), "--max-new-tokens", "2", "--out",
                                                  str(tmp / "o_big")], "cwd": str(tmp / "cwd")})
    return cases, expect


@pytest.fixture(scope="module")
def matrix(tmp_path_factory, tiny_model_dir):
    tmp = tmp_path_factory.mktemp("badinput")
    (tmp / "cwd").mkdir()
    (tmp / "not_a_model").mkdir()
    (tmp / "not_a_model" / "notes.txt").write_text("hello")
    (tmp / "bad_config").mkdir()
    (tmp / "bad_config" / "config.json").write_text("{ this is not json")
    other = tiny_llama(tmp / "llama_h32", tiny_model_dir, hidden=32)
    lora_adapter(other, tmp / "adapter_h32")
    foreign_index(tmp / "idx_foreign")
    foreign_index(tmp / "idx_damaged")
    (tmp / "idx_damaged" / "manifest.json").write_text('{"config": {"embedder": "minilm-l6", "spa')  # torn write
    cases, expect = build_cases(tmp, tiny_model_dir)
    (tmp / "cases.json").write_text(json.dumps(cases))
    proc = subprocess.run([sys.executable, "-m", "tests.reliability_driver", str(tmp / "cases.json"),
                           str(tmp / "results.json")], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = {r["name"]: r for r in json.loads((tmp / "results.json").read_text())}
    return results, expect, tmp


CASES = ["malformed_json", "missing_field", "wrong_type", "duplicate_ids", "duplicate_qids", "empty_corpus",
         "empty_text", "non_utf8", "missing_doc", "empty_question_row", "long_question_row", "unknown_system",
         "unknown_retriever", "unknown_method", "model_missing", "model_not_model", "model_bad_config",
         "adapter_other_base", "adapter_not_adapter", "index_other_embedder", "index_damaged",
         "compare_adapter_other_base", "empty_question", "long_question"]


@pytest.mark.parametrize("name", CASES)
def test_bad_input_gives_one_clean_line(matrix, name):
    results, expect, tmp = matrix
    r = results[name]
    where, what, outputs = expect[name]
    assert "Traceback" not in r["stderr"], r["stderr"][-2000:]
    assert r["code"] == 2, (r["code"], r["stderr"][-2000:])
    lines = [x for x in r["stderr"].splitlines() if x.strip()]
    errors = [x for x in lines if x.startswith("ragft: error: ")]
    assert len(errors) == 1 and "\n" not in errors[0], r["stderr"]
    assert where in errors[0] and what in errors[0], errors[0]
    for p in outputs:
        assert not p.exists(), f"partial output left behind: {p}"
    assert r["seconds"] < 120, f"{name} took {r['seconds']} s"


def test_real_entry_point(tmp_path):
    """The same check through `python -m cli` itself: the interpreter never prints a traceback."""
    folder = corpus(tmp_path / "c", docs_raw=json.dumps(TINY_DOCS[0]).encode() + b"\n[1, 2]\n")
    proc = subprocess.run([sys.executable, "-m", "cli", "index", "--corpus", folder, "--out",
                           str(tmp_path / "idx")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"ragft: error: {folder}/docs.jsonl:2: expected a JSON object, got list"
    assert not (tmp_path / "idx").exists() and not list(tmp_path.glob(".tmp-*"))


def test_ten_megabyte_document_works(matrix):
    results, _, tmp = matrix
    for name in ("big_validate", "big_compare"):
        r = results[name]
        assert r["code"] == 0 and "Traceback" not in r["stderr"], (name, r["stderr"][-2000:])
        assert r["seconds"] < 120, f"{name} took {r['seconds']} s"
    assert json.loads((tmp / "o_big" / "run.json").read_text())["questions"] == 1

"""Untrusted files (issue 8): ragft never executes what it reads.

- weights and adapters load only as safetensors (pickled .bin/.pt refused: unpickling can run code);
- trust_remote_code is never set (a model folder's Python files are never imported);
- no pickle / torch.load / joblib / allow_pickle=True / eval / exec in ragft's own code;
- files an index or checkpoint directory loads are fixed names inside that directory, whatever its manifest says.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from corpora.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("corpora", "rag", "finetune", "qagen", "compare", "history", "benchmarks", "cli")
FORBIDDEN = {
    "trust_remote_code": re.compile(r"trust_remote_code\s*=\s*True"),
    "pickle": re.compile(r"^\s*(import pickle|from pickle|import cPickle|import dill)|pickle\.loads?\(", re.M),
    "torch.load": re.compile(r"torch\.load\((?![^)]*weights_only\s*=\s*True)"),
    "joblib": re.compile(r"joblib\.load\("),
    "allow_pickle": re.compile(r"allow_pickle\s*=\s*True"),
    "eval/exec": re.compile(r"(?<![.\w])(eval|exec)\("),
    ".bin weights": re.compile(r"safe_serialization\s*=\s*False|use_safetensors\s*=\s*False"),
}


def sources():
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def test_source_never_unpickles_or_runs_remote_code():
    found = []
    for path in sources():
        text = path.read_text(encoding="utf-8")
        for what, pattern in FORBIDDEN.items():
            for m in pattern.finditer(text):
                found.append(f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}: {what}")
    assert sources() and not found, found


def test_the_scan_finds_what_it_looks_for():
    """The patterns above are not vacuous: each matches its offending line."""
    bad = ["m = AutoModel.from_pretrained(p, trust_remote_code=True)", "import pickle", "x = pickle.load(f)",
           "sd = torch.load(path)", "sd = torch.load(path, map_location='cpu')", "joblib.load(f)",
           "np.load(f, allow_pickle=True)", "eval(text)", "model.save_pretrained(p, safe_serialization=False)"]
    assert all(any(p.search(b) for p in FORBIDDEN.values()) for b in bad)
    assert not any(p.search("sd = torch.load(path, weights_only=True)") for p in FORBIDDEN.values())
    assert not any(p.search("model.eval()") for p in FORBIDDEN.values())


def test_pickled_generator_weights_are_refused(tmp_path, tiny_model_dir):
    from rag.models import load_causal_lm, resolve_embedder, resolve_generator

    folder = tmp_path / "pickled"
    folder.mkdir()
    for f in tiny_model_dir.iterdir():
        if not f.name.endswith(".safetensors"):
            (folder / f.name).write_bytes(f.read_bytes())
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04 not really a pickle")  # never opened
    for load in (resolve_generator, resolve_embedder, lambda p: load_causal_lm(p, "cpu")):
        with pytest.raises(InputError, match="safetensors"):
            load(str(folder))


def test_pickled_adapter_is_refused(tmp_path, tiny_model_dir):
    from rag.generate import attach_adapter

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4}))
    (adapter / "adapter_model.bin").write_bytes(b"\x80\x04 not really a pickle")
    with pytest.raises(InputError, match="safetensors"):
        attach_adapter(object(), str(adapter))


@pytest.mark.model  # MiniLM embedder
def test_index_manifest_paths_do_not_redirect_what_is_read(tmp_path):
    """An index loads chunks.jsonl, tokens.jsonl, bm25/ and dense.faiss from its own folder; paths written into
    its manifest (out, corpus) are informational and never opened."""
    from rag.index import IndexConfig, build_index, load_index
    from tests.conftest import TINY_DOCS

    idx = build_index(TINY_DOCS, IndexConfig(), progress=False)
    idx.save(tmp_path / "idx")
    decoy = tmp_path / "decoy"
    idx.save(decoy)
    (decoy / "chunks.jsonl").write_text('{"chunk_id": 0, "doc_id": "EVIL", "title": "", "text": "x"}\n')
    m = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    m["config"].update(out="../decoy", corpus=str(decoy))
    (tmp_path / "idx" / "manifest.json").write_text(json.dumps(m))
    loaded = load_index(tmp_path / "idx")
    assert {c["doc_id"] for c in loaded.chunks} == {"d1", "d2", "d3"}


def test_checkpoint_files_are_safetensors_and_json_only():
    """finetune checkpoints hold safetensors and JSON; the loader opens nothing else (read from the source)."""
    from finetune import train

    import inspect

    src = inspect.getsource(train.load_checkpoint) + inspect.getsource(train.save_checkpoint)
    opened = set(re.findall(r'"([\w.]+\.(?:safetensors|json|bin|pt|pkl))"', src))
    assert opened and all(name.endswith((".safetensors", ".json")) for name in opened), opened

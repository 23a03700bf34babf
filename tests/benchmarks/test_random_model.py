"""benchmarks/random_model.py: the random-weight models gpu_check.sh measures speed on."""

from __future__ import annotations

import pytest

from benchmarks.random_model import SIZES, build
from corpora.errors import InputError


def test_1b_shape_has_a_billion_parameters():
    """Counted on the meta device (no memory): TinyLlama's shape with SmolLM2's 49,152-word vocabulary."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    with torch.device("meta"):
        m = LlamaForCausalLM(LlamaConfig(vocab_size=49152, tie_word_embeddings=True, **SIZES["1b"]))
    assert 1.0e9 < sum(p.numel() for p in m.parameters()) < 1.1e9


def test_tiny_model_loads_and_generates(tmp_path, smollm2_path):
    from rag.augment import build_messages
    from rag.generate import generate, load_generator

    out = build(tmp_path / "m", "tiny", "float32")
    gen = load_generator(str(out), device="cpu")
    assert gen.model.config.hidden_size == 128 and gen.tokenizer.chat_template
    [res] = generate(gen, [build_messages("Who?", None)], max_new_tokens=4, min_new_tokens=4)
    assert res["tokens_out"] == 4
    with pytest.raises(InputError, match="--size"):
        build(tmp_path / "x", "7b")

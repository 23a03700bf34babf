"""A randomly initialised Llama of a given size with SmolLM2's tokenizer, for speed measurements only.

No 1B+ model's weights are reachable from these machines (no hub), but tokens/s does not depend on the
weights' values: a 1.1B model of random weights costs a GPU what a trained one does per token. The engines
issue's GPU goal (vLLM >= 10x transformers' tokens/s on a 1B+ model) is measured on one of these
(`benchmarks/gpu_check.sh`); its answers are noise, so agreement figures on it mean nothing.

    python -m benchmarks.random_model OUT [--size 1b|tiny] [--dtype bfloat16|float32]

Shapes: "1b" is TinyLlama-1.1B's (hidden 2048, 22 layers, 32 heads of 64, 4 KV heads, MLP 5632, 2,048-token
window) with SmolLM2's 49,152-word vocabulary: 1.03B parameters; "tiny" (hidden 128, 2 layers) is for tests.
"""

from __future__ import annotations

import sys
from pathlib import Path

SIZES = {  # LlamaConfig fields per size
    "1b": {"hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22, "num_attention_heads": 32,
           "num_key_value_heads": 4, "max_position_embeddings": 2048},
    "tiny": {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 2,
             "num_key_value_heads": 1, "max_position_embeddings": 512},
}


def build(out: str | Path, size: str = "1b", dtype: str = "bfloat16", seed: int = 0) -> Path:
    """Write the model (safetensors) and SmolLM2's tokenizer to `out`; -> out."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from corpora.errors import InputError
    from rag.models import smollm2_dir

    if size not in SIZES:
        raise InputError(f"--size {size!r}: choose from {', '.join(SIZES)}")
    if dtype not in ("bfloat16", "float32"):
        raise InputError(f"--dtype {dtype!r}: choose bfloat16 or float32")
    tok = AutoTokenizer.from_pretrained(smollm2_dir())
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), tie_word_embeddings=True, pad_token_id=tok.pad_token_id,
                      eos_token_id=tok.eos_token_id, torch_dtype=dtype, **SIZES[size])
    model = LlamaForCausalLM(cfg).to(getattr(torch, dtype))
    out = Path(out)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


if __name__ == "__main__":
    args = sys.argv[1:]
    if not args or args[0].startswith("-"):
        sys.exit("usage: python -m benchmarks.random_model OUT [--size 1b|tiny] [--dtype bfloat16|float32]")
    get = lambda flag, default: args[args.index(flag) + 1] if flag in args else default  # noqa: E731
    path = build(args[0], get("--size", "1b"), get("--dtype", "bfloat16"))
    n = sum(1 for _ in path.iterdir())
    print(f"{path}: random Llama ({get('--size', '1b')}, {get('--dtype', 'bfloat16')}), {n} files")

"""What is trained: LoRA, DoRA, QLoRA adapters (peft) or all weights; parameter counts; merging.

Adapters are saved in peft's own format (adapter_config.json + adapter_model.safetensors) so
`PeftModel.from_pretrained` loads them; `full` saves a standalone model folder (safetensors + tokenizer).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from corpora.errors import InputError
from rag.models import DEFAULT_GENERATOR

METHODS = ("lora", "dora", "qlora", "full")
# All linear layers of a Llama block: Dettmers et al. 2023 (QLoRA) found adapting all of them matches
# full fine-tuning better than attention-only.
LLAMA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def check_method(method: str, device: str) -> None:
    """InputError for an unknown method, or qlora without CUDA / bitsandbytes (imported only here)."""
    if method not in METHODS:
        raise InputError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
    if method == "qlora":
        import torch

        if device == "cpu" or not torch.cuda.is_available():
            raise InputError("method 'qlora' needs a CUDA GPU (bitsandbytes 4-bit); on CPU use --method lora")
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise InputError("method 'qlora' needs bitsandbytes: pip install 'ragft[qlora]'") from None


def load_4bit(path: str):
    """The base model quantised to 4-bit NF4 with double quantisation, bf16 compute (the QLoRA recipe)."""
    import torch
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    q = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                           bnb_4bit_compute_dtype=torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained(path, quantization_config=q, dtype=torch.bfloat16,
                                                 attn_implementation="sdpa", device_map={"": torch.cuda.current_device()})
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)


def add_lora(model, rank: int = 16, alpha: int = 32, dropout: float = 0.05, targets=LLAMA_TARGETS, dora: bool = False):
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(targets),
                     task_type="CAUSAL_LM", bias="none", use_dora=dora)
    return get_peft_model(model, cfg)


def prepare(model, method: str, rank: int, alpha: int, dropout: float, targets=LLAMA_TARGETS):
    """The model to train. lora/qlora: LoRA adapters (qlora's base is already 4-bit), dora: LoRA with a
    trained magnitude per output feature (Liu et al. 2024), full: every weight trainable."""
    if method in ("lora", "qlora", "dora"):
        return add_lora(model, rank, alpha, dropout, targets, dora=method == "dora")
    if method == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    raise InputError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total). Tied weights count once."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


def save_trained(model, tokenizer, method: str, out: Path) -> None:
    """peft adapter for the adapter methods; a standalone model folder (+ tokenizer) for full."""
    model.save_pretrained(out, safe_serialization=True)
    if method == "full":
        tokenizer.save_pretrained(out)


@dataclass
class MergeConfig:
    adapter: str = ""
    """A peft adapter directory (from `ragft finetune`)."""
    out: str = ""
    """Standalone model directory to write (default: <adapter>-merged)."""
    generator: str = DEFAULT_GENERATOR
    """The base model the adapter was trained on: 'smollm2-135m' (shipped) or a local HF model directory."""


def merge(cfg: MergeConfig) -> Path:
    """Fold the adapter into the base weights (W + B A * alpha/r) and save a plain transformers model folder
    (safetensors + tokenizer): loads with AutoModelForCausalLM, or `--generator DIR`, without peft."""
    import torch

    from rag.generate import attach_adapter
    from rag.models import load_causal_lm

    if not cfg.adapter:
        raise InputError("--adapter is required")
    out = Path(cfg.out) if cfg.out else Path(str(Path(cfg.adapter)).rstrip("/") + "-merged")
    model, tok = load_causal_lm(cfg.generator, "cpu")  # fp32: merging in bf16 would round the sum
    model = attach_adapter(model, cfg.adapter).merge_and_unload()
    model.to(torch.float32)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".tmp-{out.name}-"))
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out

"""What is trained: LoRA, DoRA, QLoRA adapters (peft), all weights, or half of them per round (HFT);
parameter counts; merging.

Adapters are saved in peft's own format (adapter_config.json + adapter_model.safetensors) so
`PeftModel.from_pretrained` loads them; `full` and `hft` save a standalone model folder (safetensors +
tokenizer). `memory` is a LoRA adapter trained until every train fact is memorised (finetune/memory.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from corpora.config import check
from corpora.errors import InputError
from rag.models import DEFAULT_GENERATOR

METHODS = ("lora", "dora", "qlora", "full", "hft", "memory")
STANDALONE = ("full", "hft")  # methods whose output is a whole model folder, not a peft adapter
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
    trained magnitude per output feature (Liu et al. 2024), full: every weight trainable, hft: every weight
    inside the blocks (finetune/hft.py freezes half of them per round), memory: LoRA (its stopping rule is in
    finetune/train.py)."""
    if method in ("lora", "qlora", "dora", "memory"):
        return add_lora(model, rank, alpha, dropout, targets, dora=method == "dora")
    if method == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    if method == "hft":
        from finetune.hft import prepare_hft

        return prepare_hft(model)
    raise InputError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total). Tied weights count once."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


def save_trained(model, tokenizer, method: str, out: Path, base: str | None = None, card: dict | None = None) -> None:
    """peft adapter for the adapter methods; a standalone model folder (+ tokenizer) for full and hft.

    base: the generator's name as the user gave it ('smollm2-135m', a folder): stored as the adapter's
    base_model_name_or_path instead of the resolved cache path, so the adapter is portable (rag/generate.py:
    adapter_base resolves it at load time). card: facts for the model card (model_card)."""
    import json

    model.save_pretrained(out, safe_serialization=True)
    if method in STANDALONE:
        tokenizer.save_pretrained(out)
    config = out / "adapter_config.json"
    if base and config.is_file():
        data = json.loads(config.read_text())
        data["base_model_name_or_path"] = base
        config.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    if card is not None:
        (out / "README.md").write_text(model_card({"base": base, "method": method, **card}))


def model_card(c: dict) -> str:
    """README.md of a fine-tuned folder (replaces peft's empty template). c: base, method, data (recipes),
    corpus, corpus_hash, steps, epochs, trainable_params, total_params, and the optional rank, alpha, dropout,
    targets, examples, final_loss, final_eval_loss, device, train_seconds."""
    def get(k, default="not recorded"):
        v = c.get(k)
        return default if v is None or v == "" else v

    method = c.get("method", "lora")
    trainable, total = c.get("trainable_params"), c.get("total_params")
    share = f" ({trainable / total:.2%})" if trainable and total else ""
    lora = (f" (rank {get('rank')}, alpha {get('alpha')}, dropout {get('dropout')}, targets {get('targets')})"
            if method in ("lora", "dora", "qlora", "memory") else
            f" (the blocks' weights, a random half of each block's groups frozen in each of {get('hft_rounds')} rounds "
            "per epoch; embeddings, lm_head and final norm frozen)" if method == "hft" else " (all weights)")
    memory = ([] if c.get("facts_total") is None else
              [f"- memorised: {c['facts_below_threshold']} of {c['facts_total']} train facts below {c.get('until_loss')} "
              f"nats/token after {get('steps')} steps" + (" (stopped there)" if c.get("reached_threshold") else
                                                          " (step budget spent first)")])
    recipes = c.get("data")
    recipes = ", ".join(recipes) if isinstance(recipes, (list, tuple)) else get("data")
    lines = [
        "---",
        f"base_model: {get('base')}",
        "library_name: peft" if method not in STANDALONE else "library_name: transformers",
        "tags: [ragft, " + method + "]",
        "---",
        "",
        f"# ragft {method} on {get('corpus')}",
        "",
        f"- base model: {get('base')} (a ragft generator name or folder; ragft resolves it when loading)",
        f"- method: {method}{lora}",
        f"- recipe: {recipes}",
        f"- corpus: {get('corpus')}, documents hash {get('corpus_hash')}"
        + (f", {c['examples']} training examples" if c.get("examples") is not None else ""),
        f"- steps: {get('steps')} ({get('epochs')} epochs)",
        f"- trainable parameters: {get('trainable_params')} of {get('total_params')}{share}",
        f"- final train loss: {get('final_loss')}; eval loss: {get('final_eval_loss')}",
        f"- trained on: {get('device')}, {get('train_seconds')} s (cost.json has the whole record)",
        *memory,
        "- fit: not measured",
        "",
        "Use: `ragft ask --adapter DIR`, `ragft compare --adapter DIR`, `ragft merge --adapter DIR`; or peft's",
        "`PeftModel.from_pretrained(base_model, DIR)`." if method not in STANDALONE else
        "Use: `ragft ask --generator DIR` (a standalone transformers model folder).",
        "",
    ]
    return "\n".join(lines)


@dataclass
class MergeConfig:
    adapter: str = ""
    """A peft adapter folder from `ragft finetune` (required)."""
    out: str = ""
    """Standalone model folder to write (default <adapter>-merged)."""
    generator: str = DEFAULT_GENERATOR
    """Base model the adapter was trained on: 'smollm2-135m' or a local HF model folder (default smollm2-135m)."""

    def __post_init__(self):
        check(self)


def merge(cfg: MergeConfig) -> Path:
    """Fold the adapter into the base weights (W + B A * alpha/r) and save a plain transformers model folder
    (safetensors + tokenizer): loads with AutoModelForCausalLM, or `--generator DIR`, without peft."""
    import torch

    from rag.generate import attach_adapter
    from rag.models import load_causal_lm

    from corpora.files import temp_dir_beside
    from corpora.outputs import io_errors, prepare_out, replace_dir, write_marker
    from rag.generate import adapter_base

    if not cfg.adapter:
        raise InputError("--adapter is required")
    out = Path(cfg.out) if cfg.out else Path(str(Path(cfg.adapter)).rstrip("/") + "-merged")
    prepare_out(out, "model")  # before any model loads: a user's folder is never replaced, a read-only one found
    generator = cfg.generator
    if generator == DEFAULT_GENERATOR:  # the default: the base the adapter names, when it resolves to another one
        generator = adapter_base(cfg.adapter) or generator
    model, tok = load_causal_lm(generator, "cpu")  # fp32: merging in bf16 would round the sum
    model = attach_adapter(model, cfg.adapter).merge_and_unload()
    model.to(torch.float32)
    out.parent.mkdir(parents=True, exist_ok=True)
    with io_errors(out), temp_dir_beside(out) as tmp:  # removed if the save fails (a full disk)
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        write_marker(tmp, "model")
        replace_dir(tmp, out)
    return out

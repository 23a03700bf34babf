"""The LoRA adapter: which modules, what rank. Saved in peft's own format (adapter_config.json +
adapter_model.safetensors) so `PeftModel.from_pretrained` loads it."""

from __future__ import annotations

# All linear layers of a Llama block: Dettmers et al. 2023 (QLoRA) found adapting all of them matches
# full fine-tuning better than attention-only.
LLAMA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def add_lora(model, rank: int = 16, alpha: int = 32, dropout: float = 0.05, targets=LLAMA_TARGETS):
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(targets),
                     task_type="CAUSAL_LM", bias="none")
    return get_peft_model(model, cfg)


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total)."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())

"""The training loop: LoRA on the base model over the corpus's train split; CPU fp32 or CUDA bf16.

Writes to cfg.out (via a temp folder, renamed at the end): the peft adapter and cost.json
(wall seconds, trained tokens, tokens/s, device, loss per step).
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from corpora import DEFAULT_CORPUS, load_corpus
from finetune.data import batches, qa_examples, tokenize_example
from finetune.lora import add_lora, count_parameters
from rag.models import DEFAULT_GENERATOR, load_causal_lm


@dataclass
class FinetuneConfig:
    corpus: str = DEFAULT_CORPUS
    """Shipped corpus name or a folder with docs.jsonl and qa.jsonl (its train split is used)."""
    out: str = ""
    """Adapter directory (default: runs/adapter-<corpus>)."""
    generator: str = DEFAULT_GENERATOR
    """Base model: 'smollm2-135m' (shipped) or a local HF model directory."""
    epochs: float = 3.0
    """Passes over the training examples (ignored when max_steps > 0)."""
    max_steps: int = 0
    """Stop after this many optimizer steps (0: use epochs)."""
    batch_size: int = 8
    """Examples per step."""
    lr: float = 1e-3
    """Peak learning rate (AdamW, linear warmup then cosine decay)."""
    warmup: float = 0.1
    """Fraction of steps spent warming up the learning rate."""
    max_len: int = 128
    """Tokens per example, longer ones keep their end (the answer)."""
    rank: int = 16
    """LoRA rank r."""
    alpha: int = 32
    """LoRA alpha (scale = alpha / r)."""
    dropout: float = 0.05
    """LoRA dropout."""
    abstain: bool = True
    """Train unanswerable questions to answer "I don't know."."""
    seed: int = 0
    """Seed for LoRA init and batch order."""
    device: str = "auto"
    """auto | cpu | cuda (bf16 when supported)."""


def collate(batch: list[dict], pad_id: int, device) -> dict:
    """Right-pad a batch: input_ids (B, T), attention_mask (B, T), labels (B, T) with -100 on padding."""
    width = max(len(x["input_ids"]) for x in batch)
    ids = [x["input_ids"] + [pad_id] * (width - len(x["input_ids"])) for x in batch]
    labels = [x["labels"] + [-100] * (width - len(x["labels"])) for x in batch]
    mask = [[1] * len(x["input_ids"]) + [0] * (width - len(x["input_ids"])) for x in batch]
    return {k: torch.tensor(v, device=device) for k, v in
            (("input_ids", ids), ("attention_mask", mask), ("labels", labels))}


def lr_at(step: int, total: int, warmup_steps: int, peak: float) -> float:
    """Linear warmup to peak, then cosine decay to 10% of peak. step counts from 0."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total - warmup_steps)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(cfg: FinetuneConfig, model=None, tokenizer=None, examples: list[list[dict]] | None = None,
          progress: bool = True) -> dict:
    """Train a LoRA adapter and save it to cfg.out. Returns the cost record (also written as cost.json).

    model/tokenizer/examples may be passed in (tests use a tiny model); otherwise they come from cfg.
    """
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out) if cfg.out else Path("runs") / f"adapter-{Path(cfg.corpus).name}"
    if examples is None:
        examples = qa_examples(load_corpus(cfg.corpus), abstain=cfg.abstain)
    if model is None:
        model, tokenizer = load_causal_lm(cfg.generator, cfg.device)
    device = next(model.parameters()).device
    use_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    model = add_lora(model, cfg.rank, cfg.alpha, cfg.dropout)
    model.train()
    trainable, total_params = count_parameters(model)
    data = [tokenize_example(tokenizer, m, cfg.max_len) for m in examples]
    steps_per_epoch = math.ceil(len(data) / cfg.batch_size)
    total = cfg.max_steps or max(1, round(cfg.epochs * steps_per_epoch))
    warmup_steps = max(1, round(cfg.warmup * total))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=0.0)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="finetune", unit="step")
    losses, tokens, step, t0 = [], 0, 0, time.perf_counter()
    while step < total:
        for batch in batches(data, cfg.batch_size, cfg.seed, epoch=step // steps_per_epoch):
            if step >= total:
                break
            for group in opt.param_groups:
                group["lr"] = lr_at(step, total, warmup_steps, cfg.lr)
            inputs = collate(batch, pad_id, device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                loss = model(**inputs).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            tokens += int(inputs["attention_mask"].sum())
            losses.append(round(loss.item(), 5))
            step += 1
            if bar is not None:
                bar.set_postfix(loss=f"{losses[-1]:.3f}", tok_s=f"{tokens / (time.perf_counter() - t0):.0f}")
                bar.update(1)
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - t0
    model.eval()

    record = {
        "config": asdict(cfg), "steps": step, "examples": len(data), "epochs": step / steps_per_epoch,
        "train_seconds": round(seconds, 3), "trained_tokens": tokens, "tokens_per_second": round(tokens / seconds, 1),
        "trainable_params": trainable, "total_params": total_params,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu x{torch.get_num_threads()}",
        "peak_memory_bytes": peak_memory(device), "final_loss": losses[-1], "losses": losses,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".tmp-{out.name}-"))
    model.save_pretrained(tmp, safe_serialization=True)
    (tmp / "cost.json").write_text(json.dumps(record, indent=2))
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    record["adapter"] = str(out)
    return record


def peak_memory(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB

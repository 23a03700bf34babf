"""`ragft bench training`: this trainer's LoRA tokens/s against a plain transformers.Trainer, in one process.

Same model (a fresh copy of the base for each run), same LoRA config, same examples (the corpus's train
questions as chats), same batch size, sequence length, optimizer settings and number of steps. The runs
alternate (ours, Trainer, Trainer, ours, ...) so background load on a shared machine falls on both; the
ratio of summed tokens over summed seconds is what to read, not the absolute figures. The mean training loss
of each run is printed as a check that both did the same work.

Peak memory: on CUDA torch.cuda.max_memory_allocated per run (reset between runs); on CPU the process's
peak RSS during the run (Linux: VmHWM, reset by writing 5 to /proc/self/clear_refs), which includes the
base model both runs share.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from corpora import DEFAULT_CORPUS, load_corpus
from corpora.config import check, opt
from finetune.data import qa_examples, tokenize_example
from finetune.lora import add_lora
from finetune.train import FinetuneConfig, train
from rag.models import DEFAULT_GENERATOR, DEVICES, load_causal_lm


@dataclass
class TrainingBenchConfig:
    generator: str = DEFAULT_GENERATOR
    """Base model: 'smollm2-135m' (shipped) or a local HF model folder (default smollm2-135m)."""
    corpus: str = DEFAULT_CORPUS
    """Corpus whose train questions are the training data (default atlantis)."""
    steps: int = opt(6, min=1)
    """Optimizer steps per run (default 6)."""
    rounds: int = opt(2, min=1)
    """Runs of each trainer, alternating (default 2)."""
    batch_size: int = opt(8, min=1, flag="train-batch-size", aliases=("batch-size",))
    """Examples per training step, both trainers (default 8 examples)."""
    max_len: int = opt(128, min=1)
    """Tokens per example at most, both trainers (default 128 tokens)."""
    device: str = opt("auto", choices=DEVICES)
    """Device: auto | cpu | cuda (default auto)."""

    def __post_init__(self):
        check(self)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass  # not Linux, or not allowed: VmHWM then is the process's peak so far


def read_peak(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def right_pad_collator(pad_id: int, counter: dict):
    """The usual Trainer collator for chat SFT: right padding, labels -100 on padding. Counts real tokens."""
    def collate(batch: list[dict]) -> dict:
        width = max(len(x["input_ids"]) for x in batch)
        out = {
            "input_ids": torch.tensor([x["input_ids"] + [pad_id] * (width - len(x["input_ids"])) for x in batch]),
            "attention_mask": torch.tensor([[1] * len(x["input_ids"]) + [0] * (width - len(x["input_ids"])) for x in batch]),
            "labels": torch.tensor([x["labels"] + [-100] * (width - len(x["labels"])) for x in batch]),
        }
        counter["tokens"] += int(out["attention_mask"].sum())
        return out
    return collate


def run_ours(cfg: TrainingBenchConfig, examples: list, tmp: Path) -> dict:
    model, tok = load_causal_lm(cfg.generator, cfg.device)
    device = next(model.parameters()).device
    ft = FinetuneConfig(out=str(tmp / "ours"), generator=cfg.generator, method="lora", max_steps=cfg.steps,
                        batch_size=cfg.batch_size, max_len=cfg.max_len, eval_size=0, device=cfg.device)
    reset_peak(device)
    rec = train(ft, model=model, tokenizer=tok, examples=examples, eval_examples=[], progress=False)
    return {"trainer": "ragft", "tokens": rec["trained_tokens"], "seconds": rec["train_seconds"],
            "peak_memory_bytes": read_peak(device), "mean_loss": sum(rec["losses"]) / len(rec["losses"])}


def run_hf(cfg: TrainingBenchConfig, examples: list, tmp: Path) -> dict:
    from transformers import Trainer, TrainingArguments, TrainerCallback

    ft = FinetuneConfig()
    model, tok = load_causal_lm(cfg.generator, cfg.device)
    device = next(model.parameters()).device
    model = add_lora(model, ft.rank, ft.alpha, ft.dropout)
    data = [tokenize_example(tok, m, cfg.max_len) for m in examples]
    counter, clock = {"tokens": 0}, {}

    class Clock(TrainerCallback):  # the training loop only, like ragft's train_seconds
        def on_train_begin(self, *a, **k):
            clock["t0"] = time.perf_counter()

        def on_train_end(self, *a, **k):
            clock["t1"] = time.perf_counter()

    args = TrainingArguments(
        output_dir=str(tmp / "hf"), per_device_train_batch_size=cfg.batch_size, max_steps=cfg.steps,
        learning_rate=ft.lr, lr_scheduler_type="cosine", warmup_steps=max(1, round(ft.warmup * cfg.steps)),
        weight_decay=ft.weight_decay, max_grad_norm=ft.max_grad_norm, optim="adamw_torch",
        bf16=device.type == "cuda" and torch.cuda.is_bf16_supported(), use_cpu=device.type == "cpu",
        save_strategy="no", logging_strategy="no", report_to="none", disable_tqdm=True,
        dataloader_num_workers=0, seed=0)
    trainer = Trainer(model=model, args=args, train_dataset=data, data_collator=right_pad_collator(tok.pad_token_id, counter),
                      callbacks=[Clock()])
    reset_peak(device)
    out = trainer.train()
    return {"trainer": "transformers.Trainer", "tokens": counter["tokens"], "seconds": clock["t1"] - clock["t0"],
            "peak_memory_bytes": read_peak(device), "mean_loss": out.training_loss}


def bench_training(cfg: TrainingBenchConfig, echo=print) -> dict:
    """Alternating runs of both trainers -> {"runs": [...], "ratio": ragft tokens/s over Trainer tokens/s}."""
    corpus = load_corpus(cfg.corpus)
    examples = qa_examples(corpus)[: cfg.steps * cfg.batch_size]  # one pass: both trainers see each example once
    runs = []
    with tempfile.TemporaryDirectory(prefix="ragft-bench-") as tmp:
        for r in range(cfg.rounds):
            order = (run_ours, run_hf) if r % 2 == 0 else (run_hf, run_ours)
            for fn in order:
                res = fn(cfg, examples, Path(tmp))
                res["round"], res["tokens_per_second"] = r, res["tokens"] / res["seconds"]
                echo(f"round {r} {res['trainer']:>20}: {res['tokens']} tokens in {res['seconds']:.1f} s = "
                     f"{res['tokens_per_second']:.0f} tokens/s, peak memory {res['peak_memory_bytes'] / 2**20:.0f} MiB, "
                     f"mean loss {res['mean_loss']:.3f}")
                runs.append(res)
    summary = {}
    for name in ("ragft", "transformers.Trainer"):
        mine = [x for x in runs if x["trainer"] == name]
        summary[name] = {"tokens_per_second": sum(x["tokens"] for x in mine) / sum(x["seconds"] for x in mine),
                         "peak_memory_bytes": max(x["peak_memory_bytes"] for x in mine)}
    ratio = summary["ragft"]["tokens_per_second"] / summary["transformers.Trainer"]["tokens_per_second"]
    mem = summary["ragft"]["peak_memory_bytes"] / summary["transformers.Trainer"]["peak_memory_bytes"]
    echo(f"LoRA r={FinetuneConfig.rank}, batch {cfg.batch_size}, max_len {cfg.max_len}, {cfg.steps} steps x "
         f"{cfg.rounds} rounds, device {'cuda' if torch.cuda.is_available() and cfg.device != 'cpu' else f'cpu x{torch.get_num_threads()}'}")
    echo(f"tokens/s ratio (ragft / transformers.Trainer): {ratio:.2f}   peak memory ratio: {mem:.2f}")
    return {"runs": runs, "summary": summary, "ratio": ratio, "memory_ratio": mem}

"""The training loop: LoRA / DoRA / QLoRA / full / Half Fine-Tuning / memory tuning on the corpus's data recipes.

CPU: fp32. CUDA: bf16 autocast + SDPA. Several GPUs: `accelerate launch -m cli finetune ...` runs this
same code under DDP (accelerate's Accelerator; each process takes every world_size-th micro-batch).

Writes to cfg.out (via a temp folder, renamed at the end): the peft adapter (or, for method full, a standalone
model folder; also for hft) and cost.json (wall seconds, trained tokens, tokens/s, peak memory, device, epochs, loss curve,
eval loss per epoch). Checkpoints (cfg.save_every) go to <out>-checkpoints/step-N, each written to a temp
folder and renamed, so a killed run leaves only complete ones; --resume continues from the last.

Two things make a step cheaper than a plain transformers.Trainer step on the same batch (`ragft bench
training` measures it). The prompt prefix all rows of a batch share (the system prompt and "Question:", ~29 of
~70 tokens of a closed-book chat) runs once, as a key/value cache repeated over the rows. And loss is computed
only where labels are set: the model is asked for logits of the last K positions only
(left padding puts every answer at the end), so the 49k-vocabulary head and softmax run on ~10 of ~70
positions of a QA example.

--method hft (finetune/hft.py) freezes a seeded random half of each block's groups per round, --hft-rounds
rounds an epoch. --until-loss (and --method memory, finetune/memory.py) checks every train fact's answer loss
every --check-every steps and stops once all are below it; cost.json records how many got there.
"""

from __future__ import annotations

import json
import math
import os
import random
import shlex
import shutil
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch

from corpora import DEFAULT_CORPUS, load_corpus
from corpora.config import check, known, opt
from corpora.errors import InputError
from finetune.data import RECIPES, batches, build_examples, heldout_examples, tokenize_item
from finetune.hft import HalfSchedule, plan_text, round_of
from finetune.lora import (LLAMA_TARGETS, METHODS, STANDALONE, check_method, count_parameters, load_4bit, prepare,
                           save_trained)
from finetune.memory import MEMORY_THRESHOLD, fact_check, fact_examples
from rag.models import DEFAULT_GENERATOR, DEVICES, load_causal_lm, pick_device, resolve_generator


@dataclass
class FinetuneConfig:
    corpus: str = DEFAULT_CORPUS
    """Shipped corpus name or a folder with docs.jsonl and qa.jsonl; its train split is used (default atlantis)."""
    out: str = ""
    """Output folder (default runs/adapter-<corpus>)."""
    generator: str = DEFAULT_GENERATOR
    """Base model: 'smollm2-135m' (shipped) or a local HF model folder (default smollm2-135m)."""
    method: str = opt("lora", choices=METHODS)
    """lora | dora | qlora (4-bit base, CUDA only) | full | hft (half the weights per round) | memory (LoRA to --until-loss) (default lora)."""
    data: str = opt("qa+paraphrase", flag="recipe", aliases=("data",))
    """Data recipes joined by '+' (',' also works): qa, docs, paraphrase, raft (default qa+paraphrase)."""
    paraphrases: int = opt(2, min=0)
    """paraphrase recipe: rewordings of each train question (default 2)."""
    raft_distractors: int = opt(2, min=0)
    """raft recipe: distractor chunks per question (default 2)."""
    raft_p_no_gold: float = opt(0.2, min=0.0, max=1.0)
    """raft recipe: probability that the gold chunk is left out of the prompt, 0-1 (default 0.2)."""
    abstain: bool = True
    """Train unanswerable questions to answer "I don't know." (default on)."""
    epochs: float = opt(2.0, above=0)
    """Passes over the training examples, ignored when --max-steps > 0 (default 2.0 epochs)."""
    hft_rounds: int = opt(4, min=1)
    """method hft: rounds per epoch, each freezing a new random half of every block's groups (default 4)."""
    until_loss: float = opt(0.0, min=0.0)
    """Stop once every train fact's answer loss is below this, nats/token (default 0: off; method memory: 0.05)."""
    check_every: int = opt(0, min=0)
    """Steps between --until-loss checks of the train facts' loss (default 0: at each epoch's end)."""
    memory_epochs: float = opt(20.0, above=0)
    """method memory: step budget in epochs, used instead of --epochs when --max-steps is 0 (default 20 epochs)."""
    max_steps: int = opt(0, min=0)
    """Stop after this many optimizer steps (default 0: use --epochs)."""
    batch_size: int = opt(8, min=1, flag="train-batch-size", aliases=("batch-size",))
    """Examples per training micro-batch, per process (default 8 examples)."""
    grad_accum: int = opt(1, min=1)
    """Micro-batches per optimizer step (default 1)."""
    lr: float = opt(2e-3, above=0)
    """Peak learning rate: AdamW, linear warmup, cosine decay to 10% (default 2e-3)."""
    warmup: float = opt(0.1, min=0.0, max=1.0)
    """Share of the steps spent warming up the learning rate, 0-1 (default 0.1)."""
    weight_decay: float = opt(0.0, min=0.0)
    """AdamW weight decay (default 0.0)."""
    max_grad_norm: float = opt(1.0, above=0)
    """Gradient clipping: largest global L2 norm (default 1.0)."""
    max_len: int = opt(512, min=1)
    """Tokens per example at most; chats keep their end (the answer), texts their start (default 512 tokens)."""
    doc_chunk_tokens: int = opt(128, min=1)
    """docs recipe: tokens per document piece, cut at sentence ends (default 128 tokens)."""
    rank: int = opt(16, min=1)
    """LoRA rank r (default 16)."""
    alpha: int = opt(32, above=0, flag="lora-alpha", aliases=("alpha",))
    """LoRA alpha; the update is scaled by alpha / r (default 32)."""
    dropout: float = opt(0.05, min=0.0, below=1.0)
    """LoRA dropout, 0 to below 1 (default 0.05)."""
    targets: str = ",".join(LLAMA_TARGETS)
    """Modules that get adapters, comma-separated (default all linear layers of a Llama block)."""
    group_by_length: bool = True
    """Batch examples of similar length together, for less padding (default on)."""
    share_prefix: bool = True
    """Run the prompt prefix a batch shares (the system prompt) once per batch (default on)."""
    grad_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, slower (default off)."""
    eval_size: int = opt(32, min=0)
    """Held-out questions (train facts in unseen wording) whose loss is measured each epoch (default 32; 0: off)."""
    patience: int = opt(0, min=0)
    """Early stopping: epochs without a lower eval loss before stopping at the best (default 0: off)."""
    save_every: int = opt(0, min=0)
    """Checkpoint every N optimizer steps to <out>-checkpoints/ (default 0: never)."""
    resume: bool = False
    """Continue from the last checkpoint in <out>-checkpoints/ (default off)."""
    seed: int = opt(0, min=0)
    """Seed of adapter init, data recipes and batch order (default 0)."""
    device: str = opt("auto", choices=DEVICES)
    """Device: auto | cpu | cuda, bf16 where supported (default auto)."""

    def __post_init__(self):
        known(self, "method")  # "unknown method 'x': choose one of ...", as before
        check(self)
        # --recipe takes '+' (as `ragft compare --recipe`) or ','; the field keeps the comma form it always
        # stored ("qa,paraphrase" by default), so cost.json and the adapter-reuse checks read what they did.
        self.data = self.data.replace("+", ",")
        parse_recipes(self.data)


# Fields a resumed run may change without changing what is trained.
RESUMABLE = {"resume", "save_every", "device", "out"}


def output_dir(cfg: FinetuneConfig) -> Path:
    return Path(cfg.out) if cfg.out else Path("runs") / f"adapter-{Path(cfg.corpus).name}"


def checkpoint_root(cfg: FinetuneConfig) -> Path:
    out = output_dir(cfg)
    return out.parent / f"{out.name}-checkpoints"


def next_step(corpus_arg: str) -> str:
    """What to do about a corpus without training questions, as the end of one error line."""
    return (f"; build a QA set from its documents with `ragft corpora make-qa {shlex.quote(corpus_arg)} --out DIR`, "
            "or train on the documents alone with `--recipe docs`")


def check_training_data(corpus, recipes: list[str], corpus_arg: str, abstain: bool = True,
                        paraphrases: int = 2) -> None:
    """InputError (one line naming `ragft corpora make-qa` and `--recipe docs`) when no recipe can give an
    example on this corpus, decided from the corpus alone so it fails before any model loads: qa, raft and
    paraphrase (with paraphrases > 0) need train questions with gold answers (unanswerable ones count with
    abstain; a corpus without gold answers, BEIR, has none), docs needs documents (finetune/data.py)."""
    train = [] if corpus.retrieval_only else [q for q in corpus.questions("train") if q["answers"] or abstain]
    gives = {"qa": bool(train), "raft": bool(train), "paraphrase": bool(train) and paraphrases > 0,
             "docs": bool(corpus.docs)}
    if any(gives.get(r, True) for r in recipes):
        return
    why = ("it has no gold answers (retrieval judgements only)" if corpus.retrieval_only else
           "its train split has no questions" if not corpus.questions("train") else
           "its train questions give no examples for these recipes")
    raise InputError(f"no training examples from recipes {','.join(recipes)!r} on corpus {corpus_arg!r}: "
                     f"{why}{next_step(corpus_arg)}")


def parse_recipes(data: str) -> list[str]:
    recipes = [r.strip() for r in data.split(",") if r.strip()]
    bad = [r for r in recipes if r not in RECIPES]
    if bad or not recipes:
        raise InputError(f"unknown data recipe {', '.join(bad) or repr(data)}: choose from {', '.join(RECIPES)}")
    return recipes


def collate(batch: list[dict], pad_id: int, device) -> dict:
    """Left-pad a batch: input_ids, attention_mask, position_ids, labels (B, T); labels -100 on padding.

    Left padding ends every row at T, so the labelled tokens (a chat's answer) sit in the last columns.
    The label of position t is the target of the logits at t-1 (shifted in loss_sum).
    position_ids count real tokens only, as if the row were unpadded.
    """
    width = max(len(x["input_ids"]) for x in batch)
    pads = [width - len(x["input_ids"]) for x in batch]
    ids = [[pad_id] * p + x["input_ids"] for p, x in zip(pads, batch)]
    # A row's first token has no predictor (the position before it is padding): never a target.
    labels = [[-100] * (p + 1) + x["labels"][1:] for p, x in zip(pads, batch)]
    mask = [[0] * p + [1] * len(x["input_ids"]) for p, x in zip(pads, batch)]
    pos = [[0] * p + list(range(len(x["input_ids"]))) for p, x in zip(pads, batch)]
    return {k: torch.tensor(v, device=device) for k, v in
            (("input_ids", ids), ("attention_mask", mask), ("position_ids", pos), ("labels", labels))}


def shared_prefix_len(batch: list[dict], min_len: int = 8) -> int:
    """Tokens at the start of every row (the system prompt and "Question:" of closed-book chats), stopping
    before any row's first target; 0 when shorter than min_len or the batch has one row."""
    if len(batch) < 2:
        return 0
    rows = [x["input_ids"] for x in batch]
    limit = min(min(len(r) - 1 for r in rows),
                min(next((i for i, l in enumerate(x["labels"]) if l != -100), len(x["labels"])) - 1 for x in batch))
    p = 0
    while p < limit and all(r[p] == rows[0][p] for r in rows):
        p += 1
    return p if p >= min_len else 0


def make_inputs(batch: list[dict], pad_id: int, device, share_prefix: bool) -> dict:
    """collate(), or with share_prefix and a common prefix of P tokens: "prefix_ids" (1, P) run once, then the
    rows' remainders left-padded, attention_mask (B, P + T) and position_ids continuing from P."""
    p = shared_prefix_len(batch) if share_prefix else 0
    if p == 0:
        return collate(batch, pad_id, device)
    rest = collate([{"input_ids": x["input_ids"][p:], "labels": x["labels"][p:]} for x in batch], pad_id, device)
    rest["prefix_ids"] = torch.tensor([batch[0]["input_ids"][:p]], device=device)
    rest["attention_mask"] = torch.cat([torch.ones(len(batch), p, dtype=torch.long, device=device),
                                        rest["attention_mask"]], dim=1)
    rest["position_ids"] = rest["position_ids"] + p
    return rest


def keep_last(labels: torch.Tensor) -> int:
    """K such that the last K positions hold every predictor of a labelled token (position t predicts t+1)."""
    labelled = (labels != -100).any(dim=0).nonzero()
    if len(labelled) == 0:
        return 1
    return min(labels.shape[1], labels.shape[1] - int(labelled[0]) + 1)


def last_logits(model, inputs: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits (B, K-1, V) of the last keep_last positions but the final one, their targets (B, K-1), -100 where
    unlabelled): what loss_sum sums, and finetune/memory.py: fact_losses averages per row."""
    labels = inputs["labels"]
    T, K = labels.shape[1], keep_last(labels)
    cache = None
    if "prefix_ids" in inputs:  # the shared prefix once, its keys/values repeated for every row (gradients add up)
        cache = model(input_ids=inputs["prefix_ids"], use_cache=True, logits_to_keep=1).past_key_values
        cache.batch_repeat_interleave(labels.shape[0])
    logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                   position_ids=inputs["position_ids"], past_key_values=cache, use_cache=cache is not None,
                   logits_to_keep=K).logits  # (B, K, V)
    target = labels[:, T - K + 1:]  # (B, K-1): the tokens positions T-K .. T-2 predict
    return logits[:, :-1], target


def loss_sum(model, inputs: dict) -> tuple[torch.Tensor, int]:
    """(summed cross-entropy over labelled tokens, their count). Logits only for the last keep_last positions."""
    logits, target = last_logits(model, inputs)
    loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]),
                                             target.reshape(-1), ignore_index=-100, reduction="sum")
    return loss, int((target != -100).sum())


@torch.no_grad()
def eval_loss(model, data: list[dict], batch_size: int, pad_id: int, device, use_bf16: bool,
              share_prefix: bool = True) -> float:
    """Mean cross-entropy per labelled token over data (dropout off)."""
    was_training = model.training
    model.eval()
    total, n = 0.0, 0
    for s in range(0, len(data), batch_size):
        inputs = make_inputs(data[s:s + batch_size], pad_id, device, share_prefix)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            loss, count = loss_sum(model, inputs)
        total, n = total + loss.item(), n + count
    model.train(was_training)
    return total / max(1, n)


@torch.no_grad()
def fact_losses(model, data: list[dict], batch_size: int, pad_id: int, device, use_bf16: bool,
                share_prefix: bool = True) -> list[float]:
    """Mean cross-entropy per answer token of each tokenized fact (nats/token), in data's order, dropout off:
    finetune/memory.py's per-fact loss, batched as eval_loss."""
    was_training = model.training
    model.eval()
    out: list[float] = []
    for s in range(0, len(data), batch_size):
        inputs = make_inputs(data[s:s + batch_size], pad_id, device, share_prefix)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            logits, target = last_logits(model, inputs)  # (B, K-1, V), (B, K-1)
        ce = torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), target, ignore_index=-100,
                                               reduction="none")  # (B, K-1), 0 where ignored
        counts = (target != -100).sum(dim=1).clamp(min=1)
        out += (ce.sum(dim=1) / counts).tolist()
    model.train(was_training)
    return out


def lr_at(step: int, total: int, warmup_steps: int, peak: float) -> float:
    """Linear warmup to peak, then cosine decay to 10% of peak. step counts from 0."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total - warmup_steps)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def trainable_state(model, names: set[str] | None = None) -> dict[str, torch.Tensor]:
    """Every trainable tensor by name (tied weights once): the LoRA matrices, or all weights for full.
    names: these tensors instead (hft: every block weight, also those frozen in the current round)."""
    return {n: p.detach().contiguous() for n, p in model.named_parameters()
            if (p.requires_grad if names is None else n in names)}


# ---- checkpoints: safetensors for tensors, JSON for the rest; nothing is unpickled on resume ----

def save_checkpoint(root: Path, step: int, model, opt, state: dict, best: dict | None,
                    names: set[str] | None = None) -> Path:
    """root/step-<step>/: trainable.safetensors, optimizer.safetensors, rng.safetensors, [best.safetensors],
    state.json (step, counters, loss curve, optimizer param groups, Python RNG). Older checkpoints removed."""
    from safetensors.torch import save_file

    from corpora.files import temp_dir_beside
    from corpora.outputs import MARKER, follow_umask, io_errors, write_marker

    if not root.is_dir():
        root.mkdir(parents=True, exist_ok=True)
    if not (root / MARKER).is_file():
        write_marker(root, "checkpoints")
    final = root / f"step-{step:07d}"
    with io_errors(final), temp_dir_beside(final) as tmp:  # removed if a write fails (a full disk); a killed run leaves only it
        save_file(trainable_state(model, names), tmp / "trainable.safetensors")
        opt_state = opt.state_dict()
        save_file({f"{i}.{k}": v.contiguous() for i, s in opt_state["state"].items() for k, v in s.items()},
                  tmp / "optimizer.safetensors")
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state()
        save_file(rng, tmp / "rng.safetensors")
        if best is not None:
            save_file(best, tmp / "best.safetensors")
        py_state = random.getstate()
        (tmp / "state.json").write_text(json.dumps({
            **state, "param_groups": opt_state["param_groups"],
            "python_random": [py_state[0], list(py_state[1]), py_state[2]],
        }))
        follow_umask(tmp)  # safetensors writes 0600 files
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    for old in root.glob("step-*"):
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


def last_checkpoint(root: Path) -> Path | None:
    done = sorted(p for p in root.glob("step-*") if (p / "state.json").is_file())
    return done[-1] if done else None


def load_checkpoint(path: Path, model, opt, device) -> tuple[dict, dict | None]:
    """Restore model, optimizer and RNG in place -> (state.json contents, best weights or None)."""
    from safetensors.torch import load_file

    state = json.loads((path / "state.json").read_text())
    weights = load_file(path / "trainable.safetensors", device=str(device))
    params = dict(model.named_parameters())
    missing = [n for n, p in params.items() if p.requires_grad and n not in weights]
    if missing:
        raise InputError(f"checkpoint does not fit this model ({len(missing)} trainable tensors missing)", str(path))
    with torch.no_grad():
        for n, v in weights.items():
            params[n].copy_(v)
    flat = load_file(path / "optimizer.safetensors", device=str(device))
    opt_state: dict = {"state": {}, "param_groups": state["param_groups"]}
    for key, v in flat.items():
        i, k = key.split(".", 1)
        opt_state["state"].setdefault(int(i), {})[k] = v.cpu() if k == "step" else v
    opt.load_state_dict(opt_state)
    rng = load_file(path / "rng.safetensors")
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["cuda"])
    v, internal, gauss = state["python_random"]
    random.setstate((v, tuple(internal), gauss))
    best = load_file(path / "best.safetensors", device=str(device)) if (path / "best.safetensors").is_file() else None
    return state, best


def load_model(cfg: FinetuneConfig, device: str):
    check_method(cfg.method, device)
    if cfg.method == "qlora":
        from transformers import AutoTokenizer

        path = resolve_generator(cfg.generator)
        tok = AutoTokenizer.from_pretrained(path)
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        return load_4bit(path), tok
    return load_causal_lm(cfg.generator, device)


def until_loss(cfg: FinetuneConfig) -> float:
    """The memorisation threshold in nats/token: --until-loss, or 0.05 for method memory when unset (0: off)."""
    return cfg.until_loss or (MEMORY_THRESHOLD if cfg.method == "memory" else 0.0)


def train(cfg: FinetuneConfig, model=None, tokenizer=None, examples: list | None = None,
          eval_examples: list | None = None, progress: bool = True, facts: list | None = None) -> dict:
    """Train and save to cfg.out. Returns the cost record (also written as cost.json).

    model/tokenizer/examples/eval_examples may be passed in (tests use a tiny model); otherwise they come from cfg.
    examples: chats (lists of turns) and/or plain texts, as finetune.data builds them.
    facts: the chats whose answer loss --until-loss watches (default: the corpus's answerable train questions,
    finetune/memory.py: fact_examples; with examples passed in and no corpus: their chats that do not abstain).
    """
    from accelerate import Accelerator

    wall0 = time.perf_counter()
    recipes = parse_recipes(cfg.data)
    targets = [t.strip() for t in cfg.targets.split(",") if t.strip()]
    check_method(cfg.method, cfg.device if model is None else next(model.parameters()).device.type)
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    out, ckpt_root = output_dir(cfg), checkpoint_root(cfg)
    check_outputs(cfg, out, ckpt_root)  # before any model loads: a user's folder, an unwritable place
    corpus = None
    threshold = until_loss(cfg)
    if examples is None or (eval_examples is None and cfg.eval_size > 0):
        corpus = load_corpus(cfg.corpus)
    if examples is None:  # a corpus without train questions: one line naming make-qa, before any model loads
        check_training_data(corpus, recipes, cfg.corpus, cfg.abstain, cfg.paraphrases)
    base = cfg.generator if model is None else None  # the adapter names the base by the name the user gave

    want_cuda = model is None and pick_device(cfg.device) == "cuda"
    acc = Accelerator(cpu=not want_cuda and (model is None or next(model.parameters()).device.type == "cpu"))
    if model is None:
        model, tokenizer = load_model(cfg, str(acc.device))
    device = next(model.parameters()).device
    use_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    if cfg.method in STANDALONE and device.type == "cuda":
        model.float()  # full fine-tuning (and hft) keeps fp32 master weights; bf16 only inside autocast
    if examples is None:
        examples = build_examples(corpus, recipes, tokenizer, abstain=cfg.abstain, paraphrases_n=cfg.paraphrases,
                                  raft_distractors=cfg.raft_distractors, raft_p_no_gold=cfg.raft_p_no_gold,
                                  doc_chunk_tokens=cfg.doc_chunk_tokens, seed=cfg.seed)
    if eval_examples is None:
        eval_examples = heldout_examples(corpus, cfg.eval_size, cfg.abstain, cfg.seed) if cfg.eval_size > 0 else []
    if not examples:
        raise InputError(f"no training examples from recipes {cfg.data!r} on corpus {cfg.corpus!r}"
                         + next_step(cfg.corpus))
    if threshold and facts is None:
        facts = (fact_examples(corpus) if corpus is not None else
                 [e for e in examples if not isinstance(e, str) and not e[-1]["content"].startswith("I don't know")])
    if threshold and not facts:
        raise InputError(f"--until-loss / --method memory: corpus {cfg.corpus!r} has no answerable train questions "
                         "to memorise" + next_step(cfg.corpus))

    model = prepare(model, cfg.method, cfg.rank, cfg.alpha, cfg.dropout, targets)
    if cfg.grad_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    trainable, total_params = count_parameters(model)
    data = [tokenize_item(tokenizer, m, cfg.max_len) for m in examples]
    held = [tokenize_item(tokenizer, m, cfg.max_len) for m in eval_examples]
    fact_data = [tokenize_item(tokenizer, m, cfg.max_len) for m in facts] if threshold else []
    world, rank = acc.num_processes, acc.process_index
    n_micro = len(batches(data, cfg.batch_size, cfg.seed, 0))
    # Every process must take the same number of steps (DDP); a single process keeps the last partial step.
    steps_per_epoch = max(1, n_micro // (world * cfg.grad_accum) if world > 1 else math.ceil(n_micro / cfg.grad_accum))
    # memory tuning: the budget is --memory-epochs (it stops earlier once every fact is below the threshold)
    epochs = cfg.memory_epochs if cfg.method == "memory" else cfg.epochs
    total = cfg.max_steps or max(1, round(epochs * steps_per_epoch))
    warmup_steps = max(1, round(cfg.warmup * total))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr,
                            weight_decay=cfg.weight_decay)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    state = {"step": 0, "tokens": 0, "train_seconds": 0.0, "cpu_seconds": 0.0, "losses": [], "eval_losses": [], "best_eval": None,
             "best_step": None, "bad_evals": 0, "stopped_early": False, "resumed_from": None,
             "config": asdict(cfg), "fact_checks": [], "reached_threshold": False, "hft_plan": {}}
    best = None
    if cfg.resume:
        last = last_checkpoint(ckpt_root)
        if last is None:
            raise InputError("--resume: no checkpoint to resume from", str(ckpt_root))
        saved_state, best = load_checkpoint(last, model, opt, device)
        defaults = {f.name: f.default for f in fields(FinetuneConfig)}  # a field newer than the checkpoint: its default
        changed = [k for k, v in asdict(cfg).items()
                   if k not in RESUMABLE and saved_state["config"].get(k, defaults[k]) != v]
        if changed:
            raise InputError(f"--resume: settings differ from the checkpoint's: {', '.join(changed)}", str(last))
        state.update({k: v for k, v in saved_state.items() if k in state})
        state["resumed_from"] = str(last)
        state["config"] = asdict(cfg)
    model, opt = acc.prepare(model, opt)
    # hft: the round's half frozen by requires_grad (single process) and by dropping its gradients before each
    # step (also under DDP, where requires_grad must not change after wrapping); AdamW skips a None gradient.
    hft = HalfSchedule(acc.unwrap_model(model), cfg.seed, toggle=world == 1) if cfg.method == "hft" else None
    if hft is not None and not hft.groups:
        raise InputError("method hft: the model has no transformer blocks named '.layers.<i>.' to halve")
    names = hft.trained_names() if hft is not None else None  # what checkpoints and the best-epoch copy hold
    # One forward per micro-batch under DDP, and gradient checkpointing drops caches: both turn prefix sharing off.
    share_prefix = cfg.share_prefix and world == 1 and not cfg.grad_checkpointing
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    bar = None
    if progress and acc.is_main_process:
        from tqdm import tqdm

        bar = tqdm(total=total, initial=state["step"], desc=f"finetune {cfg.method}", unit="step")
    params = [p for p in model.parameters() if p.requires_grad]
    t0, seconds0 = time.perf_counter(), state["train_seconds"]
    cpu0, cpu_seconds0 = time.process_time(), state["cpu_seconds"]
    step = state["step"]
    while step < total and not state["stopped_early"] and not state["reached_threshold"]:
        epoch, in_epoch = divmod(step, steps_per_epoch)
        micro = batches(data, cfg.batch_size, cfg.seed, epoch, cfg.group_by_length)
        for s in range(in_epoch, steps_per_epoch):
            if step >= total:
                break
            for group in opt.param_groups:
                group["lr"] = lr_at(step, total, warmup_steps, cfg.lr)
            if hft is not None:  # before the forward: requires_grad decides which gradients autograd computes
                r = round_of(step, steps_per_epoch, cfg.hft_rounds)
                state["hft_plan"].setdefault(str(r), plan_text(hft.apply(r)))
            mine = [micro[i] for i in range(s * world * cfg.grad_accum, (s + 1) * world * cfg.grad_accum)
                    if i < len(micro) and i % world == rank]
            batch_inputs = [make_inputs(b, pad_id, device, share_prefix) for b in mine]
            n_label = max(1, sum(int((x["labels"][:, 1:] != -100).sum()) for x in batch_inputs))
            step_loss = 0.0
            for j, inputs in enumerate(batch_inputs):
                sync = j == len(batch_inputs) - 1
                with (nullcontext() if sync else acc.no_sync(model)):
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                        loss, _ = loss_sum(model, inputs)
                        loss = loss / n_label  # mean over the step's labelled tokens
                    acc.backward(loss)
                step_loss += loss.item()
                state["tokens"] += int(inputs["attention_mask"].sum()) * world
            if hft is not None:
                hft.drop_frozen_grads()
            acc.clip_grad_norm_(params, cfg.max_grad_norm)
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            state["step"] = step
            state["losses"].append(round(step_loss, 5))
            state["train_seconds"] = seconds0 + time.perf_counter() - t0
            state["cpu_seconds"] = cpu_seconds0 + time.process_time() - cpu0  # all threads; > wall when parallel
            if bar is not None:
                bar.set_postfix(loss=f"{step_loss:.3f}", tok_s=f"{state['tokens'] / state['train_seconds']:.0f}")
                bar.update(1)
            if (s == steps_per_epoch - 1 or step >= total) and held:
                best = end_of_epoch_eval(model, acc, held, cfg, pad_id, device, use_bf16, share_prefix, state, best,
                                         step / steps_per_epoch, names)
            if threshold and (step >= total or (step % cfg.check_every == 0 if cfg.check_every
                                                else s == steps_per_epoch - 1)):
                check_facts(model, fact_data, threshold, cfg, pad_id, device, use_bf16, share_prefix, state)
            if cfg.save_every and step % cfg.save_every == 0 and step < total:
                if acc.is_main_process:
                    save_checkpoint(ckpt_root, step, acc.unwrap_model(model), opt, state, best, names)
                acc.wait_for_everyone()
            if state["stopped_early"] or state["reached_threshold"]:
                break
    if bar is not None:
        bar.close()
    model = acc.unwrap_model(model)
    if best is not None and cfg.patience > 0 and not state["reached_threshold"]:  # early stopping: the best epoch
        params_by_name = dict(model.named_parameters())
        with torch.no_grad():
            for n, v in best.items():
                params_by_name[n].copy_(v)
    model.eval()

    seconds = state["train_seconds"]
    evals = state["eval_losses"]
    record = {
        "config": asdict(cfg), "method": cfg.method, "data": recipes, "steps": step, "examples": len(data),
        "eval_examples": len(held), "epochs": round(step / steps_per_epoch, 3), "steps_per_epoch": steps_per_epoch,
        "processes": world, "train_seconds": round(seconds, 3), "wall_seconds": None,
        "cpu_seconds": round(state["cpu_seconds"], 3),
        "trained_tokens": state["tokens"], "tokens_per_second": round(state["tokens"] / max(seconds, 1e-9), 1),
        "trainable_params": trainable, "total_params": total_params,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu x{torch.get_num_threads()}",
        "dtype": "bf16" if use_bf16 else "fp32", "peak_memory_bytes": peak_memory(device),
        "peak_memory_kind": "cuda max_memory_allocated" if device.type == "cuda" else "process max RSS",
        "final_loss": state["losses"][-1] if state["losses"] else None,
        "final_train_loss": round(sum(state["losses"][-10:]) / max(1, len(state["losses"][-10:])), 5) if state["losses"] else None,
        "final_eval_loss": evals[-1]["eval_loss"] if evals else None,
        "best_eval_loss": state["best_eval"], "best_step": state["best_step"], "stopped_early": state["stopped_early"],
        "resumed_from": state["resumed_from"], "losses": state["losses"], "eval_losses": evals,
    }
    if hft is not None:  # which groups each round froze, per block ("0: k_proj,o_proj,...")
        record.update({"hft_rounds": cfg.hft_rounds, "hft_plan": state["hft_plan"]})
    if threshold:
        last = state["fact_checks"][-1] if state["fact_checks"] else fact_check([], threshold, step)
        record.update({"until_loss": threshold, "facts_total": last["facts_total"],
                       "facts_below_threshold": last["facts_below_threshold"],
                       "reached_threshold": state["reached_threshold"], "fact_checks": state["fact_checks"]})
    if acc.is_main_process:
        save_output(cfg, out, ckpt_root, model, tokenizer, record, base, corpus, wall0)
    acc.wait_for_everyone()
    record["adapter"] = str(out)
    return record


def check_outputs(cfg: FinetuneConfig, out: Path, ckpt_root: Path) -> None:
    """--out (and, with --save-every or --resume, <out>-checkpoints) may be written: new, empty or ragft's own
    output of that kind, and writable (corpora/outputs.py: prepare_out); InputError otherwise."""
    from corpora.outputs import prepare_out

    prepare_out(out, "adapter")
    if cfg.save_every or cfg.resume:
        prepare_out(ckpt_root, "checkpoints")


def save_output(cfg: FinetuneConfig, out: Path, ckpt_root: Path, model, tokenizer, record: dict, base: str | None,
                corpus, wall0: float) -> None:
    """The adapter (or full model), its model card and cost.json into a temp folder, swapped in at `out`; a
    failed save (a full disk) leaves no temp folder. Then the checkpoints, no longer needed, are removed."""
    from corpora.files import temp_dir_beside
    from corpora.outputs import io_errors, output_kind, prepare_out, replace_dir, write_marker

    out = prepare_out(out, "adapter")  # again: the folder may have been filled while training
    out.parent.mkdir(parents=True, exist_ok=True)
    with io_errors(out), temp_dir_beside(out) as tmp:  # a full disk: one OSError naming `out`
        save_trained(model, tokenizer, cfg.method, tmp, base=base, card=card_facts(cfg, record, corpus))
        record["wall_seconds"] = round(time.perf_counter() - wall0, 3)
        (tmp / "cost.json").write_text(json.dumps(record, indent=2))
        write_marker(tmp, "adapter")
        replace_dir(tmp, out)
    if ckpt_root.is_dir() and output_kind(ckpt_root) == "checkpoints":  # only a folder of ragft's checkpoints
        shutil.rmtree(ckpt_root, ignore_errors=True)


def card_facts(cfg: FinetuneConfig, record: dict, corpus) -> dict:
    """What the model card (finetune/lora.py: model_card) says: the training record plus the corpus's
    documents hash (rag.index.corpus_hash, the index manifest's corpus_hash)."""
    from rag.index import corpus_hash

    if corpus is None:
        try:
            corpus = load_corpus(cfg.corpus)
        except InputError:
            corpus = None
    keys = ("data", "steps", "epochs", "examples", "trainable_params", "total_params", "final_loss",
            "final_eval_loss", "device", "train_seconds", "hft_rounds", "until_loss", "facts_total",
            "facts_below_threshold", "reached_threshold")
    return {**{k: record.get(k) for k in keys}, "corpus": cfg.corpus, "rank": cfg.rank, "alpha": cfg.alpha,
            "dropout": cfg.dropout, "targets": cfg.targets,
            "corpus_hash": corpus_hash(corpus.docs) if corpus is not None else None}


def end_of_epoch_eval(model, acc, held, cfg, pad_id, device, use_bf16, share_prefix, state, best, epoch: float,
                      names: set[str] | None = None):
    """Eval loss on the held-out slice (every process computes all of it: it is small); early-stopping bookkeeping."""
    loss = eval_loss(model, held, cfg.batch_size, pad_id, device, use_bf16, share_prefix)
    state["eval_losses"].append({"epoch": round(epoch, 3), "step": state["step"], "eval_loss": round(loss, 5)})
    if state["best_eval"] is None or loss < state["best_eval"]:
        state["best_eval"], state["best_step"], state["bad_evals"] = round(loss, 5), state["step"], 0
        if cfg.patience > 0:
            best = {k: v.clone() for k, v in trainable_state(acc.unwrap_model(model), names).items()}
    else:
        state["bad_evals"] += 1
        if cfg.patience > 0 and state["bad_evals"] >= cfg.patience:
            state["stopped_early"] = True
    return best


def check_facts(model, fact_data, threshold, cfg, pad_id, device, use_bf16, share_prefix, state) -> None:
    """Every train fact's answer loss (one batched pass, dropout off): a fact_checks entry; reached_threshold
    once all are below (every process computes all of it, so all stop at the same step)."""
    losses = fact_losses(model, fact_data, cfg.batch_size, pad_id, device, use_bf16, share_prefix)
    check = fact_check(losses, threshold, state["step"])
    state["fact_checks"].append(check)
    state["reached_threshold"] = check["facts_below_threshold"] == check["facts_total"]


def peak_memory(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB

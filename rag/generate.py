"""Step 5, generation: batched greedy decoding through the model's chat template.

Each result records tokens in (prompt) and out (new, up to end of turn) and the wall seconds of the
batched call it was part of: the latency a user in that batch waited, split into prefill and decode.

How prefill and decode are timed: a logits processor (PrefillClock) notes the clock when generate() first
hands it logits, which is right after the forward pass over the whole (left-padded) prompt batch.
prefill_seconds = call start -> first logits (input preparation + that one forward pass);
decode_seconds = first logits -> call end (one forward pass per further token, plus greedy selection and
stopping checks). On CUDA the clock synchronises first, so queued kernels are counted where they ran.

Two decoders (Generator.decode): the hand loop of rag/decode.py (default "prefix": static KV cache, the shared
prompt prefix computed once per call; "static": the same loop without sharing) and "hf", Hugging Face
generate() as before (also the fallback for models the loop cannot run: rag/decode.py loop_unsupported). Greedy
answers are the same with each (tests/rag/test_decode.py). The hand loop keeps PrefillClock's moment: its prefill
ends when the prefill forward's logits exist (the shared prefix's forward, once per call, counts in the first
batch's prefill).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from corpora.errors import InputError
from rag.models import DEFAULT_CACHE, DEFAULT_GENERATOR, load_causal_lm


@dataclass
class Generator:
    model: object  # transformers causal LM (maybe a peft model)
    tokenizer: object
    name: str
    adapter: str | None = None
    engine: object | None = None  # rag/engine.py: None = this process's transformers model; else vllm or openai
    decode: str = "prefix"  # transformers decoder: prefix | static | hf (rag/engine.py DECODES: EngineOptions.decode)

    @property
    def device(self) -> torch.device:
        if self.model is None:  # an engine run: vllm's device, or "cpu" for a server (nothing runs here)
            return torch.device("cuda" if getattr(self.engine, "device", "cpu") == "cuda" else "cpu")
        return next(self.model.parameters()).device

    @property
    def window(self) -> int | None:
        """Longest prompt + answer in tokens (the model's max_position_embeddings; the engine's when it has one)."""
        if self.model is None:
            return getattr(self.engine, "window", None)
        return getattr(self.model.config, "max_position_embeddings", None)


def load_generator(name: str = DEFAULT_GENERATOR, adapter: str | None = None, device: str = "auto",
                   cache_dir: Path = DEFAULT_CACHE, decode: str = "prefix") -> Generator:
    """decode: the transformers decoder, prefix | static | hf (rag/engine.py DECODES, EngineOptions.decode)."""
    model, tok = load_causal_lm(name, device, cache_dir)
    if adapter:
        model = attach_adapter(model, adapter)
    return Generator(model, tok, name, adapter, decode=decode)


def attach_adapter(model, adapter: str):
    """Load a peft adapter onto the base model (safetensors only)."""
    from peft import PeftModel

    p = Path(adapter)
    if not (p / "adapter_config.json").is_file():
        raise InputError("not a peft adapter directory (no adapter_config.json)", str(p))
    if not (p / "adapter_model.safetensors").is_file():
        raise InputError("adapter weights must be adapter_model.safetensors", str(p))
    try:
        return PeftModel.from_pretrained(model, str(p)).eval()
    except (RuntimeError, ValueError, KeyError) as e:
        raise InputError(f"adapter does not fit this base model: {str(e).splitlines()[0][:200]}", str(p)) from None


def adapter_base(adapter: str | Path) -> str | None:
    """The base model an adapter names (adapter_config.json: base_model_name_or_path), resolved the way a
    --generator is (rag.models.resolve_generator): ragft writes the generator's name as given ('smollm2-135m',
    a folder); older adapters hold an absolute path, which works while it exists. None when it names nothing
    loadable here."""
    import json

    from rag.models import resolve_generator

    try:
        name = json.loads((Path(adapter) / "adapter_config.json").read_text()).get("base_model_name_or_path")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(name, str) or not name:
        return None
    if name == DEFAULT_GENERATOR:
        return name  # resolved (converted once, cached) when it is loaded
    try:
        return resolve_generator(name) if Path(name).expanduser().exists() else None
    except InputError:
        return None


def prompt_ids(tokenizer, messages: list[dict]) -> list[int]:
    enc = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    return list(enc["input_ids"] if hasattr(enc, "keys") else enc)


class PrefillClock(LogitsProcessor):
    """Leaves the logits alone; remembers perf_counter() at the first call (the end of prefill)."""

    def __init__(self):
        self.first: float | None = None

    def __call__(self, input_ids, scores):
        if self.first is None:
            if scores.is_cuda:
                torch.cuda.synchronize(scores.device)
            self.first = time.perf_counter()
        return scores


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def generate(gen: Generator, conversations: list[list[dict]], max_new_tokens: int = 32,
             batch_size: int = 8, progress: bool = False, min_new_tokens: int = 0) -> list[dict]:
    """Greedy answers for each conversation -> [{"answer", "tokens_in", "tokens_out", "gen_seconds",
    "prefill_seconds", "decode_seconds", "batch"}] (seconds: of the batched call the conversation was in).

    Conversations are sorted by prompt length before batching (less padding), results returned in input order.
    min_new_tokens > 0 suppresses end of turn until that many tokens (benchmarks: equal work per row).
    """
    if gen.engine is not None:  # vllm or openai (rag/engine.py), same contract
        return gen.engine.generate(conversations, max_new_tokens, batch_size, gen.adapter, min_new_tokens, progress)
    tok, model = gen.tokenizer, gen.model
    ids = [prompt_ids(tok, c) for c in conversations]
    window = gen.window
    for i, x in enumerate(ids):
        if window and len(x) + max_new_tokens > window:
            raise InputError(f"prompt {i} has {len(x)} tokens; with {max_new_tokens} new tokens it exceeds "
                             f"the model's {window}-token window")
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    results: list[dict | None] = [None] * len(ids)
    batches = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
    if progress:
        from tqdm import tqdm

        batches = tqdm(batches, desc="generate", unit="batch", leave=False)
    eos = [t for t in {tok.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>")} if isinstance(t, int) and t >= 0]
    from rag.decode import greedy, loop_unsupported, prefix_cache, shared_prefix_length

    hand = gen.decode != "hf" and not loop_unsupported(model)
    prefix_kv, pending = None, 0.0  # pending: seconds of the shared prefix's forward, counted in the next batch
    if hand and gen.decode == "prefix":
        p = shared_prefix_length(ids)
        if p:
            sync(gen.device)
            t0 = time.perf_counter()
            prefix_kv = prefix_cache(model, ids[0][:p], gen.device)
            sync(gen.device)
            pending = time.perf_counter() - t0
    pad = tok.pad_token_id
    for batch in batches:
        width = max(len(ids[i]) for i in batch)
        clock = PrefillClock()
        sync(gen.device)
        t0 = time.perf_counter() - pending
        pending = 0.0
        if hand:
            new_ids = greedy(model, [ids[i] for i in batch], pad, eos, max_new_tokens, min_new_tokens, prefix_kv,
                             on_first_logits=lambda logits: clock(None, logits)).tolist()
        else:
            input_ids = torch.tensor([[pad] * (width - len(ids[i])) + ids[i] for i in batch], device=gen.device)
            mask = torch.tensor([[0] * (width - len(ids[i])) + [1] * len(ids[i]) for i in batch], device=gen.device)
            out = model.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                                 min_new_tokens=min_new_tokens or None, do_sample=False, eos_token_id=eos,
                                 pad_token_id=pad, logits_processor=LogitsProcessorList([clock]))
            new_ids = out[:, width:].tolist()
        sync(gen.device)
        t1 = time.perf_counter()
        seconds = t1 - t0
        prefill = (clock.first or t1) - t0
        for row, i in enumerate(batch):
            new = new_ids[row]
            n_out = next((j for j, t in enumerate(new) if t in eos), len(new))
            results[i] = {
                "answer": tok.decode(new[:n_out], skip_special_tokens=True).strip(),
                "tokens_in": len(ids[i]), "tokens_out": n_out,
                "gen_seconds": seconds, "prefill_seconds": prefill, "decode_seconds": seconds - prefill,
                "batch": len(batch),
            }
    return results

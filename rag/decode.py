"""Greedy decoding by hand for the transformers engine (rag/generate.py calls it; HF generate is the fallback).

What HF generate() does per new token that this loop does not: DynamicCache grows every layer's keys and values
with torch.cat (at batch 32 x 400 tokens ~0.6 GB copied per step for SmolLM2-135M, as much as its weights), the
2D attention mask and the ids are re-concatenated, and the logits processors and stopping criteria run as
separate passes. Without a shared prefix the prefill is HF's (same shapes); with one, closed-book prompts
(~70 tokens, 55 of them the shared system turn and instruction) prefill ~4x fewer positions.

Here, per batch:
  * one pre-allocated cache (PreallocatedLayer: StaticLayer's [B, kv_heads, prompt + max_new, head_dim] tensors,
    written in place) and one pre-built 2D attention mask [B, prompt + max_new];
  * prefill once over the left-padded prompts (or, with a shared prefix, only over the per-row suffixes), then one
    forward per new token with logits_to_keep=1 (only the last position goes through lm_head);
  * argmax per row, end of turn suppressed while fewer than min_new_tokens were made (HF's
    MinNewTokensLengthLogitsProcessor), a row is done at its first end-of-turn token and gets pad tokens after it
    (as HF does), the loop stops when every row is done.
Attention is transformers' own (the model's forward and its mask builder); the cache only shows attention the
filled part keys[:, :, :t], as HF's DynamicLayer does, so every attention call has the shapes of HF generate's
and the fp32 results are the same (tests/rag/test_decode.py checks token for token).

Shared prefix (decode="prefix"): the prompts of a call share the chat template's system turn and the instruction.
Their keys/values are computed once per generate() call (one forward over P tokens at batch 1) and copied into
positions 0..P-1 of every row's cache; row layout [prefix P][pads][suffix][new tokens], the pads masked out,
position ids counted over the mask (so a suffix token has the position it has without sharing). Once per call,
not once per process: between calls an adapter may be attached, disabled (peft disable_adapter) or trained, and
one P-token forward is < 1% of a call's work (compare answers 4 x 32 questions per call).
"""

from __future__ import annotations

import inspect

import torch
from transformers.cache_utils import Cache, DynamicCache, StaticLayer

MIN_PREFIX = 8  # tokens: a shorter common prefix is not worth a separate forward

# generation_config settings that change greedy choices, each with its inactive value (None is inactive for all;
# an empty list or 0 too where the inactive value is None or 0); the hand loop implements none of them, so a model
# whose generation_config sets one goes to HF generate.
GREEDY_ALTERING = {"repetition_penalty": 1.0, "no_repeat_ngram_size": 0, "encoder_no_repeat_ngram_size": 0,
                   "bad_words_ids": None, "suppress_tokens": None, "begin_suppress_tokens": None,
                   "sequence_bias": None, "forced_bos_token_id": None, "forced_eos_token_id": None,
                   "exponential_decay_length_penalty": None, "min_length": 0, "guidance_scale": 1.0,
                   "watermarking_config": None}


def loop_unsupported(model) -> str:
    """Why the hand loop cannot run this model ('' when it can); the caller falls back to HF generate.

    Falls back: encoder-decoder models; peft prompt learning (prefix/prompt tuning, p-tuning: virtual tokens
    the loop does not add) and aLoRA (offsets computed from input_ids); models with sliding-window, linear-attention
    or other non-full-attention layers, or stateful ones (Mamba): the cache here is one full-length layer per
    attention layer; attention implementations other than sdpa/eager (flash-attention's padding-free path takes
    other inputs); a forward without position_ids, past_key_values or logits_to_keep; a generation_config with a
    setting that alters greedy choices (GREEDY_ALTERING)."""
    peft_config = getattr(model, "active_peft_config", None)
    if peft_config is not None:
        if getattr(peft_config, "is_prompt_learning", False):
            return "peft prompt learning adds virtual tokens"
        if getattr(peft_config, "alora_invocation_tokens", None):
            return "aLoRA computes offsets from input_ids"
    core = model.get_base_model() if hasattr(model, "get_base_model") else model
    cfg = getattr(core, "config", None)
    if cfg is None or getattr(cfg, "is_encoder_decoder", False):
        return "encoder-decoder model"
    if getattr(core, "_is_stateful", False):
        return "stateful model (recurrent state, not a KV cache)"
    text = cfg.get_text_config(decoder=True)
    layer_types = getattr(text, "layer_types", None)
    if layer_types and any(t != "full_attention" for t in layer_types):
        return f"layer types {sorted(set(layer_types))}"
    if getattr(text, "sliding_window", None) and getattr(text, "use_sliding_window", True):
        return "sliding-window attention"
    if getattr(cfg, "_attn_implementation", "eager") not in ("sdpa", "eager"):
        return f"attention implementation {cfg._attn_implementation}"
    params = inspect.signature(core.forward).parameters
    missing = [p for p in ("position_ids", "past_key_values", "logits_to_keep") if p not in params]
    if missing:
        return f"forward() lacks {', '.join(missing)}"
    gc = getattr(core, "generation_config", None)
    for name, inactive in GREEDY_ALTERING.items():
        value = getattr(gc, name, None) if gc is not None else None
        if value is None or value == inactive or (inactive in (None, 0) and not value):
            continue
        return f"generation_config.{name}={value!r}"
    return ""


def common_prefix(rows: list[list[int]]) -> int:
    """Pure: length of the longest token prefix every row shares, leaving each row at least one token of its own
    (the prefill needs a last position per row to take logits from)."""
    if not rows:
        return 0
    n = min(len(r) for r in rows) - 1
    first = rows[0]
    for j in range(max(n, 0)):
        t = first[j]
        if any(r[j] != t for r in rows):
            return j
    return max(n, 0)


def shared_prefix_length(rows: list[list[int]]) -> int:
    """Pure: the prefix generate() computes once for these prompts (decode="prefix"): their common prefix when
    there are two or more prompts and it has at least MIN_PREFIX tokens, else 0 (no sharing)."""
    p = common_prefix(rows) if len(rows) > 1 else 0
    return p if p >= MIN_PREFIX else 0


def layout(rows: list[list[int]], prefix: int, pad: int, max_new_tokens: int):
    """Pure (tensors on CPU): the batch's suffix ids, left-padded, and its full-length mask and positions.

    rows: each prompt's token ids, all starting with the same `prefix` tokens (0: no sharing).
    -> (ids [B, S] long: row i = pads + rows[i][prefix:]; mask [B, prefix + S + max_new] bool: prefix ones,
       pads zero, suffix ones, new-token ones (causality hides the future); positions [B, S] long: the suffix's
       position ids, counted over the mask as HF generate does (cumsum - 1, pads 0); last [B] long: the
       position of each row's last prompt token)."""
    suffix = [r[prefix:] for r in rows]
    s = max(len(x) for x in suffix)
    ids = torch.tensor([[pad] * (s - len(x)) + x for x in suffix], dtype=torch.long)
    mask = torch.ones(len(rows), prefix + s + max_new_tokens, dtype=torch.bool)
    for i, x in enumerate(suffix):
        mask[i, prefix:prefix + s - len(x)] = False
    pos = mask[:, :prefix + s].long().cumsum(-1) - 1
    pos = pos.masked_fill(~mask[:, :prefix + s], 0)[:, prefix:]
    return ids, mask, pos, pos[:, -1].clone()


class PreallocatedLayer(StaticLayer):
    """One attention layer's keys and values, [B, kv_heads, max_cache_len, head_dim], allocated once per batch and
    written in place. Unlike StaticLayer, attention gets the filled part only (keys[:, :, :length]) and the mask
    is sized to it, as DynamicLayer does: the attention shapes (and fp32 sums) of HF generate, without its
    torch.cat of the whole cache per step."""

    def __init__(self, max_cache_len: int):
        super().__init__(max_cache_len=max_cache_len)
        self.length = 0  # tokens written (python int: no tensor op per step)

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        b, h = key_states.shape[:2]
        # empty, not zeros: attention never sees a position before it is written
        self.keys = key_states.new_empty((b, h, self.max_cache_len, key_states.shape[-1]))
        self.values = value_states.new_empty((b, h, self.max_cache_len, value_states.shape[-1]))
        self.dtype, self.device, self.batch_size, self.num_heads = key_states.dtype, key_states.device, b, h
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        t, n = self.length, key_states.shape[-2]
        self.keys[:, :, t:t + n].copy_(key_states)
        self.values[:, :, t:t + n].copy_(value_states)
        self.length = t + n
        return self.keys[:, :, :t + n], self.values[:, :, :t + n]

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.length + query_length, 0

    def get_seq_length(self) -> int:
        return self.length


def prefix_cache(model, prefix_ids: list[int], device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Keys and values of the shared prefix, one (keys, values) pair [1, kv_heads, P, head_dim] per layer."""
    cache = DynamicCache(config=model.config)
    model(input_ids=torch.tensor([prefix_ids], device=device), past_key_values=cache, use_cache=True,
          logits_to_keep=1)
    return [(layer.keys, layer.values) for layer in cache.layers]


def batch_cache(n_layers: int, rows: int, length: int, prefix_kv=None) -> Cache:
    """A cache of `n_layers` PreallocatedLayers for `rows` rows and `length` positions, positions 0..P-1 filled
    with prefix_kv (broadcast over the rows) when given."""
    layers = [PreallocatedLayer(length) for _ in range(n_layers)]
    if prefix_kv is not None:
        for layer, (k, v) in zip(layers, prefix_kv):
            layer.lazy_initialization(k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1))
            layer.keys[:, :, :k.shape[2]].copy_(k.expand(rows, -1, -1, -1))
            layer.values[:, :, :v.shape[2]].copy_(v.expand(rows, -1, -1, -1))
            layer.length = k.shape[2]
    return Cache(layers=layers)


def n_attention_layers(model) -> int:
    core = model.get_base_model() if hasattr(model, "get_base_model") else model
    return core.config.get_text_config(decoder=True).num_hidden_layers


@torch.no_grad()
def greedy(model, rows: list[list[int]], pad: int, eos: list[int], max_new_tokens: int, min_new_tokens: int = 0,
           prefix_kv=None, on_first_logits=None) -> torch.Tensor:
    """Greedy new tokens for one batch -> [B, n] long on CPU (n <= max_new_tokens; after a row's first eos token:
    pad tokens, as HF generate's output).

    rows: prompt token ids; with prefix_kv (prefix_cache of their first P tokens) every row starts with those P
    tokens and only the rest is prefilled. on_first_logits(): called once, right after the prefill's logits exist
    (PrefillClock's moment in rag/generate.py)."""
    device = next(model.parameters()).device
    p = prefix_kv[0][0].shape[2] if prefix_kv else 0
    ids, mask, pos, last = layout(rows, p, pad, max_new_tokens)
    ids, mask, pos, last = ids.to(device), mask.to(device), pos.to(device), last.to(device)
    b, s = ids.shape
    cache = batch_cache(n_attention_layers(model), b, p + s + max_new_tokens, prefix_kv)
    eos_t = torch.tensor(eos, device=device)
    out = torch.full((b, max_new_tokens), pad, dtype=torch.long, device=device)
    done = torch.zeros(b, dtype=torch.bool, device=device)
    logits = model(input_ids=ids, attention_mask=mask[:, :p + s], position_ids=pos, past_key_values=cache,
                   use_cache=True, logits_to_keep=1).logits
    if on_first_logits is not None:
        on_first_logits(logits)
    t = p + s
    for step in range(max_new_tokens):
        scores = logits[:, -1].to(dtype=torch.float32)  # [B, vocab], as HF generate takes them
        if step < min_new_tokens:
            scores[:, eos_t] = -float("inf")
        nxt = scores.argmax(-1)
        nxt = torch.where(done, pad, nxt)  # finished rows get pad, as HF
        out[:, step] = nxt
        done |= torch.isin(nxt, eos_t)
        if step + 1 == max_new_tokens or bool(done.all()):
            return out[:, :step + 1].cpu()
        last += 1
        logits = model(input_ids=nxt[:, None], attention_mask=mask[:, :t + 1], position_ids=last[:, None],
                       past_key_values=cache, use_cache=True, logits_to_keep=1).logits
        t += 1
    return out.cpu()

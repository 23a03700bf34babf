"""The roofline of a decoder-only transformer's generation steps (pure arithmetic; `ragft bench generation` and
`bench all` measure the machine's two limits and the steps, benchmarks/generation.py).

A step is one forward pass of the batch: the prefill (every prompt token of every row) or one decode step (one new
token per row). Its floor on this machine is the larger of
  compute: FLOPs / the machine's fp32 matmul rate (GFLOP/s, measured on a large square matmul), and
  memory:  bytes read / the machine's read bandwidth (measured as one matrix-vector product over a matrix the
           size of the model's weights: weight bytes / those seconds),
and the share of the roofline reached is floor / measured seconds (1.0: at the limit).

FLOPs per step (multiply-add = 2 FLOPs; norms, rotary, softmax and activations left out: < 1% here):
  2 x matmul parameters (every linear layer but lm_head) per token
  + 4 x layers x q_dim x (keys each token attends to)    (q.k and p.v; causal: useful keys only, pads excluded)
  + 2 x hidden x vocab per row whose logits are taken     (lm_head on the last position only: logits_to_keep=1)
Bytes per step: every weight once (the embedding matrix counted once when tied to lm_head; the embedding lookup
reads rows x hidden, left out), plus the keys and values read by attention (per key: 2 x layers x kv_dim x dtype
bytes), plus those written for the step's tokens.
"""

from __future__ import annotations


def model_shape(config, n_params: int, n_embedding: int, dtype_bytes: int = 4) -> dict:
    """The numbers the roofline needs from a transformers config (LlamaConfig and alike) and parameter counts.

    n_params: distinct parameters (a tied lm_head counted once); n_embedding: those of the input embedding.
    -> {layers, hidden, q_dim, kv_dim, vocab, matmul_params, lm_head_params, weight_bytes, dtype_bytes}."""
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    tied = bool(getattr(config, "tie_word_embeddings", False))
    lm_head = config.hidden_size * config.vocab_size
    return {"layers": config.num_hidden_layers, "hidden": config.hidden_size, "q_dim": heads * head_dim,
            "kv_dim": kv_heads * head_dim, "vocab": config.vocab_size,
            # linear layers of the blocks: all parameters but the embedding, lm_head and the (tiny) norms' vectors
            "matmul_params": n_params - n_embedding - (0 if tied else lm_head),
            "lm_head_params": lm_head, "weight_bytes": n_params * dtype_bytes, "dtype_bytes": dtype_bytes}


def step_flops(shape: dict, tokens: int, keys: int, logit_rows: int) -> float:
    """FLOPs of one forward: `tokens` new positions in all rows together, `keys` = sum over those positions of the
    keys each attends to, lm_head on `logit_rows` positions."""
    return (2.0 * shape["matmul_params"] * tokens + 4.0 * shape["layers"] * shape["q_dim"] * keys
            + 2.0 * shape["lm_head_params"] * logit_rows)


def step_bytes(shape: dict, keys_read: int, tokens: int) -> float:
    """Bytes of one forward: the weights once, the cached keys and values read (`keys_read` cached positions over
    all rows, each read once per layer), those of the `tokens` new positions written."""
    per_key = 2.0 * shape["layers"] * shape["kv_dim"] * shape["dtype_bytes"]
    return shape["weight_bytes"] + per_key * (keys_read + tokens)


def prefill_work(shape: dict, prompt_lengths: list[int], prefix: int = 0,
                 prefix_forward: bool = True) -> tuple[float, float]:
    """(FLOPs, bytes) of one batch's prefill; prefix > 0: the shared prefix's positions are read from the cache,
    not recomputed, by every row (rag/decode.py), and computed once by their own forward, counted here when
    prefix_forward (the first batch of a generate call)."""
    rows = len(prompt_lengths)
    new = [n - prefix for n in prompt_lengths]
    # a row's k-th new position (1-based) attends to prefix + k keys (causal, itself included)
    keys = sum(m * prefix + m * (m + 1) // 2 for m in new)
    flops = step_flops(shape, sum(new), keys, rows)
    nbytes = step_bytes(shape, prefix * rows, sum(new))
    if prefix and prefix_forward:  # its own forward, once for the call: P positions at batch 1
        flops += step_flops(shape, prefix, prefix * (prefix + 1) // 2, 1)
        nbytes += step_bytes(shape, 0, prefix)
    return flops, nbytes


def decode_work(shape: dict, contexts: list[int]) -> tuple[float, float]:
    """(FLOPs, bytes) of one decode step: one new token per row, row i holding contexts[i] cached positions."""
    rows, cached = len(contexts), sum(contexts)
    return step_flops(shape, rows, cached + rows, rows), step_bytes(shape, cached, rows)


def floor_seconds(flops: float, nbytes: float, gflops: float, bytes_per_s: float) -> tuple[float, str]:
    """The step's roofline time and its bound: (max(compute s, memory s), 'compute' | 'memory')."""
    compute, memory = flops / (gflops * 1e9), nbytes / bytes_per_s
    return (compute, "compute") if compute >= memory else (memory, "memory")


def share(floor_s: float, measured_s: float) -> float:
    """Share of the roofline reached: floor / measured (1.0 at the limit; NaN when nothing was measured)."""
    return floor_s / measured_s if measured_s > 0 else float("nan")


def roofline_row(shape: dict, phase: str, batch: int, measured_s: float, flops: float, nbytes: float,
                 gflops: float, weight_read_s: float) -> dict:
    """One line of the table: what was measured beside its limits (seconds per step)."""
    bw = shape["weight_bytes"] / weight_read_s
    floor_s, bound = floor_seconds(flops, nbytes, gflops, bw)
    return {"phase": phase, "batch": batch, "seconds": measured_s, "gflop": flops / 1e9, "mbytes": nbytes / 1e6,
            "floor_s": floor_s, "bound": bound, "share": share(floor_s, measured_s),
            "x_weight_read": measured_s / weight_read_s, "achieved_gflops": flops / measured_s / 1e9}

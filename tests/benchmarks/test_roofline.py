"""benchmarks/roofline.py against hand-computed values (a toy shape) and a Llama built from a config."""

import math

import pytest

from benchmarks.roofline import (decode_work, floor_seconds, model_shape, prefill_work, roofline_row, share,
                                 step_bytes, step_flops)

# toy: 2 layers, q_dim 8, kv_dim 4, 100 matmul params, lm_head 10 x 50 = 500, 1000 weight bytes, fp32
TOY = {"layers": 2, "hidden": 10, "q_dim": 8, "kv_dim": 4, "vocab": 50, "matmul_params": 100,
       "lm_head_params": 500, "weight_bytes": 1000, "dtype_bytes": 4}
PER_KEY = 2 * 2 * 4 * 4  # k and v, 2 layers, kv_dim 4, 4 bytes = 64 bytes


def test_step_flops_and_bytes_by_hand():
    # 3 tokens attending to 6 keys in all, logits for 1 row: 2*100*3 + 4*2*8*6 + 2*500*1
    assert step_flops(TOY, 3, 6, 1) == 600 + 384 + 1000
    assert step_bytes(TOY, 5, 2) == 1000 + PER_KEY * 7


def test_prefill_and_decode_work():
    # two rows of 3 and 2 prompt tokens: keys 1+2+3 and 1+2 = 9; logits 2 rows
    f, b = prefill_work(TOY, [3, 2])
    assert f == 2 * 100 * 5 + 4 * 2 * 8 * 9 + 2 * 500 * 2 and b == 1000 + PER_KEY * 5
    # shared prefix of 1: the rows' own positions (2 and 1 of them) attend to 2+3 and 2 keys = 7, plus the
    # prefix's own forward once (1 token, 1 key, 1 logit row); bytes: the prefix's cache read by 2 rows
    f2, b2 = prefill_work(TOY, [3, 2], prefix=1)
    assert f2 == (2 * 100 * 3 + 4 * 2 * 8 * 7 + 2 * 500 * 2) + (2 * 100 + 4 * 2 * 8 + 2 * 500)
    assert b2 == (1000 + PER_KEY * (2 + 3)) + (1000 + PER_KEY * 1)
    assert prefill_work(TOY, [3, 2], 1, prefix_forward=False) == (2 * 100 * 3 + 4 * 2 * 8 * 7 + 2 * 500 * 2,
                                                                 1000 + PER_KEY * (2 + 3))
    # decode: rows holding 4 and 6 cached positions, one new token each (attends to 5 and 7 keys)
    f, b = decode_work(TOY, [4, 6])
    assert f == 2 * 100 * 2 + 4 * 2 * 8 * 12 + 2 * 500 * 2 and b == 1000 + PER_KEY * 12


def test_floor_share_and_row():
    assert floor_seconds(2e9, 1e6, 1.0, 1e9) == (2.0, "compute")
    assert floor_seconds(1e9, 4e9, 1.0, 1e9) == (4.0, "memory")
    assert share(1.0, 4.0) == 0.25 and math.isnan(share(1.0, 0.0))
    # weight read of 1000 bytes in 1e-6 s -> 1e9 bytes/s; a decode step of 2000 bytes, 2000 FLOPs at 1 GFLOP/s
    r = roofline_row(TOY, "decode", 2, 4e-6, 2000.0, 2000.0, 1.0, 1e-6)
    assert r["floor_s"] == pytest.approx(2e-6) and r["share"] == pytest.approx(0.5)
    assert r["x_weight_read"] == pytest.approx(4.0) and r["achieved_gflops"] == pytest.approx(0.5)


def test_model_shape_counts_a_llama():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=300, hidden_size=48, intermediate_size=96, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    model = LlamaForCausalLM(cfg)
    n = sum(p.numel() for p in model.parameters())  # tied: the lm_head weight is the embedding's, counted once
    shape = model_shape(cfg, n, model.model.embed_tokens.weight.numel(), dtype_bytes=4)
    per_layer = 48 * 48 * 2 + 48 * 24 * 2 + 3 * 48 * 96 + 2 * 48  # q, o; k, v (2 kv heads x 12); mlp; 2 norms
    assert shape["matmul_params"] == 3 * per_layer + 48  # + the final norm
    assert (shape["q_dim"], shape["kv_dim"], shape["lm_head_params"]) == (48, 24, 48 * 300)
    assert shape["weight_bytes"] == 4 * n and n == 300 * 48 + shape["matmul_params"]
    assert torch.get_default_dtype() == torch.float32


def test_bench_generation_prints_the_roofline(tiny_model_dir):
    """`ragft bench generation`'s roofline table on the tiny random Llama: a row per phase at batch 1 and at the
    bench's batch size, the machine's limits measured in the run, the shares finite and positive."""
    from benchmarks.generation import GenerationBenchConfig, run_generation_bench

    lines = []
    cfg = GenerationBenchConfig(engines="transformers", generator=str(tiny_model_dir), prompts=3, new_tokens=3,
                                batch_size=3, rounds=1, device="cpu", roofline_prompts=1)
    res = run_generation_bench(cfg, echo=lines.append)
    assert [(r["phase"], r["batch"]) for r in res["roofline"]] == [("prefill", 1), ("decode", 1), ("prefill", 3),
                                                                   ("decode", 3)]
    assert res["machine"]["matmul_gflops"] > 0 and res["machine"]["weight_read_s"] > 0
    assert all(0 < r["share"] < math.inf and r["gflop"] > 0 and r["bound"] in ("compute", "memory")
               for r in res["roofline"])
    text = "\n".join(lines)
    assert "fp32 matmul" in text and "share" in text and "x weight read" in text


def test_arm_roofline_counts_each_row_s_own_tokens(tiny_model_dir):
    """benchmarks.generation.arm_roofline on hand-made records: per batch one prefill plus, for each further token,
    a decode step over the rows still answering; the shared prefix makes the 'computed' floor the smaller one; a
    row's first token costs no step (it comes from the prefill's logits)."""
    import pandas as pd

    from benchmarks.generation import arm_roofline, model_shape_of
    from rag.augment import build_messages
    from rag.generate import load_generator, prompt_ids

    gen = load_generator(str(tiny_model_dir), device="cpu")
    machine = {"matmul_gflops": 1.0, "weight_read_s": 1e-3}
    shape = model_shape_of(gen)
    bw = shape["weight_bytes"] / machine["weight_read_s"]
    prompts = [build_messages(q, None)[0]["content"] for q in ("Who founded the city?", "When?", "Which river?")]
    lens = [len(prompt_ids(gen.tokenizer, [{"role": "user", "content": p}])) for p in prompts]
    records = pd.DataFrame({"system": ["base"] * 3, "prompt": prompts, "tokens_in": lens, "tokens_out": [1, 3, 2],
                            "gen_seconds": [2.0] * 3, "batch": [3] * 3})
    row = arm_roofline(records, gen, machine).iloc[0]
    floor = lambda fb: floor_seconds(*fb, machine["matmul_gflops"], bw)[0]  # noqa: E731
    # steps 1 and 2: rows still answering after their first token: tokens_out 3 and 2 at step 1, 3 at step 2
    decode = floor(decode_work(shape, [lens[1] + 1, lens[2] + 1])) + floor(decode_work(shape, [lens[1] + 2]))
    assert row["questions"] == 3 and row["gen_seconds"] == 2.0 and row["shared_prefix"] >= 8
    assert row["floor_all_tokens_s"] == pytest.approx(floor(prefill_work(shape, lens)) + decode)
    p = int(row["shared_prefix"])
    assert row["floor_computed_s"] == pytest.approx(floor(prefill_work(shape, lens, p, prefix_forward=False)) + decode
                                                    + floor(prefill_work(shape, [p])))
    assert row["floor_computed_s"] < row["floor_all_tokens_s"]
    assert row["share_all_tokens"] == pytest.approx(row["floor_all_tokens_s"] / 2.0)

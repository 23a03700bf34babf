"""The hand greedy loop (rag/decode.py) against Hugging Face generate(), token for token: left padding, batch sizes
1/3/8, min_new_tokens, a stop at end of turn, a LoRA attached (and disabled), the shared prefix on and off, the
fallback for a model the loop does not run. Tiny random Llama (tests/conftest.py tiny_model_dir); the last test
checks identical answers on the real SmolLM2 for the first 64 atlantis test questions, closed-book and rag."""

from __future__ import annotations

import pytest
import torch

from rag.augment import build_messages
from rag.decode import common_prefix, greedy, layout, loop_unsupported, prefix_cache

QUESTIONS = ["Who founded the city?", "What is the tallest tower in the old harbour district of the port?", "When?",
             "Name the guild that makes blue glass from salt and sea water, and its master.",
             "Which river runs past the northern gate?", "How many bridges cross the canal?",
             "Who wrote the charter of the isles?", "What colour is the lighthouse?"]


def conversations(n: int) -> list[list[dict]]:
    """Closed-book and retrieval prompts of different lengths (left padding in every batch of more than one)."""
    docs = lambda i: [{"doc_id": f"d{i}", "title": "Harbour", "text": "The harbour wall is old. " * i}]  # noqa: E731
    return [build_messages(QUESTIONS[i % len(QUESTIONS)], None if i % 2 else docs(i)) for i in range(n)]


def varied_generator(tiny_model_dir):
    """The tiny Llama with its matrices redrawn at std 0.15 (seed 0): at the initial std 0.02 it says one token
    over and over, which any loop would match; these weights give every row and step a different token."""
    from rag.generate import load_generator

    gen = load_generator(str(tiny_model_dir), device="cpu")
    torch.manual_seed(0)
    with torch.no_grad():
        for p in gen.model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.15)
    return gen


@pytest.fixture(scope="module")
def gen(tiny_model_dir):
    return varied_generator(tiny_model_dir)


def hf_tokens(model, rows, pad, eos, max_new, min_new=0):
    """HF generate's new tokens for left-padded rows -> [B, n] (the reference)."""
    width = max(len(r) for r in rows)
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new, min_new_tokens=min_new or None,
                         do_sample=False, eos_token_id=eos, pad_token_id=pad)
    return out[:, width:]


def rows_of(gen, n):
    from rag.generate import prompt_ids

    return [prompt_ids(gen.tokenizer, c) for c in conversations(n)]


def test_common_prefix_and_layout():
    assert common_prefix([[1, 2, 3, 4], [1, 2, 5]]) == 2
    assert common_prefix([[1, 2, 3], [1, 2, 3]]) == 2  # one token of its own per row
    assert common_prefix([[1, 2, 3]]) == 2 and common_prefix([[7], [8]]) == 0 and common_prefix([]) == 0
    ids, mask, pos, last = layout([[9, 9, 1, 2, 3], [9, 9, 4]], 2, 0, 3)
    assert ids.tolist() == [[1, 2, 3], [0, 0, 4]]
    assert mask.tolist() == [[True] * 8, [True, True, False, False] + [True] * 4]
    assert pos.tolist() == [[2, 3, 4], [0, 0, 2]] and last.tolist() == [4, 2]  # as without the shared prefix
    ids, mask, pos, last = layout([[5, 6], [7]], 0, 0, 1)
    assert ids.tolist() == [[5, 6], [0, 7]] and pos.tolist() == [[0, 1], [0, 0]] and last.tolist() == [1, 0]


@pytest.mark.parametrize("batch", [1, 3, 8])
@pytest.mark.parametrize("min_new", [0, 4])
def test_loop_matches_hf_generate_token_for_token(gen, batch, min_new):
    rows, pad = rows_of(gen, batch), gen.tokenizer.pad_token_id
    ref = hf_tokens(gen.model, rows, pad, [gen.tokenizer.eos_token_id], 10, min_new)
    assert len(set(ref.flatten().tolist())) > 5  # not one token over and over
    assert torch.equal(greedy(gen.model, rows, pad, [gen.tokenizer.eos_token_id], 10, min_new), ref)
    p = common_prefix(rows)
    assert p >= 8  # the chat template's system turn
    kv = prefix_cache(gen.model, rows[0][:p], "cpu")
    assert torch.equal(greedy(gen.model, rows, pad, [gen.tokenizer.eos_token_id], 10, min_new, kv), ref)


def test_rows_stop_at_end_of_turn(gen):
    """The random model never says <|im_end|>: take tokens it does produce as end of turn, so rows stop at
    different steps (and min_new_tokens holds them off)."""
    rows, pad = rows_of(gen, 8), gen.tokenizer.pad_token_id
    free = hf_tokens(gen.model, rows, pad, [gen.tokenizer.eos_token_id], 12)
    eos = sorted({int(free[0, 2]), int(free[3, 5])})
    kv = prefix_cache(gen.model, rows[0][:common_prefix(rows)], "cpu")
    for min_new in (0, 4):
        ref = hf_tokens(gen.model, rows, pad, eos, 12, min_new)
        assert (ref == pad).any() or ref.shape[1] < 12  # some row did stop early
        assert torch.equal(greedy(gen.model, rows, pad, eos, 12, min_new), ref)
        assert torch.equal(greedy(gen.model, rows, pad, eos, 12, min_new, kv), ref)


def test_generate_same_answers_with_each_decoder(gen):
    from rag.generate import generate

    convs = conversations(7)
    outs = {}
    for decode in ("hf", "static", "prefix"):
        gen.decode = decode
        outs[decode] = generate(gen, convs, 8, 3, min_new_tokens=2)
    gen.decode = "prefix"
    keys = ("answer", "tokens_in", "tokens_out", "batch")
    for decode in ("static", "prefix"):
        assert [{k: o[k] for k in keys} for o in outs[decode]] == [{k: o[k] for k in keys} for o in outs["hf"]]
    o = outs["prefix"][0]
    assert set(o) == {*keys, "gen_seconds", "prefill_seconds", "decode_seconds"}
    assert 0 < o["prefill_seconds"] < o["gen_seconds"] and o["decode_seconds"] > 0


def test_with_a_lora_attached_and_disabled(gen, tiny_model_dir, tmp_path):
    from rag.engine_transformers import TransformersEngine
    from rag.generate import attach_adapter, generate
    from tests.rag.test_engines import make_adapter

    lora = make_adapter(tiny_model_dir, tmp_path / "live", applied=True)
    tuned = varied_generator(tiny_model_dir)
    tuned.model = attach_adapter(tuned.model, str(lora))
    assert loop_unsupported(tuned.model) == ""
    rows, pad, eos = rows_of(gen, 5), gen.tokenizer.pad_token_id, [gen.tokenizer.eos_token_id]
    kv = prefix_cache(tuned.model, rows[0][:common_prefix(rows)], "cpu")
    ref = hf_tokens(tuned.model, rows, pad, eos, 8)
    assert not torch.equal(ref, hf_tokens(gen.model, rows, pad, eos, 8))  # the adapter changes the answers
    assert torch.equal(greedy(tuned.model, rows, pad, eos, 8), ref)
    assert torch.equal(greedy(tuned.model, rows, pad, eos, 8, 0, kv), ref)
    with tuned.model.disable_adapter():
        off = hf_tokens(tuned.model, rows, pad, eos, 8)
        assert torch.equal(greedy(tuned.model, rows, pad, eos, 8), off)
        assert torch.equal(off, hf_tokens(gen.model, rows, pad, eos, 8))
    # the engine's base arm runs inside disable_adapter(): its shared prefix must be the base model's
    engine = TransformersEngine(tuned)
    engine.gen.adapter = str(lora)
    convs = conversations(5)
    base = generate(gen, convs, 8, 5)
    assert [o["answer"] for o in engine.generate(convs, 8, 5, None)] == [o["answer"] for o in base]
    tuned.decode = "hf"
    want = [o["answer"] for o in engine.generate(convs, 8, 5, str(lora))]
    tuned.decode = "prefix"
    assert [o["answer"] for o in engine.generate(convs, 8, 5, str(lora))] == want


def test_falls_back_to_hf_generate_for_a_model_it_does_not_run(gen):
    from rag.generate import generate

    convs = conversations(4)
    gen.decode = "hf"
    plain = [o["answer"] for o in generate(gen, convs, 8, 4)]
    gen.decode = "prefix"
    gen.model.generation_config.repetition_penalty = 1.5
    try:
        assert loop_unsupported(gen.model) == "generation_config.repetition_penalty=1.5"
        gen.decode = "hf"
        ref = [o["answer"] for o in generate(gen, convs, 8, 4)]
        gen.decode = "prefix"
        assert [o["answer"] for o in generate(gen, convs, 8, 4)] == ref  # the fallback: HF's answers, penalty applied
        assert ref != plain
    finally:
        gen.model.generation_config.repetition_penalty = 1.0


def test_real_model_same_answers_as_hf_generate(smollm2_path):
    """SmolLM2-135M, fp32: the first 64 atlantis test questions, closed-book and with hybrid top-2 retrieval (the
    base and rag arms' prompts), 32 new tokens, batch 32 (compare's defaults): the hand loop with the shared
    prefix answers exactly as HF generate."""
    from corpora import load_corpus
    from rag.generate import generate, load_generator
    from rag.index import IndexConfig, build_index
    from rag.pipeline import answer_questions

    corpus = load_corpus("atlantis")
    questions = [q["question"] for q in corpus.questions("test")[:64]]
    gen = load_generator(str(smollm2_path), device="cpu")
    index = build_index(corpus.docs, IndexConfig(corpus="atlantis", device="cpu"), progress=False)
    closed = [build_messages(q, None) for q in questions]
    for decode in ("hf", "prefix"):
        gen.decode = decode
        if decode == "hf":
            ref_closed = [o["answer"] for o in generate(gen, closed, 32, 32)]
            ref_rag = [r["answer"] for r in answer_questions(gen, index, questions, "hybrid", 2, 32, 32)]
        else:
            assert [o["answer"] for o in generate(gen, closed, 32, 32)] == ref_closed
            assert [r["answer"] for r in answer_questions(gen, index, questions, "hybrid", 2, 32, 32)] == ref_rag

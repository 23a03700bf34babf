"""Half Fine-Tuning (finetune/hft.py): the freezing schedule (pure), that a frozen half really stays put under
AdamW, and `--method hft` end to end on the tiny random Llama (tests/conftest.py)."""

import json

import pytest
import torch

from finetune.hft import (HalfSchedule, block_groups, category, frozen_count, frozen_groups, prepare_hft,
                          round_of)

GROUPS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "input_layernorm",
          "post_attention_layernorm"]
HALF = {"attention": 2, "norm": 1}  # mlp (3 groups) alternates 1 / 2 between neighbouring blocks


def llama_names(layers: int) -> list[str]:
    names = ["model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"]
    for b in range(layers):
        for g in GROUPS:
            where = "self_attn" if g.endswith("proj") and g[0] in "qkvo" else "mlp" if g.endswith("proj") else ""
            names.append(".".join(x for x in ("model.layers", str(b), where, g, "weight") if x))
    return names


def tiny_llama():
    """A 4-block random Llama built from a config: no files, no tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=True)
    return LlamaForCausalLM(cfg)


def test_block_groups_and_categories():
    blocks = block_groups(llama_names(3))
    assert sorted(blocks) == [0, 1, 2] and sorted(blocks[1]) == sorted(GROUPS)
    assert blocks[2]["q_proj"] == ["model.layers.2.self_attn.q_proj.weight"]
    # a peft wrapper's prefix is fine; embeddings, final norm and lm_head are outside every block
    assert block_groups(["base_model.model.model.layers.7.mlp.up_proj.weight"]) == {
        7: {"up_proj": ["base_model.model.model.layers.7.mlp.up_proj.weight"]}}
    assert [category(g) for g in GROUPS] == ["attention"] * 4 + ["mlp"] * 3 + ["norm"] * 2
    assert category("router") == "other"


def test_exactly_half_of_each_category_per_block_and_odd_counts_alternate():
    assert [frozen_count(4, b, r) for b in range(2) for r in range(2)] == [2, 2, 2, 2]
    assert [frozen_count(3, b, 0) for b in range(4)] == [1, 2, 1, 2]
    assert [frozen_count(3, 0, r) for r in range(4)] == [1, 2, 1, 2]  # a block's larger half moves between rounds
    blocks = {b: GROUPS for b in range(4)}
    for r in range(6):
        plan = frozen_groups(blocks, seed=0, r=r)
        mlp = []
        for b, frozen in plan.items():
            cats = [category(g) for g in frozen]
            assert cats.count("attention") == HALF["attention"] and cats.count("norm") == HALF["norm"]
            assert cats.count("mlp") == frozen_count(3, b, r) and len(frozen) in (4, 5)
            mlp.append(cats.count("mlp"))
        assert sum(mlp[0:2]) == 3 and sum(mlp[2:4]) == 3  # two neighbouring blocks freeze exactly half of 6


def test_schedule_is_seeded_and_changes_between_rounds():
    blocks = {b: GROUPS for b in range(4)}
    plans = [frozen_groups(blocks, seed=0, r=r) for r in range(4)]
    assert plans == [frozen_groups(blocks, seed=0, r=r) for r in range(4)]  # deterministic
    assert all(plans[r] != plans[r + 1] for r in range(3))  # a new half every round
    assert frozen_groups(blocks, seed=1, r=0) != plans[0]
    assert [round_of(s, 8, 4) for s in range(10)] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]  # counts on across epochs
    assert [round_of(s, 2, 4) for s in range(3)] == [0, 2, 4]  # fewer steps than rounds: each step a new round


@pytest.mark.parametrize("toggle", [True, False])
def test_frozen_half_stays_bit_identical_under_adamw_with_momentum_and_decay(toggle):
    model = prepare_hft(tiny_llama())
    assert not model.model.embed_tokens.weight.requires_grad and not model.model.norm.weight.requires_grad
    sched = HalfSchedule(model, seed=3, toggle=toggle)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.1)
    ids = torch.randint(0, 64, (2, 12))

    def step():
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        sched.drop_frozen_grads()
        opt.step()
        opt.zero_grad(set_to_none=True)

    # round 1 first: every group it trains gets AdamW moments, which must not move it once round 0 freezes it
    sched.apply(1)
    for _ in range(2):
        step()
    sched.apply(0)
    assert sched.frozen_names & {n for n, p in model.named_parameters() if p in opt.state}  # momentum is there
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for _ in range(3):
        step()
    after = dict(model.named_parameters())
    outside = {"model.embed_tokens.weight", "model.norm.weight"}
    assert all(torch.equal(after[n], before[n]) for n in sched.frozen_names | outside)
    trained = sched.trained_names() - sched.frozen_names
    assert all(not torch.equal(after[n], before[n]) for n in trained)
    if toggle:
        assert all(not after[n].requires_grad for n in sched.frozen_names)
        assert all(after[n].requires_grad for n in trained)
    plan = sched.apply(0)
    assert {n for b, gs in plan.items() for g in gs for n in sched.groups[b][g]} == sched.frozen_names


def test_method_hft_trains_a_standalone_model_with_the_rounds_frozen(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from finetune.data import paraphrase_examples
    from finetune.train import FinetuneConfig, train
    from tests.finetune.test_finetune_methods import corpus_obj

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    examples = paraphrase_examples(corpus_obj(), 4)  # 12 examples, batch 4: 3 steps an epoch
    out = tmp_path / "hft"
    cfg = FinetuneConfig(out=str(out), method="hft", hft_rounds=1, max_steps=2, batch_size=4, lr=1e-2,
                         weight_decay=0.1, seed=5)
    rec = train(cfg, model=model, tokenizer=tok, examples=examples, eval_examples=[], progress=False)
    assert rec["steps"] == 2 and list(rec["hft_plan"]) == ["0"] and rec["hft_rounds"] == 1
    plan = frozen_groups({b: GROUPS for b in range(2)}, seed=5, r=0)
    assert rec["hft_plan"]["0"] == [f"{b}: {','.join(gs)}" for b, gs in plan.items()]
    assert (out / "model.safetensors").is_file() and not (out / "adapter_config.json").exists()
    card = (out / "README.md").read_text()
    assert "library_name: transformers" in card and "half of each block's groups frozen" in card
    saved = dict(AutoModelForCausalLM.from_pretrained(out).named_parameters())
    groups = block_groups(saved)
    frozen = {n for b, gs in plan.items() for g in gs for n in groups[b][g]}
    assert all(torch.equal(saved[n], before[n]) for n in frozen | {"model.embed_tokens.weight", "model.norm.weight"})
    assert all(not torch.equal(saved[n], before[n]) for n in set().union(*[set(ns) for g in groups.values()
                                                                            for ns in g.values()]) - frozen)
    cost = json.loads((out / "cost.json").read_text())
    assert cost["method"] == "hft" and cost["trainable_params"] < cost["total_params"]

    # rounds change within a run: 3 steps an epoch, 3 rounds an epoch -> a new half every step
    rec = train(FinetuneConfig(out=str(tmp_path / "hft3"), method="hft", hft_rounds=3, max_steps=3, batch_size=4,
                               seed=5), model=AutoModelForCausalLM.from_pretrained(tiny_model_dir), tokenizer=tok,
                examples=examples, eval_examples=[], progress=False)
    assert list(rec["hft_plan"]) == ["0", "1", "2"] and len({tuple(v) for v in rec["hft_plan"].values()}) == 3

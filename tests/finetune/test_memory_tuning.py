"""Memory tuning (finetune/memory.py, `--method memory` / `--until-loss`) on the tiny random Llama
(tests/conftest.py): it stops once every fact's answer loss is below the threshold, and a budget-limited run
records how many facts got there."""

import json

import pytest
import torch

from corpora.errors import InputError
from finetune.memory import fact_check
from finetune.train import FinetuneConfig, loss_sum, make_inputs, train
from rag.augment import build_messages

FACTS = [("Who founded Port Ilmaren?", "Quorra Vell"), ("Who leads the Saltglass Guild?", "Oren Tasque"),
         ("Where is the Lantern Festival held?", "Hollowmere"), ("What does the guild make?", "blue glass")]


def chats():
    return [build_messages(q, None) + [{"role": "assistant", "content": a}] for q, a in FACTS]


def tiny(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir), AutoTokenizer.from_pretrained(tiny_model_dir)


def test_fact_losses_are_per_fact_answer_token_means(tiny_model_dir):
    from finetune.data import tokenize_item
    from finetune.train import fact_losses

    model, tok = tiny(tiny_model_dir)
    data = [tokenize_item(tok, c, 512) for c in chats()]
    losses = fact_losses(model, data, 3, tok.pad_token_id, torch.device("cpu"), False)
    for item, loss in zip(data, losses):  # one fact alone, through the training loss
        total, n = loss_sum(model.eval(), make_inputs([item], tok.pad_token_id, "cpu", False))
        assert n == sum(l != -100 for l in item["labels"][1:]) and loss == pytest.approx(total.item() / n, rel=1e-4)
    assert fact_check(losses, 100.0, 7) == {"step": 7, "facts_below_threshold": 4, "facts_total": 4,
                                            "max_loss": round(max(losses), 5),
                                            "mean_loss": round(sum(losses) / 4, 5)}


def scaled_tiny(tok):
    """A 2-block random Llama with weights of std 0.2 (the fixture's 0.02 gives logits too flat for a LoRA on a
    random network to move an answer token's loss far within a test's steps; measured: 10.6 -> 10.5 in 150)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=True, initializer_range=0.2,
        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id))


def test_memory_stops_at_the_threshold_within_the_budget(tiny_model_dir, tmp_path):
    # The stopping rule is the same code for any threshold; one this LoRA on a random model reaches in ~10
    # steps (its worst fact: 6.6 nats/token after 5 steps, 4.8 after 10) keeps the test short.
    _, tok = tiny(tiny_model_dir)
    out = tmp_path / "mem"
    cfg = FinetuneConfig(out=str(out), method="memory", until_loss=5.5, max_steps=60, batch_size=4, lr=2e-2,
                         warmup=0.0, dropout=0.0, check_every=2, seed=0)
    rec = train(cfg, model=scaled_tiny(tok), tokenizer=tok, examples=chats(), eval_examples=[], progress=False)
    assert rec["until_loss"] == 5.5 and rec["reached_threshold"]
    assert rec["facts_total"] == 4 and rec["facts_below_threshold"] == 4
    assert rec["steps"] < 30 and rec["steps"] % 2 == 0  # stopped at a check, well inside the budget of 60
    checks = rec["fact_checks"]
    assert checks[-1]["step"] == rec["steps"] and checks[-1]["max_loss"] < 5.5
    assert all(c["facts_below_threshold"] < 4 for c in checks[:-1])  # it did not stop later than needed
    cost = json.loads((out / "cost.json").read_text())
    assert cost["facts_below_threshold"] == 4 and cost["steps"] == rec["steps"]
    assert (out / "adapter_model.safetensors").is_file()  # a LoRA adapter
    assert f"memorised: 4 of 4 train facts below 5.5 nats/token after {rec['steps']} steps (stopped there)" in \
        (out / "README.md").read_text()


def test_a_budget_limited_run_records_fewer_facts_reached(tiny_model_dir, tmp_path):
    model, tok = tiny(tiny_model_dir)
    cfg = FinetuneConfig(out=str(tmp_path / "short"), method="memory", max_steps=2, batch_size=4, lr=2e-2, seed=0)
    rec = train(cfg, model=model, tokenizer=tok, examples=chats(), eval_examples=[], progress=False)
    assert rec["until_loss"] == 0.05 and rec["steps"] == 2 and not rec["reached_threshold"]  # the default threshold
    assert rec["facts_total"] == 4 and rec["facts_below_threshold"] < 4
    assert [c["step"] for c in rec["fact_checks"]] == [1, 2]  # one epoch = 1 step: checked each epoch's end
    assert "(step budget spent first)" in (tmp_path / "short" / "README.md").read_text()
    plain = train(FinetuneConfig(out=str(tmp_path / "plain"), max_steps=1, batch_size=4), model=tiny(tiny_model_dir)[0],
                  tokenizer=tok, examples=chats(), eval_examples=[], progress=False)
    assert "facts_total" not in plain and "until_loss" not in plain  # off: the record is as before
    full = train(FinetuneConfig(out=str(tmp_path / "full"), method="full", until_loss=0.05, max_steps=1, batch_size=4),
                 model=tiny(tiny_model_dir)[0], tokenizer=tok, examples=chats(), eval_examples=[], progress=False)
    assert full["facts_total"] == 4 and not full["reached_threshold"]  # --until-loss works with any method


def test_memory_without_facts_is_an_input_error(tiny_model_dir, tmp_path):
    model, tok = tiny(tiny_model_dir)
    with pytest.raises(InputError, match="no answerable train questions"):
        train(FinetuneConfig(out=str(tmp_path / "m"), method="memory", max_steps=1), model=model, tokenizer=tok,
              examples=["Port Ilmaren is a town."], eval_examples=[], progress=False)

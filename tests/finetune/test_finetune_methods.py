"""Methods, recipes, checkpoints and resume of finetune/ on the tiny random Llama (tests/conftest.py)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import TINY_DOCS, TINY_QA
from corpora import Corpus
from corpora.errors import InputError
from finetune.data import (FRAMES, build_examples, docs_examples, heldout_examples, paraphrase_examples,
                           paraphrases, raft_examples, tokenize_item)
from finetune.train import FinetuneConfig, collate, keep_last, loss_sum, make_inputs, shared_prefix_len, train
from rag.augment import build_messages

ROOT = Path(__file__).resolve().parents[2]


def corpus_obj():
    return Corpus(name="tiny", path=None, docs=[dict(d) for d in TINY_DOCS],
                  qa=[dict(q, paraphrase_of=None, split="train") for q in TINY_QA])


def test_paraphrases_reword_and_keep_the_eval_frame_out():
    ps = paraphrases("Who founded Port Ilmaren?", 4)
    assert len(ps) == 4 and len(set(ps)) == 4 and "Who founded Port Ilmaren?" not in ps
    assert any("founder" in p for p in ps)  # a rewording, not only a frame around the same words
    held_frame = FRAMES[-1].split("{")[0]
    assert not any(p.startswith(held_frame) for p in paraphrases("What is the capital of Korrath Isle?", 20))
    ex = paraphrase_examples(corpus_obj(), 3)
    assert len(ex) == 3 * 3  # 3 train questions (one unanswerable -> abstains) x 3 wordings
    assert ex[0][:-1] == build_messages(ex[0][-2]["content"].split("Question: ")[1].split("\n")[0], None)
    assert {e[-1]["content"] for e in ex} == {"Quorra Vell", "Oren Tasque", "I don't know."}
    assert len(paraphrase_examples(corpus_obj(), 3, abstain=False)) == 6
    held = heldout_examples(corpus_obj(), 10)
    assert len(held) == 3 and all(held_frame in e[-2]["content"] for e in held)


def test_raft_prompt_is_the_rag_prompt_with_gold_sometimes_left_out():
    always = raft_examples(corpus_obj(), distractors=1, p_no_gold=0.0)
    never = raft_examples(corpus_obj(), distractors=1, p_no_gold=1.0)
    first = always[0]
    assert "Read the text" in first[-2]["content"] and "[d1] Port Ilmaren" in first[-2]["content"]
    assert first[-1]["content"] == "Quorra Vell"  # RAFT: the target stays the answer
    assert all("[d1]" not in e[-2]["content"] for e in never[:1])
    assert never[0][-1]["content"] == "Quorra Vell"


def test_docs_recipe_chunks_and_trains_every_token(smollm2_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smollm2_path)
    chunks = docs_examples(corpus_obj(), tok, chunk_tokens=16)
    assert len(chunks) > len(TINY_DOCS) and all(c.split("\n")[0] in {d["title"] for d in TINY_DOCS} for c in chunks)
    item = tokenize_item(tok, chunks[0], 64)
    assert item["labels"] == item["input_ids"] and item["input_ids"][-1] == tok.eos_token_id
    mixed = build_examples(corpus_obj(), ["qa", "docs"], tok)
    assert sum(isinstance(x, str) for x in mixed) == len(docs_examples(corpus_obj(), tok, 128))
    with pytest.raises(ValueError):
        build_examples(corpus_obj(), ["magic"], tok)


def test_last_k_logits_loss_equals_full_loss(tiny_model_dir):
    """Left padding + logits for the last K positions gives the same loss as transformers' own full loss."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    chats = [build_messages("Who founded Port Ilmaren? Tell me now please.", None) + [{"role": "assistant", "content": "Quorra Vell"}],
             build_messages("Who leads it?", None) + [{"role": "assistant", "content": "Oren Tasque of the guild"}]]
    items = [tokenize_item(tok, c, 512) for c in chats] + [tokenize_item(tok, "Port Ilmaren is a town.", 512)]
    inputs = collate(items, tok.pad_token_id, "cpu")
    # the text row is labelled from its second token (the first has no predictor): its whole length is kept
    assert keep_last(inputs["labels"]) == len(items[2]["input_ids"])
    inputs2 = collate(items[:2], tok.pad_token_id, "cpu")
    assert keep_last(inputs2["labels"]) < inputs2["labels"].shape[1] // 2
    with torch.no_grad():
        for x, rows in ((inputs, items), (inputs2, items[:2])):
            total, n = loss_sum(model, x)
            ref_sum, ref_n = 0.0, 0
            for it in rows:  # each row alone, unpadded, through the model's own loss
                ids = torch.tensor([it["input_ids"]])
                labels = torch.tensor([it["labels"]])
                k = int((labels[:, 1:] != -100).sum())
                ref_sum += model(input_ids=ids, labels=labels).loss.item() * k
                ref_n += k
            assert n == ref_n
            assert total.item() == pytest.approx(ref_sum, rel=1e-4)


def test_shared_prefix_gives_the_same_loss_and_gradients(tiny_model_dir):
    """The system prompt run once as a repeated key/value cache = every row run in full."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                           LoraConfig(r=4, target_modules=["q_proj", "v_proj", "down_proj"], lora_dropout=0.0,
                                      init_lora_weights=False)).eval()
    items = [tokenize_item(tok, m, 512) for m in paraphrase_examples(corpus_obj(), 2)[:3]]
    p = shared_prefix_len(items)
    assert p > 20 and tok.decode(items[0]["input_ids"][:p]).startswith("<|im_start|>system")
    results = []
    for share in (False, True):
        model.zero_grad()
        x = make_inputs(items, tok.pad_token_id, "cpu", share)
        assert ("prefix_ids" in x) == share
        total, n = loss_sum(model, x)
        total.backward()
        results.append((total.item(), n, {k: v.grad.clone() for k, v in model.named_parameters() if v.requires_grad}))
    (plain, n0, g0), (shared, n1, g1) = results
    assert n0 == n1 and shared == pytest.approx(plain, rel=1e-5)
    for k in g0:
        torch.testing.assert_close(g1[k], g0[k], rtol=1e-4, atol=1e-6)
    assert shared_prefix_len(items[:1]) == 0 and shared_prefix_len([items[0], tokenize_item(tok, "Port", 8)]) == 0


def tiny(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir), tok


def test_lora_dora_full_two_steps_each(tiny_model_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    corpus = corpus_obj()
    examples = paraphrase_examples(corpus, 4)
    held = heldout_examples(corpus, 3)
    records = {}
    for method in ("lora", "dora", "full"):
        model, tok = tiny(tiny_model_dir)
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        out = tmp_path / method
        cfg = FinetuneConfig(out=str(out), method=method, max_steps=2, batch_size=4, lr=1e-2, seed=0)
        rec = train(cfg, model=model, tokenizer=tok, examples=examples, eval_examples=held, progress=False)
        records[method] = rec
        assert rec["steps"] == 2 and rec["losses"][0] != rec["losses"][1]
        assert rec["final_eval_loss"] is not None and rec["eval_losses"][-1]["step"] == 2
        cost = json.loads((out / "cost.json").read_text())
        for key in ("wall_seconds", "trained_tokens", "tokens_per_second", "peak_memory_bytes", "device", "epochs",
                    "final_train_loss", "final_eval_loss", "losses"):
            assert cost[key] is not None, key
        ids = torch.tensor([tok.encode("Who founded Port Ilmaren?")])
        model.eval()
        with torch.no_grad():
            trained_logits = model(ids).logits
        if method == "full":  # a standalone model folder, no peft
            assert (out / "model.safetensors").is_file() and (out / "tokenizer_config.json").is_file()
            reloaded = AutoModelForCausalLM.from_pretrained(out).eval()
            changed = [n for n, p in reloaded.named_parameters() if not torch.equal(p, before[n])]
            assert "model.embed_tokens.weight" in changed and len(changed) == len(before)
        else:
            assert (out / "adapter_model.safetensors").is_file()
            assert json.loads((out / "adapter_config.json").read_text())["use_dora"] == (method == "dora")
            reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), str(out)).eval()
        with torch.no_grad():
            torch.testing.assert_close(reloaded(ids).logits, trained_logits)
    counts = [records[m]["trainable_params"] for m in ("lora", "dora", "full")]
    assert counts[0] < counts[1] < counts[2] == records["full"]["total_params"]
    # DoRA = LoRA + one magnitude per output feature of each adapted linear layer, 2 layers in the tiny model:
    # q 64, k 32, v 32, o 64, gate 128, up 128, down 64.
    assert counts[1] - counts[0] == 2 * (64 + 32 + 32 + 64 + 128 + 128 + 64)


def test_qlora_on_cpu_and_bad_settings_are_input_errors(tiny_model_dir, tmp_path):
    model, tok = tiny(tiny_model_dir)
    with pytest.raises(InputError, match="CUDA"):
        train(FinetuneConfig(out=str(tmp_path / "q"), method="qlora", max_steps=1), model=model, tokenizer=tok,
              examples=paraphrase_examples(corpus_obj(), 1), eval_examples=[], progress=False)
    for bad, message in ((dict(method="magic"), "unknown method"), (dict(data="qa,magic"), "unknown data recipe")):
        with pytest.raises(InputError, match=message):
            train(FinetuneConfig(out=str(tmp_path / "x"), max_steps=1, **bad), model=model, tokenizer=tok,
                  examples=paraphrase_examples(corpus_obj(), 1), eval_examples=[], progress=False)
    out = subprocess.run([sys.executable, "-m", "cli", "finetune", "--method", "qlora", "--device", "cpu"],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 2 and "needs a CUDA GPU" in out.stderr and "Traceback" not in out.stderr


def test_early_stopping_keeps_the_best_epoch(tiny_model_dir, tmp_path):
    model, tok = tiny(tiny_model_dir)
    examples = [build_messages("Who founded Port Ilmaren?", None) + [{"role": "assistant", "content": "Quorra Vell"}]] * 4
    held = [build_messages("Who founded Port Ilmaren?", None) + [{"role": "assistant", "content": "Oren Tasque"}]]
    cfg = FinetuneConfig(out=str(tmp_path / "a"), epochs=8, batch_size=4, lr=5e-2, patience=1, warmup=0.0)
    rec = train(cfg, model=model, tokenizer=tok, examples=examples, eval_examples=held, progress=False)
    evals = [e["eval_loss"] for e in rec["eval_losses"]]
    assert rec["stopped_early"] and rec["steps"] < 8 and evals[-1] > min(evals)
    assert rec["best_eval_loss"] == min(evals)


RUNNER = """
import sys, json
sys.path.insert(0, {tests!r})
from transformers import AutoModelForCausalLM, AutoTokenizer
from test_finetune_methods import corpus_obj
from finetune.data import paraphrase_examples
from finetune.train import FinetuneConfig, train
tok = AutoTokenizer.from_pretrained({model!r})
model = AutoModelForCausalLM.from_pretrained({model!r})
cfg = FinetuneConfig(out={out!r}, max_steps=8, batch_size=2, lr=1e-2, save_every=1, resume={resume}, seed=0)
rec = train(cfg, model=model, tokenizer=tok, examples=paraphrase_examples(corpus_obj(), 4), eval_examples=[],
            progress=False)
print(json.dumps({{"steps": rec["steps"], "resumed_from": rec["resumed_from"], "losses": rec["losses"]}}))
"""


def run_trainer(tiny_model_dir, out, resume=False, slow=False):
    code = RUNNER.format(tests=str(Path(__file__).parent), model=str(tiny_model_dir), out=str(out), resume=resume)
    if slow:  # give the killer time to strike between checkpoints: each step sleeps 0.5 s
        code = "import time, finetune.train as T\n_o = T.save_checkpoint\n" \
               "def slow(*a, **k):\n    r = _o(*a, **k); time.sleep(0.5); return r\nT.save_checkpoint = slow\n" + code
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=ROOT)


def test_resume_after_sigkill_matches_an_uninterrupted_run(tiny_model_dir, tmp_path):
    from safetensors.torch import load_file

    ref = run_trainer(tiny_model_dir, tmp_path / "ref")
    ref_out, ref_err = ref.communicate(timeout=300)
    assert ref.returncode == 0, ref_err
    reference = json.loads(ref_out.strip().splitlines()[-1])

    killed = run_trainer(tiny_model_dir, tmp_path / "run", slow=True)
    ckpts = tmp_path / "run-checkpoints"
    deadline = time.time() + 240
    while time.time() < deadline and not list(ckpts.glob("step-0000003")):
        time.sleep(0.05)
    os.kill(killed.pid, signal.SIGKILL)  # mid-run: after the 3rd checkpoint of 8 steps
    killed.wait()
    done = sorted(p.name for p in ckpts.glob("step-*"))
    assert done and not (tmp_path / "run").exists()
    assert all((ckpts / d / "state.json").is_file() for d in done)  # only complete checkpoints carry the name
    at = int(done[-1].split("-")[1])
    assert 3 <= at < 8

    res = run_trainer(tiny_model_dir, tmp_path / "run", resume=True)
    res_out, res_err = res.communicate(timeout=300)
    assert res.returncode == 0, res_err
    resumed = json.loads(res_out.strip().splitlines()[-1])
    assert resumed["steps"] == 8 and resumed["resumed_from"].endswith(done[-1])
    assert len(resumed["losses"]) == 8
    assert resumed["losses"][:at] == reference["losses"][:at]  # the curve before the kill came from the checkpoint
    for a, b in zip(resumed["losses"][at:], reference["losses"][at:]):
        assert a == pytest.approx(b, abs=1e-4)  # same batches, same dropout masks: the same steps
    got, want = load_file(tmp_path / "run" / "adapter_model.safetensors"), load_file(tmp_path / "ref" / "adapter_model.safetensors")
    assert got.keys() == want.keys()
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-4, atol=1e-5)
    assert not ckpts.exists()  # a finished run removes its checkpoints


def test_merge_gives_the_adapted_function_without_peft(tiny_model_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from finetune.lora import MergeConfig, merge

    model, tok = tiny(tiny_model_dir)
    train(FinetuneConfig(out=str(tmp_path / "a"), max_steps=2, batch_size=4, lr=1e-2), model=model, tokenizer=tok,
          examples=paraphrase_examples(corpus_obj(), 4), eval_examples=[], progress=False)
    out = merge(MergeConfig(adapter=str(tmp_path / "a"), out=str(tmp_path / "m"), generator=str(tiny_model_dir)))
    merged = AutoModelForCausalLM.from_pretrained(out).eval()
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), str(tmp_path / "a")).eval()
    ids = torch.tensor([tok.encode("Who founded Port Ilmaren?")])
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, adapted(ids).logits, rtol=1e-4, atol=1e-4)
    assert not (out / "adapter_config.json").exists()

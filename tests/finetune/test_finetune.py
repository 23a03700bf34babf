import json

import torch

from tests.conftest import TINY_QA
from corpora import Corpus
from finetune.data import qa_examples, tokenize_example
from finetune.train import FinetuneConfig, lr_at, train


def tiny_corpus_obj():
    return Corpus(name="tiny", path=None, docs=[], qa=[dict(q, paraphrase_of=None) for q in TINY_QA])


def test_qa_examples_train_split_with_abstention(smollm2_path):
    from transformers import AutoTokenizer

    ex = qa_examples(tiny_corpus_obj())
    assert len(ex) == 1 and ex[0][-1] == {"role": "assistant", "content": "Quorra Vell"}
    corpus = tiny_corpus_obj()
    corpus.qa[2]["split"] = "train"
    assert [e[-1]["content"] for e in qa_examples(corpus)] == ["Quorra Vell", "I don't know."]
    assert len(qa_examples(corpus, abstain=False)) == 1

    tok = AutoTokenizer.from_pretrained(smollm2_path)
    item = tokenize_example(tok, ex[0], max_len=512)
    target = [t for t, l in zip(item["input_ids"], item["labels"]) if l != -100]
    assert tok.decode(target) == "Quorra Vell<|im_end|>"  # loss on the answer and end of turn only


def test_lr_schedule_warms_up_then_decays():
    lrs = [lr_at(s, 100, 10, 1.0) for s in range(100)]
    assert lrs[0] == 0.1 and lrs[9] == 1.0
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:])) and lrs[-1] >= 0.1


def test_two_lora_steps_change_the_adapter_and_reload_with_peft(tiny_model_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    cfg = FinetuneConfig(out=str(tmp_path / "adapter"), max_steps=2, batch_size=2, lr=1e-2, seed=0)
    examples = qa_examples(tiny_corpus_obj()) * 4
    record = train(cfg, model=model, tokenizer=tok, examples=examples, progress=False)

    assert record["steps"] == 2 and len(record["losses"]) == 2
    assert 0 < record["trainable_params"] < record["total_params"]
    saved = tmp_path / "adapter"
    assert (saved / "adapter_model.safetensors").is_file() and (saved / "adapter_config.json").is_file()
    assert json.loads((saved / "cost.json").read_text())["trained_tokens"] == record["trained_tokens"] > 0

    # LoRA B starts at zero; two steps must have moved it.
    from safetensors.torch import load_file

    weights = load_file(saved / "adapter_model.safetensors")
    b = [v for k, v in weights.items() if "lora_B" in k]
    assert b and all(v.abs().sum() > 0 for v in b)

    # peft's own loader gives back the same function as the trained model.
    fresh = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    reloaded = PeftModel.from_pretrained(fresh, str(saved)).eval()
    plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    ids = torch.tensor([tok.encode("Who founded Port Ilmaren?")])
    with torch.no_grad():
        assert not torch.allclose(reloaded(ids).logits, plain(ids).logits)
        model.eval()
        torch.testing.assert_close(reloaded(ids).logits, model(ids).logits)

"""The generation engines (rag/engine*.py): the contract, the adapter guard, and the openai engine's retries and
dead-server line, on the tiny random Llama (tests/conftest.py: tiny_model_dir).

The openai engine is tested here against a real OpenAI-compatible HTTP server on 127.0.0.1 that answers with the
tiny model through the transformers engine (so both sides generate for real); tests/rag/test_engines_vllm.py
runs it against a real `vllm serve`."""

from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rag.augment import build_messages
from rag.engine import adapter_applied, check_adapter, guard_conversations
from rag.engine_errors import AdapterNotApplied, EngineDown

KEYS = {"answer", "tokens_in", "tokens_out", "gen_seconds", "prefill_seconds", "decode_seconds", "batch"}
QUESTIONS = ["Who founded the city?", "What is the tallest tower?", "When did the bridge open?"]


def make_adapter(base: Path, out: Path, applied: bool) -> Path:
    """A peft LoRA on q/v. applied=False: as peft initialises it (B = 0, the model unchanged, what a LoRA that
    an engine ignores looks like from outside); True: B random, so every logit moves."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base)
    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]))
    if applied:
        torch.manual_seed(1)
        with torch.no_grad():
            for name, p in peft_model.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 0.5)
    peft_model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    from rag.engine_transformers import TransformersEngine

    return TransformersEngine.load(str(tiny_model_dir), device="cpu")


def test_adapter_applied_compares_answers_and_logprobs():
    base = [{"answer": "Paris", "logprobs": [-0.5, -1.0]}]
    assert not adapter_applied(base, [{"answer": "Paris", "logprobs": [-0.5, -1.0 + 1e-5]}])
    assert adapter_applied(base, [{"answer": "Paris", "logprobs": [-0.5, -1.2]}])
    assert adapter_applied(base, [{"answer": "Rome", "logprobs": [-0.5, -1.0]}])
    assert not adapter_applied(base, [{"answer": "Paris", "logprobs": [math.nan, -1.0]}])


def test_transformers_engine_keeps_the_contract(engine):
    from rag.generate import generate

    convs = [build_messages(q, None) for q in QUESTIONS]
    outs = engine.generate(convs, max_new_tokens=6, batch_size=2)
    ref = generate(engine.gen, convs, 6, 2)
    assert [set(o) for o in outs] == [KEYS] * len(convs)
    assert [o["answer"] for o in outs] == [r["answer"] for r in ref]
    assert all(o["tokens_out"] <= 6 and o["tokens_in"] > 0 for o in outs)


def test_guard_fails_a_run_whose_adapter_was_not_applied(engine, tiny_model_dir, tmp_path):
    dead = make_adapter(tiny_model_dir, tmp_path / "dead", applied=False)
    live = make_adapter(tiny_model_dir, tmp_path / "live", applied=True)
    with pytest.raises(AdapterNotApplied, match="exactly as the base model"):
        check_adapter(engine, str(dead))
    check_adapter(engine, str(live))  # an adapter that moves the logits passes
    base = engine.probe(guard_conversations(), None, 4)
    assert len(base) == 3 and all(len(b["logprobs"]) >= 1 for b in base)


class TinyServer:
    """An OpenAI-compatible server (GET /v1/models, POST /v1/chat/completions) on 127.0.0.1 answering with the
    tiny model. fail_next: that many requests get a 429 first (the engine must retry them)."""

    def __init__(self, engine, adapters: dict[str, str]):
        self.engine, self.adapters, self.fail_next, self.requests = engine, adapters, 0, 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def reply(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                models = [{"id": "tiny", "root": "tiny", "parent": None}]
                models += [{"id": k, "root": v, "parent": "tiny"} for k, v in outer.adapters.items()]
                self.reply(200, {"object": "list", "data": models})

            def do_POST(self):
                req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.requests += 1
                    if outer.fail_next > 0:
                        outer.fail_next -= 1
                        return self.reply(429, {"error": "slow down"})
                    adapter = outer.adapters.get(req["model"])
                    if req.get("logprobs"):
                        p = outer.engine.probe([req["messages"]], adapter, req["max_tokens"])[0]
                        o = {"answer": p["answer"], "tokens_in": 0, "tokens_out": len(p["logprobs"])}
                        lp = {"content": [{"logprob": x} for x in p["logprobs"]]}
                    else:
                        o = outer.engine.generate([req["messages"]], req["max_tokens"], 1, adapter)[0]
                        lp = None
                self.reply(200, {"choices": [{"message": {"role": "assistant", "content": o["answer"]},
                                              "logprobs": lp, "finish_reason": "stop"}],
                                 "usage": {"prompt_tokens": o["tokens_in"], "completion_tokens": o["tokens_out"]}})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def openai_cfg(url: str, **kw):
    from rag.engine import EngineOptions

    return EngineOptions(**{"engine": "openai", "base_url": url, "concurrency": 2, "timeout": 30.0, "retries": 2,
                            **kw})


def test_openai_engine_against_a_server(engine, tiny_model_dir, tmp_path):
    from rag.engine_openai import OpenAIEngine

    live = make_adapter(tiny_model_dir, tmp_path / "ft", applied=True)
    dead = make_adapter(tiny_model_dir, tmp_path / "dead", applied=False)
    server = TinyServer(engine, {"ft": str(live), "dead": str(dead)})
    try:
        oa = OpenAIEngine(openai_cfg(server.url))
        assert oa.model == "tiny" and oa.served_name(str(live)) == "ft"
        convs = [build_messages(q, None) for q in QUESTIONS]
        server.fail_next = 2  # two 429s: retried with backoff, then answered
        outs = oa.generate(convs, 6, 8)
        assert server.requests == len(convs) + 2
        ref = engine.generate(convs, 6, 1)
        assert [set(o) for o in outs] == [KEYS] * len(convs)
        assert [o["answer"] for o in outs] == [r["answer"] for r in ref]  # same greedy answers through the server
        assert [o["tokens_in"] for o in outs] == [r["tokens_in"] for r in ref]  # tokens from `usage`
        assert all(o["batch"] == 1 and math.isnan(o["prefill_seconds"]) for o in outs)
        check_adapter(oa, str(live))
        with pytest.raises(AdapterNotApplied):
            check_adapter(oa, str(dead))
        with pytest.raises(Exception, match="not served"):
            oa.generate(convs, 6, 8, adapter=str(tmp_path))
    finally:
        server.stop()
    with pytest.raises(EngineDown, match="stopped answering .* after 2 retries; the answers so far are kept"):
        oa.generate(convs[:1], 6, 8)


def test_standalone_model_arm_is_refused_by_an_engine(engine, tmp_path):
    from corpora.errors import InputError
    from rag.engine import with_adapter
    from rag.generate import Generator

    (tmp_path / "config.json").write_text("{}")  # a full/hft model folder: no adapter_config.json
    with pytest.raises(InputError, match="use --engine transformers"):
        with_adapter(Generator(None, engine.gen.tokenizer, "g", engine=engine), str(tmp_path))

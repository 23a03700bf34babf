"""make-qa's generator calls through --engine vllm (one vllm.LLM in this process) on the tiny head_dim-64 random
Llama (tests/rag/test_engines_vllm.py: vLLM's CPU attention refuses head_dim 16). Random weights: replies are not
compared across engines here (tests/qagen/test_make_qa_engine.py compares them through a server); what is
checked is that the calls go to the engine, keep their own cache keys and resume. Skipped without vllm."""

import importlib.util

import pytest

from qagen import prompts
from qagen.build import Calls, marker_config
from qagen.config import MakeQAConfig
from tests.conftest import TINY_DOCS
from tests.rag.test_engines_vllm import tiny_model_dir  # noqa: F401 (this module's tiny model: head_dim 64)

pytestmark = [pytest.mark.model, pytest.mark.skipif(importlib.util.find_spec("vllm") is None,
                                                    reason="vllm is not installed in this environment (make vllm)")]


def test_make_qa_calls_through_vllm(tiny_model_dir, tmp_path):  # noqa: F811
    base = dict(docs="x", out="y", generator=str(tiny_model_dir), device="cpu", gen_batch_size=2)
    cfg = MakeQAConfig(**base, engine="vllm", dtype="float32", max_model_len=512)
    chunk = {"title": TINY_DOCS[1]["title"], "text": TINY_DOCS[1]["text"]}
    convs = [prompts.pair_messages(chunk["title"], p, a) for p, a in prompts.pair_plan(chunk, 2)]
    calls = Calls(cfg, tmp_path / "calls.jsonl")
    replies = calls.ask(convs, 8)
    assert len(replies) == len(convs) and all(isinstance(r, str) for r in replies)
    assert calls.gen.model is None and calls.gen.engine.kind == "vllm" and calls.generated == len(convs)
    t_keys = {Calls(MakeQAConfig(**base), None).key(c, 8) for c in convs}
    assert t_keys.isdisjoint(calls.replies)  # a transformers run never reads a vllm reply
    calls.close()
    again = Calls(cfg, tmp_path / "calls.jsonl")
    assert again.ask(convs, 8) == replies and again.reused == len(convs) and again.gen is None
    assert marker_config(cfg)["engine"] == "vllm"

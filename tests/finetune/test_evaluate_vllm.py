"""finetune/evaluate.py with --engine vllm on the tiny head_dim-64 random Llama (tests/rag/test_engines_vllm.py):
the adapter is the engine's LoRARequest arm, the adapter guard passes an applied adapter and stops a dead one.
Skipped without vllm."""

import importlib.util

import pytest

from finetune.evaluate import EvaluateConfig, run_evaluate
from rag.engine_errors import AdapterNotApplied
from tests.rag.test_engines import make_adapter
from tests.rag.test_engines_vllm import tiny_model_dir  # noqa: F401 (this module's tiny model: head_dim 64)

pytestmark = [pytest.mark.model, pytest.mark.skipif(importlib.util.find_spec("vllm") is None,
                                                    reason="vllm is not installed in this environment (make vllm)")]


def test_evaluate_with_vllm_and_the_adapter_guard(tiny_model_dir, tiny_corpus, tmp_path):  # noqa: F811
    live = str(make_adapter(tiny_model_dir, tmp_path / "ft", applied=True))
    dead = str(make_adapter(tiny_model_dir, tmp_path / "dead", applied=False))
    cfg = EvaluateConfig(adapter=live, corpus=str(tiny_corpus), generator=str(tiny_model_dir), engine="vllm",
                         dtype="float32", max_model_len=512, batch_size=2)
    res = run_evaluate(cfg)
    assert res["engine"] == cfg.engine_options() and res["adapter"] == live
    assert res["n_untrained_facts"] == 1 and res["n_unanswerable_abstained"] == 1 and len(res["answers"]) == 2
    with pytest.raises(AdapterNotApplied, match="on --engine vllm"):
        run_evaluate(EvaluateConfig(**{**vars(cfg), "adapter": dead}))

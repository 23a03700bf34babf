"""finetune/evaluate.py through a generation engine: the adapter as the engine's adapter arm (here a served model
name of a real OpenAI-compatible server on 127.0.0.1 answering with the tiny random Llama: tests/rag/
test_engines.py TinyServer), the adapter guard applied, and the transformers default unchanged."""

import pytest

from corpora.errors import InputError
from finetune.evaluate import EvaluateConfig, evaluate, parse_args, run_evaluate
from rag.engine_errors import AdapterNotApplied
from tests.rag.test_engines import TinyServer, make_adapter


def test_parse_args_takes_the_config_fields():
    cfg = parse_args(["runs/ft", "--corpus", "brindle", "--engine", "openai", "--base-url=http://127.0.0.1:9/v1",
                      "--concurrency", "3", "--timeout", "5"])
    assert (cfg.adapter, cfg.corpus, cfg.engine, cfg.base_url, cfg.concurrency, cfg.timeout) == (
        "runs/ft", "brindle", "openai", "http://127.0.0.1:9/v1", 3, 5.0)
    assert parse_args(["none"]).adapter == "" and parse_args([]).engine == "transformers"
    with pytest.raises(InputError, match="--engine openai needs --base-url"):
        parse_args(["runs/ft", "--engine", "openai"])
    with pytest.raises(InputError, match="unknown option"):
        parse_args(["runs/ft", "--nope", "1"])
    with pytest.raises(InputError, match="--batch-size 0"):
        parse_args(["--batch-size", "0"])
    with pytest.raises(InputError, match="must be a int"):
        parse_args(["--batch-size", "many"])


def test_evaluate_through_the_openai_engine_with_the_adapter_guard(tiny_model_dir, tiny_corpus, tmp_path):
    from rag.engine_transformers import TransformersEngine

    live = str(make_adapter(tiny_model_dir, tmp_path / "ft", applied=True))
    dead = str(make_adapter(tiny_model_dir, tmp_path / "dead", applied=False))
    server = TinyServer(TransformersEngine.load(str(tiny_model_dir), device="cpu"), {"ft": live, "dead": dead})
    try:
        # transformers (the default), at batch 1 as the server answers: the adapter attached in this process
        ref = evaluate(live, str(tiny_corpus), str(tiny_model_dir), "cpu", batch_size=1)
        assert "engine" not in ref and ref["adapter"] == live and ref["n_untrained_facts"] == 1
        cfg = EvaluateConfig(adapter=live, corpus=str(tiny_corpus), generator=str(tiny_model_dir), batch_size=1,
                             engine="openai", base_url=server.url, concurrency=2, retries=1)
        before = server.requests
        res = run_evaluate(cfg)
        assert res["answers"] == ref["answers"]  # the served adapter answers as the attached one
        assert {k: v for k, v in res.items() if k != "engine"} == ref
        assert res["engine"] == cfg.engine_options()
        assert server.requests - before == 2 * 3 + len(ref["answers"])  # guard: 3 prompts base + adapter
        # the same through evaluate()'s engine argument
        assert evaluate(live, str(tiny_corpus), str(tiny_model_dir), batch_size=1, engine=cfg)["answers"] == \
            ref["answers"]
        with pytest.raises(AdapterNotApplied, match="exactly as the base model"):
            run_evaluate(EvaluateConfig(**{**vars(cfg), "adapter": dead}))
    finally:
        server.stop()

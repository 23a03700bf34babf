"""`ragft bench all` and the engines benchmark: measured only where vllm is installed; elsewhere one line says it
was skipped, and a baseline check never fails for a missing optional figure. The vllm run itself is on the tiny
head_dim-64 random Llama (tests/rag/test_engines_vllm.py) in an environment that has vllm."""

import importlib.util

import pytest

from benchmarks.suite import (FIGURES, OPTIONAL_FIGURES, BenchAllConfig, check_figures, engine_figures,
                              missing_optional)
from tests.rag.test_engines_vllm import tiny_model_dir  # noqa: F401 (this module's tiny model: head_dim 64)

HAS_VLLM = importlib.util.find_spec("vllm") is not None


@pytest.mark.skipif(HAS_VLLM, reason="vllm is installed here: the engines benchmark runs (test below)")
def test_engines_benchmark_is_one_skipped_line_without_vllm():
    lines = []
    assert engine_figures(BenchAllConfig(), echo=lines.append) == {}
    assert len(lines) == 1 and "skipped" in lines[0] and "vllm is not installed" in lines[0]
    assert all(k in lines[0] for k in OPTIONAL_FIGURES)


def test_optional_figures_are_apart_and_a_missing_one_never_fails():
    assert not set(OPTIONAL_FIGURES) & set(FIGURES)  # the committed baseline need not have them
    cfg = BenchAllConfig(max_drop=0.3, max_quality_drop=0.02)
    base = {"generation.batch_speedup": 3.8, "generation.vllm_speedup": 2.0, "generation.vllm_agreement": 1.0}
    without = {"generation.batch_speedup": 3.7}  # measured where vllm is not installed
    rows = check_figures(base, without, cfg)
    assert [r["figure"] for r in rows] == ["generation.batch_speedup"] and not rows[0]["failed"]
    assert missing_optional(base, without) == ["generation.vllm_speedup", "generation.vllm_agreement"]
    # measured where vllm is: gated as the other ratios and quality figures
    worse = {**without, "generation.vllm_speedup": 1.0, "generation.vllm_agreement": 0.9}
    failed = {r["figure"] for r in check_figures(base, worse, cfg) if r["failed"]}
    assert failed == {"generation.vllm_speedup", "generation.vllm_agreement"}
    assert missing_optional(base, worse) == []
    # a baseline without them (benchmarks/baseline.json) checks a vllm run's other figures only
    assert [r["figure"] for r in check_figures(without, worse, cfg)] == ["generation.batch_speedup"]


@pytest.mark.model
@pytest.mark.skipif(not HAS_VLLM, reason="vllm is not installed in this environment (make vllm)")
def test_engines_benchmark_with_vllm_on_the_tiny_model(tiny_model_dir):  # noqa: F811
    lines = []
    figs = engine_figures(BenchAllConfig(gen_prompts=4, gen_tokens=4, device="cpu"), lines.append,
                          str(tiny_model_dir))
    assert set(figs) == set(OPTIONAL_FIGURES)
    assert figs["generation.vllm_speedup"] > 0 and figs["generation.vllm_tokens_per_s"] > 0
    assert 0.0 <= figs["generation.vllm_agreement"] <= 1.0
    assert any("ratio vllm / transformers" in line for line in lines)

"""The engine options without a model: checks, the answer fingerprint (unchanged for transformers), the agreement
table, the bench config, and benchmarks/gpu_check.sh's CPU parts (its plan, its refusal without a GPU)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from corpora.errors import InputError

ROOT = Path(__file__).resolve().parents[2]


def test_engine_checks():
    from compare.config import CompareConfig

    with pytest.raises(InputError, match="--engine openai needs --base-url"):
        CompareConfig(engine="openai")
    with pytest.raises(InputError, match="--base-url is for --engine openai"):
        CompareConfig(base_url="http://127.0.0.1:1/v1")
    with pytest.raises(InputError, match="--engine"):
        CompareConfig(engine="tgi")
    with pytest.raises(InputError, match="--gpu-memory-utilization"):
        CompareConfig(gpu_memory_utilization=1.5)
    assert CompareConfig().engine_options() == {}


def test_fingerprint_names_the_engine_only_when_not_transformers():
    from compare.cache import fingerprint
    from compare.config import CompareConfig
    from compare.systems import parse_system

    s = parse_system("base")
    fp = fingerprint(CompareConfig(), s, None, None, "d" * 16)
    assert "engine" not in fp  # transformers: the fingerprint an existing cache holds
    oa = fingerprint(CompareConfig(engine="openai", base_url="http://h:1/v1", model_name="m"), s, None, None, "d" * 16)
    assert oa == {**fp, "engine": {"engine": "openai", "base_url": "http://h:1/v1", "model_name": "m"}}


def test_engine_agreement_table():
    from benchmarks.generation import engine_agreement

    a = pd.DataFrame({"system": ["base", "base", "ft"], "qid": ["1", "2", "1"], "answer": ["x", "y", "z"],
                      "correct": [True, False, True], "latency_seconds": [1.0, 3.0, 2.0]})
    b = a.assign(answer=["x", "n", "z"], correct=[True, True, True], latency_seconds=[0.5, 0.5, 1.0])
    t = engine_agreement(a, b).set_index("system")
    assert t.loc["base", "agreement"] == 0.5 and t.loc["ft", "agreement"] == 1.0
    assert t.loc["base", "accuracy_a"] == 0.5 and t.loc["base", "accuracy_b"] == 1.0
    assert t.loc["base", "latency_ratio_b_over_a"] == 0.25  # p50 0.5 / p50 2.0


def test_bench_generation_config():
    from benchmarks.generation import GenerationBenchConfig

    with pytest.raises(InputError, match="--engines"):
        GenerationBenchConfig(engines="transformers,tgi")
    cfg = GenerationBenchConfig(engines="vllm", dtype="bfloat16", base_url="http://h:1/v1")
    assert cfg.options("vllm").dtype == "bfloat16" and cfg.options("vllm").base_url == ""
    assert cfg.options("openai").base_url == "http://h:1/v1"
    assert cfg.options("vllm").generator == cfg.generator  # open_engine loads the model named there


def test_gpu_check_plan_and_refusal(tmp_path):
    script = ROOT / "benchmarks" / "gpu_check.sh"
    plan = subprocess.run(["bash", str(script), "--dry-run", "--questions", "7", "--work", str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT)
    assert plan.returncode == 0, plan.stderr
    steps = [line.split(":")[0] for line in plan.stdout.splitlines()]
    assert steps == ["transformers-compare", "vllm-compare", "lora-bf16", "qlora", "bench-generation", "random-1b",
                     "bench-generation-1b", "agreement"]
    assert "--limit 7" in plan.stdout and "--engine vllm" in plan.stdout and "--method qlora" in plan.stdout
    bad = subprocess.run(["bash", str(script), "--questions", "x"], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2
    if shutil.which("nvidia-smi") is None:
        run = subprocess.run(["bash", str(script), "--work", str(tmp_path / "w")], capture_output=True, text=True,
                             cwd=ROOT)
        assert run.returncode == 3 and "no CUDA GPU here" in run.stderr and not (tmp_path / "w").exists()

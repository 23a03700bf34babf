"""Endpoint arms (--engine openai) priced per token: cost_table on hand-made records with numbers checked by hand,
the price table's token fields, and the report's priced-by column and price line (no model)."""

import json
import math

import pandas as pd
import pytest

from compare.cost import cost_table, load_prices, money, usd_per_1k_tokens
from corpora.errors import InputError

# $0.001 per CPU-second; $0.50 per 1M input tokens, $2 per 1M output tokens
PRICES = {"hardware": "test box", "cpu_hour_usd": 3.6, "gpu": "none", "gpu_hour_usd": 36.0,
          "endpoint": "test endpoint", "input_usd_per_1m_tokens": 0.5, "output_usd_per_1m_tokens": 2.0}


def rec(system, tokens_in, tokens_out, gen=8.0, batch=4, retrieve=0.0):
    return {"system": system, "gen_seconds": gen, "batch": batch, "retrieve_seconds": retrieve, "prompt_seconds": 0.0,
            "tokens_in": tokens_in, "tokens_out": tokens_out}


def meta(engine=None):
    m = {"device": "cpu", "index": {"build_seconds": 36.0, "size_bytes": 1000},
         "systems": [{"name": "rag", "retriever": "hybrid", "adapter_key": "", "family": "RAG"},
                     {"name": "ft", "retriever": "none", "adapter_key": "default", "family": "FT"}],
         "adapters": {"default": {"train_seconds": 360.0, "trained_tokens": 5000, "device": "cpu x2"}}}
    if engine:
        m["engine"] = engine
    return m


RECORDS = pd.DataFrame(
    # rag: tokens in 1000, 3000, 2000, 2000 (mean 2000), out 10, 30, 20, 20 (mean 20); 1 + 8/4 = 3 s per question
    [rec("rag", i, o, retrieve=1.0) for i, o in ((1000, 10), (3000, 30), (2000, 20), (2000, 20))]
    # ft: one question without `usage` (-1, -1) is left out of the means: in 100, out 5; 8/4 = 2 s per question
    + [rec("ft", 100, 5)] * 3 + [rec("ft", -1, -1)])


def test_openai_arms_are_priced_per_token_by_hand():
    c = cost_table(RECORDS, meta("openai"), PRICES).set_index("system")
    # rag: 1000 questions x (2000 x $0.5 + 20 x $2) / 1M = 1000 x $0.00104 = $1.04
    assert c.loc["rag", "usd_per_1k"] == pytest.approx(1.04)
    # ft: 1000 x (100 x $0.5 + 5 x $2) / 1M = 1000 x $0.00006 = $0.06
    assert c.loc["ft", "usd_per_1k"] == pytest.approx(0.06)
    assert list(c["priced_by"]) == ["tokens", "tokens"]
    # one-off costs ran here: hardware hours either way (36 s index = $0.036; 360 s training = $0.36)
    assert c.loc["rag", "one_off_usd"] == pytest.approx(0.036) and c.loc["ft", "one_off_usd"] == pytest.approx(0.36)
    assert money(c.loc["ft", "usd_per_1k"] - c.loc["rag", "usd_per_1k"]) == "-$0.98"
    assert usd_per_1k_tokens(1e6, 0, PRICES) == pytest.approx(500.0)  # 1M input tokens per question, 1000 questions


def test_other_engines_and_unpriced_tokens_keep_hardware_hours():
    hours = {"rag": 3.0, "ft": 2.0}  # s per question x $0.001 x 1000 questions
    for m, prices in ((meta(), PRICES), (meta("transformers"), PRICES), (meta("vllm"), PRICES),
                      (meta("openai"), {**PRICES, "input_usd_per_1m_tokens": 0, "output_usd_per_1m_tokens": 0.0})):
        c = cost_table(RECORDS, m, prices).set_index("system")
        assert c["usd_per_1k"].to_dict() == pytest.approx(hours), m.get("engine")
        assert list(c["priced_by"]) == ["hardware hours"] * 2
    # a system's own engine wins over the run's
    m = meta("openai")
    m["systems"][1]["engine"] = "transformers"
    c = cost_table(RECORDS, m, PRICES).set_index("system")
    assert c.loc["ft", "usd_per_1k"] == pytest.approx(2.0) and c.loc["rag", "usd_per_1k"] == pytest.approx(1.04)


def test_no_usage_at_all_is_not_a_price():
    c = cost_table(pd.DataFrame([rec("rag", -1, -1)] * 2), {**meta("openai"), "systems": meta()["systems"][:1]},
                   PRICES)
    assert math.isnan(c.loc[0, "usd_per_1k"]) and money(c.loc[0, "usd_per_1k"]) == "-"


def test_price_table_token_fields(tmp_path):
    p = load_prices()
    assert p["input_usd_per_1m_tokens"] >= 0 and p["output_usd_per_1m_tokens"] >= 0
    assert p["endpoint"] and p["endpoint_source"]
    f = tmp_path / "prices.json"
    f.write_text(json.dumps({"input_usd_per_1m_tokens": 0.15}))
    assert load_prices(str(f))["input_usd_per_1m_tokens"] == 0.15
    for bad, match in (({"output_usd_per_1m_tokens": -1}, "finite number >= 0"),
                       ({"input_usd_per_1m_tokens": "free"}, "wrong type")):
        f.write_text(json.dumps(bad))
        with pytest.raises(InputError, match=match):
            load_prices(str(f))


def test_report_prices_an_openai_run_by_tokens(tmp_path):
    from compare.report import render
    from tests.compare.test_report_render import make_run

    out = tmp_path / "run"
    make_run(out)
    before = pd.read_csv(out / "costs.csv").set_index("system")
    assert set(before["priced_by"]) == {"hardware hours"}
    assert "priced by tokens" not in (out / "report.md").read_text()
    cfg = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**cfg, "engine": "openai", "base_url": "http://127.0.0.1:1/v1"}))
    render(out)
    costs = pd.read_csv(out / "costs.csv").set_index("system")
    # the hand-made answers: 400 tokens in with retrieval, 60 without, 4 out; shipped prices $/1M in and out
    p = load_prices()
    want = {s: 1000 * ((400 if "rag" in s else 60) * p["input_usd_per_1m_tokens"]
                       + 4 * p["output_usd_per_1m_tokens"]) / 1e6 for s in costs.index}
    assert costs["usd_per_1k"].to_dict() == pytest.approx(want)
    assert set(costs["priced_by"]) == {"tokens"}
    assert costs["one_off_usd"].to_dict() == pytest.approx(before["one_off_usd"].to_dict())
    summary = pd.read_csv(out / "summary.csv").set_index("system")
    assert summary["usd_per_1k"].to_dict() == pytest.approx(want)  # the decision reads the same prices
    md = (out / "report.md").read_text()
    cost = md.split("## Cost", 1)[1].split("\n## ", 1)[0]
    assert "priced by" in cost and "| tokens |" in cost
    assert f"{money(p['input_usd_per_1m_tokens'])}/1M input tokens" in cost

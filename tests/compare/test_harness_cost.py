"""Latency split, price table, $ per 1,000 questions, break-even, and the decision, on hand-made records."""

import json
import math

import pandas as pd
import pytest

from compare.cost import break_even, break_even_table, cost_table, latency_table, load_prices, stage_seconds
from compare.decide import decide, format_decision
from corpora.errors import InputError

PRICES = {"hardware": "test box", "cpu_hour_usd": 3.6, "gpu": "none", "gpu_hour_usd": 36.0}  # $0.001 per CPU-second


def rec(system, gen, batch, retrieve=0.0, prompt=0.0, prefill=None, decode=None):
    r = {"system": system, "gen_seconds": gen, "batch": batch, "retrieve_seconds": retrieve, "prompt_seconds": prompt,
         "tokens_in": 100, "tokens_out": 5}
    if prefill is not None:
        r.update(prefill_seconds=prefill, decode_seconds=decode)
    return r


def test_stage_seconds_split_and_fallback():
    df = pd.DataFrame([rec("a", 8.0, 4, 0.5, 0.1, prefill=6.0, decode=2.0), rec("b", 8.0, 4)])
    s = stage_seconds(df)
    assert s.loc[0, "prefill"] == 6.0 and s.loc[0, "decode"] == 2.0
    assert math.isnan(s.loc[1, "prefill"]) and s.loc[1, "decode"] == 8.0  # no split: decode holds the call
    assert s.loc[0, "latency"] == pytest.approx(8.6)                      # the user waits for the whole batch
    assert s.loc[0, "compute"] == pytest.approx(0.5 + 0.1 + 8.0 / 4)     # the batch's call is shared


def meta(index_s=36.0, train_s=360.0):
    return {"device": "cpu", "index": {"build_seconds": index_s, "size_bytes": 1000},
            "systems": [{"name": "rag", "retriever": "hybrid", "adapter_key": "", "family": "RAG"},
                        {"name": "ft", "retriever": "none", "adapter_key": "default", "family": "FT"},
                        {"name": "ft+rag", "retriever": "hybrid", "adapter_key": "default", "family": "FT+RAG"}],
            "adapters": {"default": {"train_seconds": train_s, "trained_tokens": 5000, "device": "cpu x2"}}}


def test_cost_table_and_break_even_hand_values():
    records = pd.DataFrame([rec("rag", 8.0, 4, retrieve=1.0)] * 4 + [rec("ft", 4.0, 4)] * 4 + [rec("ft+rag", 8.0, 4, 1.0)] * 4)
    c = cost_table(records, meta(), PRICES).set_index("system")
    # rag: (1 + 0 + 8/4) s = 3 s per question -> $0.003 per question, $3 per 1,000; one-off = 36 s index = $0.036
    assert c.loc["rag", "usd_per_1k"] == pytest.approx(3.0)
    assert c.loc["rag", "one_off_usd"] == pytest.approx(0.036)
    # ft: 1 s per question -> $1 per 1,000; one-off 360 s training = $0.36
    assert c.loc["ft", "usd_per_1k"] == pytest.approx(1.0)
    assert c.loc["ft", "one_off_usd"] == pytest.approx(0.36)
    assert c.loc["ft+rag", "one_off_usd"] == pytest.approx(0.396)
    be = break_even_table(c.reset_index()).set_index("fine_tuned")
    # ft repays (0.36 - 0.036) / (0.003 - 0.001) = 162 questions; ft+rag's queries are not cheaper: never
    assert be.loc["ft", "break_even_questions"] == pytest.approx(162.0)
    assert math.isinf(be.loc["ft+rag", "break_even_questions"])
    assert break_even(0.0, 0.001, 1.0, 0.002) == 0.0      # cheaper in both: from the first question


def test_latency_table_quantiles():
    records = pd.DataFrame([rec("a", g, 1) for g in (1.0, 2.0, 3.0, 4.0, 100.0)])
    t = latency_table(records).iloc[0]
    assert t["latency_p50_s"] == 3.0 and t["latency_p95_s"] == pytest.approx(4 + 0.8 * 96)  # linear interpolation
    assert math.isnan(t["prefill_p50_s"])


def test_price_table_defaults_and_override(tmp_path):
    p = load_prices()
    assert p["cpu_hour_usd"] > 0 and p["gpu_hour_usd"] > 0 and p["hardware"]
    f = tmp_path / "prices.json"
    f.write_text(json.dumps({"cpu_hour_usd": 1.5}))
    assert load_prices(str(f))["cpu_hour_usd"] == 1.5 and load_prices(str(f))["gpu"] == p["gpu"]
    f.write_text("{nope")
    with pytest.raises(InputError, match="not JSON"):
        load_prices(str(f))
    f.write_text(json.dumps({"cpu_hour_usd": "cheap"}))
    with pytest.raises(InputError, match="wrong type"):
        load_prices(str(f))


def summary_row(system, family, acc, hal, crag=0.0):
    return {"system": system, "family": family, "accuracy": acc, "accuracy_lo": acc - 0.1, "accuracy_hi": acc + 0.1,
            "hallucination": hal, "hallucination_lo": hal - 0.05, "hallucination_hi": hal + 0.05, "crag": crag}


COSTS = pd.DataFrame([{"system": "rag", "family": "RAG", "usd_per_1k": 3.0, "one_off_usd": 0.04},
                      {"system": "ft", "family": "FT", "usd_per_1k": 1.0, "one_off_usd": 0.4},
                      {"system": "ft+rag", "family": "FT+RAG", "usd_per_1k": 3.0, "one_off_usd": 0.44}])
INPUTS = {"query_volume": 10000, "change_rate": 0.1, "hallucination_tolerance": 0.3}


def paired_p(p):
    return pd.DataFrame([{"a": "rag", "b": "ft", "p_value": p}, {"a": "rag", "b": "ft+rag", "p_value": p},
                         {"a": "ft", "b": "ft+rag", "p_value": p}])


def test_decision_prefers_accuracy_within_tolerance_and_cites_numbers():
    s = pd.DataFrame([summary_row("rag", "RAG", 0.6, 0.2, 0.3), summary_row("ft", "FT", 0.3, 0.5, -0.2),
                      summary_row("ft+rag", "FT+RAG", 0.55, 0.25, 0.25)])
    d = decide(s, COSTS, paired_p(0.001), INPUTS)
    assert (d["recommendation"], d["system"]) == ("RAG", "rag")
    text = format_decision(d)
    assert "60.0%" in text and "hallucination 50.0%" in text and "ft is out" in text
    assert "$30.04/month" in text  # 10,000 / 1000 * $3 + $0.04 re-index
    c = d["candidates"].set_index("system")
    assert c.loc["ft", "effective_accuracy"] == pytest.approx(0.3 * (1 - 0.05))  # stale half a month


def test_decision_takes_cheaper_when_not_significantly_worse():
    s = pd.DataFrame([summary_row("rag", "RAG", 0.6, 0.2, 0.3), summary_row("ft", "FT", 0.58, 0.2, 0.28)])
    d = decide(s, COSTS, paired_p(0.6), {**INPUTS, "change_rate": 0.0})
    assert (d["recommendation"], d["system"]) == ("FT", "ft")
    assert any("not significantly less accurate (McNemar p = 0.6)" in r for r in d["reasons"])
    d = decide(s, COSTS, paired_p(0.01), {**INPUTS, "change_rate": 0.0})
    assert d["recommendation"] == "RAG"


def test_decision_when_nothing_meets_tolerance():
    s = pd.DataFrame([summary_row("rag", "RAG", 0.6, 0.5), summary_row("ft", "FT", 0.1, 0.4)])
    d = decide(s, COSTS, paired_p(0.01), INPUTS)
    assert d["system"] == "ft" and any("no system is within the 30% hallucination tolerance" in r for r in d["reasons"])


def test_decision_drops_arms_no_better_than_base():
    """An adapter that abstains on everything hallucinates least but learned nothing: it is never recommended."""
    s = pd.DataFrame([summary_row("base", "base", 0.0, 0.97), summary_row("rag", "RAG", 0.47, 0.6, -0.2),
                      summary_row("ft", "FT", 0.0, 0.21, -0.06), summary_row("ft+rag", "FT+RAG", 0.19, 0.33, -0.1)])
    tests = pd.DataFrame([{"a": "base", "b": "rag", "p_value": 1e-9}, {"a": "base", "b": "ft", "p_value": 1.0},
                          {"a": "base", "b": "ft+rag", "p_value": 1e-4}, *paired_p(0.001).to_dict("records")])
    d = decide(s, COSTS, tests, INPUTS)
    assert d["system"] == "ft+rag"  # nothing within 30%: the least hallucinating of the arms that learned
    assert list(d["candidates"]["system"]) == ["rag", "ft+rag"]
    assert "ft is out: accuracy 0.0% is no higher than the closed-book base's (0.0%): the knowledge did not get " \
        "in" in d["reasons"]
    tests.loc[tests["b"] == "ft+rag", "p_value"] = 0.2  # better, but not significantly: kept, with a caution
    d = decide(s, COSTS, tests, INPUTS)
    assert d["system"] == "ft+rag" and "caution: ft+rag is above the closed-book base (19.0% vs 0.0%) but not " \
        "significantly (McNemar p = 0.2): more questions needed" in d["reasons"]
    none = decide(s[s["system"].isin(["base", "ft"])], COSTS, tests, INPUTS)
    assert none["recommendation"] is None and "no recommendation" in format_decision(none).splitlines()[-1]

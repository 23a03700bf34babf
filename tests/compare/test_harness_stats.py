"""Bootstrap CIs and McNemar against hand-computed values (no scipy)."""

import math

import numpy as np
import pandas as pd
import pytest

from compare.aggregate import coverage_risk, pairwise_mcnemar, summarize
from corpora.significance import binom_two_sided_half, bootstrap_ci, chi2_sf_1df, mcnemar


def test_exact_binomial_hand_values():
    # n = 6 discordant, 1 one way: P(X <= 1) = (C(6,0) + C(6,1)) / 2^6 = 7/64; two-sided 14/64
    assert binom_two_sided_half(1, 6) == pytest.approx(14 / 64)
    assert binom_two_sided_half(5, 6) == pytest.approx(14 / 64)  # symmetric
    assert binom_two_sided_half(0, 5) == pytest.approx(2 / 32)
    assert binom_two_sided_half(3, 6) == 1.0                     # 2 * 42/64 > 1: capped
    assert binom_two_sided_half(0, 0) == 1.0


def test_chi2_one_df_hand_values():
    # P(chi2_1 > 3.841459) = 0.05 and P(chi2_1 > 6.634897) = 0.01 (standard table values)
    assert chi2_sf_1df(3.841459) == pytest.approx(0.05, abs=1e-6)
    assert chi2_sf_1df(6.634897) == pytest.approx(0.01, abs=1e-6)
    assert chi2_sf_1df(0.0) == 1.0


def test_mcnemar_exact_and_chi2():
    a = [True] * 1 + [False] * 5 + [True] * 4 + [False] * 2   # 1 a-only, 5 b-only, 4 both right, 2 both wrong
    b = [False] * 1 + [True] * 5 + [True] * 4 + [False] * 2
    t = mcnemar(a, b)
    assert (t["a_only"], t["b_only"], t["method"]) == (1, 5, "exact")
    assert t["p_value"] == pytest.approx(14 / 64)
    # 10 vs 30 discordant: chi2 = (|10 - 30| - 1)^2 / 40 = 9.025; p = erfc(sqrt(9.025 / 2)) = 0.0026631...
    a = [True] * 10 + [False] * 30 + [True] * 5
    b = [False] * 10 + [True] * 30 + [True] * 5
    t = mcnemar(a, b)
    assert t["method"] == "chi2" and t["statistic"] == pytest.approx(9.025)
    assert t["p_value"] == pytest.approx(0.0026631, abs=1e-6)
    with pytest.raises(ValueError):
        mcnemar([True], [True, False])


def test_bootstrap_ci_seeded_and_sensible():
    x = np.array([1, 0, 1, 1, 0, 1, 0, 1, 1, 1], dtype=float)  # mean 0.7
    lo, hi = bootstrap_ci(x, seed=3)
    assert (lo, hi) == bootstrap_ci(x, seed=3)               # same seed, same interval
    assert 0.3 <= lo < 0.7 < hi <= 1.0
    # normal approximation: sd of the mean = sqrt(.7 * .3 / 10) = 0.145; 95% half-width ~0.28
    assert (hi - lo) == pytest.approx(2 * 1.96 * math.sqrt(0.21 / 10), abs=0.12)
    assert bootstrap_ci(np.ones(5)) == (1.0, 1.0)
    assert all(math.isnan(v) for v in bootstrap_ci([]))
    assert bootstrap_ci([1.0, np.nan, 1.0]) == (1.0, 1.0)     # NaN dropped


def records(rows):
    return pd.DataFrame(rows, columns=["system", "qid", "kind", "correct", "exact", "f1", "abstained", "hallucinated",
                                       "crag", "gold_retrieved", "latency_seconds", "tokens_in", "tokens_out",
                                       "grounding"])


def test_summarize_and_pairwise_on_hand_records():
    rows = []
    for i in range(4):  # A right on q0-q2, wrong on q3; B right on q0 only; q4 unanswerable, A abstains
        rows.append(["A", f"q{i}", "fact", i < 3, i < 3, 1.0 if i < 3 else 0.0, False, i >= 3, 1 if i < 3 else -1,
                     None, 1.0, 10, 2, np.nan])
        rows.append(["B", f"q{i}", "fact", i == 0, False, 0.5, i > 0, False, 1 if i == 0 else 0, True, 3.0, 50, 2, 0.5])
    rows.append(["A", "q4", "unanswerable", True, False, 0.0, True, False, 1, None, 1.0, 10, 2, np.nan])
    rows.append(["B", "q4", "unanswerable", False, False, 0.0, False, True, -1, False, 3.0, 50, 2, 1.0])
    s = summarize(records(rows)).set_index("system")
    assert s.loc["A", "accuracy"] == 0.75 and s.loc["B", "accuracy"] == 0.25       # answerable only
    assert s.loc["A", "hallucination"] == 0.2 and s.loc["B", "hallucination"] == 0.2
    assert s.loc["A", "crag"] == pytest.approx((1 + 1 + 1 - 1 + 1) / 5)
    assert s.loc["B", "crag"] == pytest.approx((1 + 0 + 0 + 0 - 1) / 5)
    assert s.loc["A", "unanswerable_abstained"] == 1.0 and s.loc["B", "unanswerable_abstained"] == 0.0
    assert s.loc["B", "gold_retrieved"] == 0.8 and math.isnan(s.loc["A", "gold_retrieved"])
    assert s.loc["A", "accuracy_lo"] <= 0.75 <= s.loc["A", "accuracy_hi"]
    t = pairwise_mcnemar(records(rows)).iloc[0]
    assert (t["a"], t["b"], t["a_right_b_wrong"], t["b_right_a_wrong"]) == ("A", "B", 3, 0)
    assert t["p_value"] == pytest.approx(2 / 8)  # exact: n = 3, k = 0 -> 2 * 1/8


def test_coverage_risk_orders_by_confidence():
    rows = [["R", f"q{i}", "fact", c, False, 0.0, False, not c, 0, True, 1.0, 1, 1, g]
            for i, (c, g) in enumerate([(True, 1.0), (True, 0.9), (False, 0.2), (False, 0.1)])]
    rows.append(["R", "q9", "fact", False, False, 0.0, True, False, 0, True, 1.0, 1, 1, np.nan])  # abstained
    cr = coverage_risk(records(rows), "grounding")
    assert list(cr["coverage"]) == [0.2, 0.4, 0.6, 0.8]
    assert list(cr["risk"]) == pytest.approx([0.0, 0.0, 1 / 3, 0.5])
    cb = coverage_risk(records([["C", "q1", "fact", True, False, 0, False, False, 1, None, 1, 1, 1, np.nan],
                                ["C", "q2", "fact", False, False, 0, False, True, -1, None, 1, 1, 1, np.nan]]), "grounding")
    assert len(cb) == 1 and cb.iloc[0]["coverage"] == 1.0 and cb.iloc[0]["risk"] == 0.5  # one operating point

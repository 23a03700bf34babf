"""Wilson intervals and the gate's one-sided paired test, against scipy and hand-computed values."""

import math

import numpy as np
import pytest

from corpora.significance import (paired_detectable, paired_score_z, paired_worse_test, proportion_ci, wilson_ci,
                                  z_quantile)


def test_wilson_matches_scipy_and_hand_values():
    stats = pytest.importorskip("scipy.stats")  # statsmodels is not installed; scipy's binomtest has Wilson too
    for k, n in [(0, 113), (1, 10), (5, 10), (10, 10), (57, 113), (3, 1000)]:
        ref = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert wilson_ci(k, n) == pytest.approx((ref.low, ref.high), abs=1e-9)
    # 0 of 113 by hand: upper = z^2 / (n + z^2) = 3.8415 / 116.8415 = 0.0329 (the bootstrap gives [0, 0])
    lo, hi = wilson_ci(0, 113)
    assert lo == 0.0 and hi == pytest.approx(z_quantile(0.975) ** 2 / (113 + z_quantile(0.975) ** 2))
    assert round(hi, 4) == 0.0329
    assert all(math.isnan(v) for v in wilson_ci(0, 0))
    for n in range(1, 300):  # the interval holds the share even where rounding would put an end past it
        for k in (0, n):
            lo, hi = wilson_ci(k, n)
            assert lo <= k / n <= hi
    assert proportion_ci([1, 0, np.nan, 1, True]) == wilson_ci(3, 4)


def test_score_statistic_uses_the_restricted_mle():
    """Tango's closed-form p_b is the maximum of the trinomial likelihood under P(worse) - P(better) = delta."""
    for worse, better, n, delta in [(6, 0, 10, 0.02), (14, 3, 40, 0.05), (2, 5, 30, 0.1), (0, 0, 10, 0.02)]:
        grid = np.linspace(1e-9, (1 - delta) / 2 - 1e-9, 200001)
        ll = (better * np.log(grid) + worse * np.log(grid + delta)
              + (n - worse - better) * np.log(1 - 2 * grid - delta))
        pb = grid[np.argmax(ll)]
        z = (worse - better - n * delta) / math.sqrt(n * (2 * pb + delta - delta ** 2))
        assert float(paired_score_z(worse, better, n, delta)) == pytest.approx(z, abs=1e-3)


def test_one_sided_exact_hand_values():
    # delta = 0, n = 1, one question worse: the tail is {1 worse}; sup over P(worse) = P(better) <= 1/2 is 1/2
    assert paired_worse_test(1, 0, 1, 0.0)["p_value"] == pytest.approx(0.5, abs=1e-9)
    # n = 2, both worse: the tail is {2 worse}: sup p^2 = 1/4 (the exact one-sided McNemar gives 1/4 too)
    assert paired_worse_test(2, 0, 2, 0.0)["p_value"] == pytest.approx(0.25, abs=1e-9)
    assert paired_worse_test(0, 0, 10, 0.02)["p_value"] == 1.0      # nothing changed
    assert paired_worse_test(10, 0, 10, 1.0)["p_value"] == 1.0      # a margin of 100 points cannot be passed


def test_one_sided_test_is_against_the_threshold_and_monotone():
    p = [paired_worse_test(k, 0, 10, 0.02)["p_value"] for k in range(7)]
    assert all(a >= b for a, b in zip(p, p[1:]))                     # more questions lost: smaller p
    assert p[6] < 0.025                                               # the 6/0 of 10 (60 points)
    assert paired_worse_test(6, 0, 10, 0.5)["p_value"] > 0.2          # 60 points lost is not surely > 50
    assert paired_worse_test(1, 0, 40, 0.02)["p_value"] > 0.5         # 2.5 points: noise
    assert paired_worse_test(6, 0, 10, 0.02)["p_value"] > paired_worse_test(6, 0, 10, 0.0)["p_value"]


def test_one_sided_test_keeps_its_level_on_the_null_boundary():
    """Simulated at H0's edge (P(worse) - P(better) = delta): rejections at 5% stay at or under 5%."""
    rng = np.random.default_rng(0)
    n, delta, pb, sims = 20, 0.05, 0.1, 600
    draws = rng.multinomial(n, [pb + delta, pb, 1 - 2 * pb - delta], size=sims)
    rejected = np.mean([paired_worse_test(int(w), int(b), n, delta)["p_value"] < 0.05 for w, b, _ in draws])
    assert rejected <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / sims)


def test_score_tail_above_the_exact_size_is_close_to_exact(monkeypatch):
    import corpora.significance as sig

    exact = paired_worse_test(40, 20, 400, 0.02)
    monkeypatch.setattr(sig, "EXACT_N", 100)
    score = sig.paired_worse_test(40, 20, 400, 0.02)
    assert (exact["method"], score["method"]) == ("exact", "score")
    assert score["p_value"] == pytest.approx(exact["p_value"], abs=0.01)


def test_detectable_change_solves_the_power_equation():
    n, delta, disc, alpha = 113, 0.02, 0.2, 0.05
    theta = paired_detectable(n, delta, disc, alpha)
    za, zb = z_quantile(1 - alpha), z_quantile(0.8)
    lhs = math.sqrt(n) * (theta - delta)
    assert lhs == pytest.approx(za * math.sqrt(disc - delta ** 2) + zb * math.sqrt(disc - theta ** 2), abs=1e-6)
    assert paired_detectable(1000, delta, disc, alpha) < theta < paired_detectable(10, delta, disc, alpha)
    assert paired_detectable(10, delta, 0.0, alpha) > 0.2            # 10 questions cannot see a 2-point drop
    assert math.isinf(paired_detectable(1, 0.02, 0.0, 0.001))

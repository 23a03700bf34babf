"""Confidence intervals and paired tests over per-question scores. Pure numpy + math (no scipy).
Shared by the report's tables (compare/aggregate.py) and the run diff and quality gate (history/gate.py).

bootstrap_ci: percentile bootstrap of the mean (Efron & Tibshirani 1993, ch. 13), seeded.
mcnemar:      paired test on correctness of two systems over the same questions (McNemar 1947);
              exact two-sided binomial test on the discordant pairs when there are fewer than 25 of them
              (the usual rule, e.g. statsmodels' recommendation), else chi-square with continuity correction.
"""

from __future__ import annotations

import math

import numpy as np

N_BOOT = 1000
EXACT_BELOW = 25  # discordant pairs below which McNemar uses the exact binomial


def bootstrap_ci(values, n_boot: int = N_BOOT, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """(low, high) percentile interval of the mean of `values` (NaNs dropped); (nan, nan) when empty."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(n_boot, len(x)))].mean(axis=1)  # (n_boot,)
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return float(lo), float(hi)


def binom_two_sided_half(k: int, n: int) -> float:
    """Exact two-sided p of k successes in n trials at p=0.5: 2 * P(X <= min(k, n-k)), capped at 1."""
    if n == 0:
        return 1.0
    k = min(k, n - k)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def chi2_sf_1df(x: float) -> float:
    """Survival function of chi-square with 1 degree of freedom: P(Z^2 > x) = erfc(sqrt(x / 2))."""
    return math.erfc(math.sqrt(max(x, 0.0) / 2))


def mcnemar(a_correct, b_correct) -> dict:
    """Paired McNemar test. a_correct, b_correct: equal-length booleans over the same questions.

    -> {"a_only": b01, "b_only": b10, "discordant", "method": "exact"|"chi2", "statistic", "p_value"}
    a_only: questions A got right and B wrong; b_only: the reverse.
    """
    a = np.asarray(a_correct, dtype=bool)
    b = np.asarray(b_correct, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"paired test needs equal lengths, got {a.shape} and {b.shape}")
    a_only, b_only = int((a & ~b).sum()), int((~a & b).sum())
    n = a_only + b_only
    if n < EXACT_BELOW:
        return {"a_only": a_only, "b_only": b_only, "discordant": n, "method": "exact",
                "statistic": float(min(a_only, b_only)), "p_value": binom_two_sided_half(a_only, n)}
    stat = (abs(a_only - b_only) - 1) ** 2 / n
    return {"a_only": a_only, "b_only": b_only, "discordant": n, "method": "chi2", "statistic": stat,
            "p_value": chi2_sf_1df(stat)}

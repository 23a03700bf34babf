"""Confidence intervals and paired tests over per-question scores. Pure numpy + math (no scipy).
Shared by the report's tables (compare/aggregate.py) and the run diff and quality gate (history/gate.py).

wilson_ci:    Wilson score interval of a proportion (Wilson 1927; Brown, Cai & DasGupta 2001 recommend it
              over the Wald and the bootstrap interval, which collapse to [0, 0] at 0 successes).
bootstrap_ci: percentile bootstrap of the mean (Efron & Tibshirani 1993, ch. 13), seeded; for means
              that are not proportions (CRAG score, latency).
mcnemar:      paired test on correctness of two systems over the same questions (McNemar 1947);
              exact two-sided binomial test on the discordant pairs when there are fewer than 25 of them
              (the usual rule, e.g. statsmodels' recommendation), else chi-square with continuity correction.
paired_worse_test, paired_detectable: the quality gate's one-sided paired test against a threshold and the
              smallest change it detects with a given power (section at the end of this file).
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

N_BOOT = 1000
EXACT_BELOW = 25  # discordant pairs below which McNemar uses the exact binomial


def z_quantile(p: float) -> float:
    """The standard normal quantile: z_quantile(0.975) = 1.959964."""
    return NormalDist().inv_cdf(p)


def wilson_ci(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """(low, high) Wilson score interval of k successes in n trials; (nan, nan) when n = 0.

    centre = (k + z^2/2) / (n + z^2), half-width = z / (n + z^2) * sqrt(k (n - k) / n + z^2 / 4).
    0 of 113 -> (0, 0.0329): the upper bound a bootstrap (0, 0) hides.
    """
    if n <= 0:
        return math.nan, math.nan
    z = z_quantile(1 - (1 - level) / 2)
    centre = (k + z * z / 2) / (n + z * z)
    half = z / (n + z * z) * math.sqrt(k * (n - k) / n + z * z / 4)
    share = k / n  # the interval holds it; min/max keep rounding (k = 0 or n) from putting it outside
    return max(0.0, min(centre - half, share)), min(1.0, max(centre + half, share))


def proportion_ci(values, level: float = 0.95) -> tuple[float, float]:
    """Wilson interval of the share of 1s in `values` (0/1 or booleans, NaNs dropped)."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    return wilson_ci(int(round(x.sum())), len(x), level)


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


# ---- one-sided paired test against a threshold (the quality gate) -------------------------------------------
# Per question, a 0/1 metric either got worse (old 1 -> new 0 for a metric that must not fall, old 0 -> new 1
# for one that must not rise), got better, or stayed. With theta = P(worse) - P(better), the share of
# questions lost net, the gate asks H0: theta <= delta (it worsened by at most the threshold) against
# H1: theta > delta (by more). The statistic is the restricted-MLE score statistic for a difference of paired
# proportions (Tango 1998, Statistics in Medicine 17:891-908; Nam 1997, Biometrics 53:1422-1430); its p is
# exact unconditional (Sidik 2003, "Exact unconditional tests for testing non-inferiority in matched-pairs
# design", Statistics in Medicine 22:265-278): the largest, over the nuisance P(better) on the H0 boundary,
# probability of a statistic at least the observed one. With delta = 0 this is Suissa & Shuster's (1991)
# exact unconditional McNemar test, one-sided. Above EXACT_N questions the normal tail of the same statistic.
EXACT_N = 500  # questions up to which the gate's paired test is exact (n^2 / 2 outcomes per nuisance value)
NUISANCE_GRID = 200  # nuisance values on the H0 boundary, then refined around the largest


def paired_score_z(worse, better, n: int, delta: float):
    """Tango's score statistic for H0: P(worse) - P(better) = delta; worse/better: counts (arrays broadcast).

    Z = (worse - better - n delta) / sqrt(n (2 p_b + delta - delta^2)), p_b the MLE of P(better) under H0:
    the positive root of 2n p^2 + B p + C = 0, B = -(worse + better) + delta (2n + better - worse),
    C = -better delta (1 - delta). Z = 0 where the variance is 0 (no discordance and delta = 0).
    """
    w, b = np.asarray(worse, dtype=float), np.asarray(better, dtype=float)
    B = -(w + b) + delta * (2 * n + b - w)
    C = -b * delta * (1 - delta)
    pb = (-B + np.sqrt(np.maximum(B * B - 8 * n * C, 0.0))) / (4 * n)
    var = n * (2 * pb + delta - delta * delta)
    safe = np.where(var > 1e-12, var, 1.0)
    return np.where(var > 1e-12, (w - b - n * delta) / np.sqrt(safe), 0.0)


def _log_multinomial(n: int, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    lf = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n + 1)))])  # log k! for k = 0..n
    return lf[n] - lf[w] - lf[b] - lf[n - w - b]


def _tail(logc, w, b, n, delta, p_better: float) -> float:
    """P(outcomes in the tail) when P(better) = p_better and P(worse) = p_better + delta."""
    pw, pt = p_better + delta, 1.0 - 2 * p_better - delta
    logp = logc.copy()
    for count, p in ((b, p_better), (w, pw), (n - w - b, pt)):
        if p <= 0:
            logp = np.where(count > 0, -np.inf, logp)
        else:
            logp = logp + count * math.log(p)
    return float(np.exp(logp).sum())


def paired_worse_test(worse: int, better: int, n: int, delta: float) -> dict:
    """One-sided p of H0 "worsened by at most delta" (a share, 0 <= delta < 1) on n paired 0/1 questions.
    -> {"p_value", "statistic" (Tango's Z), "method": "exact" | "score"}."""
    if n <= 0 or delta >= 1:
        return {"p_value": 1.0, "statistic": 0.0, "method": "exact"}
    z0 = float(paired_score_z(worse, better, n, delta))
    if n > EXACT_N:
        return {"p_value": 0.5 * math.erfc(z0 / math.sqrt(2)), "statistic": z0, "method": "score"}
    w, b = (a.ravel() for a in np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij"))
    keep = w + b <= n
    w, b = w[keep], b[keep]
    tail = paired_score_z(w, b, n, delta) >= z0 - 1e-9  # outcomes at least as far into H1 as the observed one
    w, b = w[tail], b[tail]
    logc = _log_multinomial(n, w, b)
    top = (1 - delta) / 2  # the largest P(better) on the boundary: P(worse) + P(better) <= 1
    grid = np.linspace(0.0, top, NUISANCE_GRID)
    tails = [_tail(logc, w, b, n, delta, p) for p in grid]
    i = int(np.argmax(tails))
    fine = np.linspace(grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)], 41)
    p = max(max(tails), *(_tail(logc, w, b, n, delta, q) for q in fine))
    return {"p_value": min(1.0, p), "statistic": z0, "method": "exact"}


def paired_detectable(n: int, delta: float, discordance: float, alpha: float, power: float = 0.8) -> float:
    """Smallest net share worsened (theta > delta) that the one-sided paired test finds with `power` at level
    `alpha` on n questions (normal approximation, as in Connor 1987's sample size for McNemar's test):
    sqrt(n) (theta - delta) = z_(1-alpha) sqrt(psi - delta^2) + z_power sqrt(psi - theta^2),
    psi = the discordant share, taken as max(discordance, theta) (a net loss of theta needs at least theta
    discordant questions). -> theta (a share), or inf when even theta = 1 is not detectable."""
    if n <= 0:
        return math.inf
    za, zb = z_quantile(1 - alpha), z_quantile(power)

    def gap(theta: float) -> float:
        psi = max(discordance, theta)
        return (math.sqrt(n) * (theta - delta) - za * math.sqrt(max(psi - delta * delta, 0.0))
                - zb * math.sqrt(max(psi - theta * theta, 0.0)))

    lo, hi = delta, 1.0
    if gap(hi) < 0:
        return math.inf
    for _ in range(60):  # bisection: gap rises with theta over [delta, 1]
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if gap(mid) < 0 else (lo, mid)
    return hi

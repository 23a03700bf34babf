"""Quality gate and run diff: per-question paired tests between a baseline run and a new run.

Both runs are paired by (system, question id); only questions answered in both count. Per (system, metric):
  rates (correct, hallucinated, abstained, exact, gold_retrieved: one 0/1 per question)
      delta = new rate - old rate; 95% CI: percentile bootstrap of the mean per-question difference;
      p: McNemar on the discordant questions (corpora/significance.py: exact binomial below 25, else chi2)
  means and quantiles (crag, f1, tokens, p50/p95 latency)
      delta and 95% CI: paired bootstrap (the same resampled questions in both runs) of the statistic's
      difference; p: twice the share of bootstrap differences on the far side of 0 (at least 1 / n_boot)
Identical per-question values give delta 0 and p = 1. These two-sided p-values ("did it change?") are the
diff's (`ragft runs diff`); the gate asks a one-sided question of each rule.

The gate (`--fail-on "accuracy:-0.02,hallucination:+0.02,p50_latency:+20%"`): each rule is one-sided, tested
against its threshold, not against 0: H0 "the metric moved in the failing direction by at most the threshold"
vs H1 "by more" (absolute, or relative with %: then the threshold is that share of the baseline's value).
  rates: the exact unconditional paired test of corpora/significance.py: paired_worse_test (Tango's score
      statistic for a paired difference against a margin, Sidik 2003's exact p; normal tail above 500 questions)
  means and quantiles: one-sided paired bootstrap: p = share of bootstrap changes (failing direction) at or
      within the threshold (Efron & Tibshirani 1993, ch. 16: the bootstrap achieved significance level)
A rule fails when its change is past the threshold AND its Holm-adjusted p (over every gated system x rule) is
below alpha; a change past the threshold that is within noise passes, and is reported as such. Each check also
prints the smallest change its question count detects with 80% power at Holm's strictest level (alpha / checks;
corpora/significance.py: paired_detectable for rates, (z_alpha + z_power) x the bootstrap standard error
otherwise) and the change past which it fails with that power (the same against the limit), with a warning when
the first is larger than the limit: such a gate cannot tell a change of the limit's size from none.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from corpora.config import check as check_options, opt  # check(): this module's gate check below
from corpora.errors import InputError
from corpora.significance import mcnemar, paired_detectable, paired_worse_test, z_quantile
from history.store import ANSWER_COLUMNS, get_answers, parse_run_id

# name -> (per-question column, questions counted, statistic, how shown). "answerable" = kind != unanswerable.
METRICS = {
    "accuracy": ("correct", "answerable", "rate", "pct"),
    "exact": ("exact", "answerable", "rate", "pct"),
    "f1": ("f1", "answerable", "mean", "num"),
    "hallucination": ("hallucinated", "all", "rate", "pct"),
    "abstention": ("abstained", "all", "rate", "pct"),
    "crag": ("crag", "all", "mean", "num"),
    "gold_retrieved": ("gold_retrieved", "all", "rate", "pct"),
    "p50_latency": ("latency_seconds", "all", "median", "sec"),
    "p95_latency": ("latency_seconds", "all", "q95", "sec"),
    "tokens_in": ("tokens_in", "all", "mean", "num"),
    "tokens_out": ("tokens_out", "all", "mean", "num"),
}
ALIASES = {"p50_latency_s": "p50_latency", "p95_latency_s": "p95_latency", "latency": "p50_latency",
           "hallucinated": "hallucination", "correct": "accuracy"}
N_BOOT = 2000
ALPHA = 0.05
POWER = 0.8  # the power at which the gate states the smallest change it can detect


@dataclass
class GateConfig:
    baseline: str = ""
    """Baseline run to compare with: a run id in the history or a compare run folder (default '': none)."""
    fail_on: str = ""
    """Thresholds like accuracy:-0.02,p50_latency:+20%: exit 1 when a change past one is significant (default '': none)."""
    alpha: float = opt(ALPHA, above=0.0, below=1.0, flag="significance", aliases=("alpha",))
    """Significance level of the gate's paired tests, Holm-adjusted, 0-1 (default 0.05)."""

    def __post_init__(self):
        check_options(self)
        if self.fail_on:
            parse_fail_on(self.fail_on)  # a bad threshold stops the command before the run, not after it


@dataclass
class Rule:
    metric: str
    sign: int  # +1: fail on a rise beyond amount; -1: fail on a fall beyond amount
    amount: float  # >= 0; a fraction of the baseline value when relative
    relative: bool
    text: str


# ---- per-question scores of a run ---------------------------------------------------------------------------

def to_float(v) -> float:
    if v is None or (isinstance(v, str) and v.strip() == ""):
        return math.nan
    if isinstance(v, str):
        low = v.strip().lower()
        if low in ("true", "false"):
            return 1.0 if low == "true" else 0.0
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def answers_from_records(records: pd.DataFrame) -> pd.DataFrame:
    """Compare records (any superset of the columns) -> system, qid, kind and the scored columns as floats."""
    out = records[["system", "qid", "kind"]].copy()
    out["qid"] = out["qid"].astype(str)
    for c in ANSWER_COLUMNS:
        out[c] = records[c].map(to_float) if c in records else math.nan
    return out.reset_index(drop=True)


def load_answers(source: str, history: str = "") -> tuple[pd.DataFrame, str]:
    """A baseline or run: a run id in the history ('12', '#12') or a compare run directory.
    -> (per-question scores, a label saying where they came from)."""
    run_id = parse_run_id(source)
    if run_id is not None:
        if not history:
            raise InputError(f"run id {source} needs a run history (--history)")
        ans = get_answers(history, run_id)
        if ans.empty:
            raise InputError(f"run {run_id} has no per-question answers (not a compare run?)", history)
        return ans, f"run {run_id}"
    path = Path(source)
    for name, reader in (("records.parquet", pd.read_parquet), ("records.csv", pd.read_csv)):
        if (path / name).is_file():
            try:
                return answers_from_records(reader(path / name)), str(path)
            except ImportError:
                continue
    raise InputError("not a run id from `ragft runs list` nor a compare run directory (no records.csv)", source)


# ---- paired differences ------------------------------------------------------------------------------------

def statistic(x: np.ndarray, how: str, axis=None) -> np.ndarray | float:
    if how in ("rate", "mean"):
        return np.mean(x, axis=axis)
    if how == "median":
        return np.median(x, axis=axis)
    return np.quantile(x, 0.95, axis=axis)


def paired_test(old: np.ndarray, new: np.ndarray, how: str, seed: int = 0, n_boot: int = N_BOOT) -> dict:
    """old, new: per-question values over the same questions (same order). -> old, new, delta, CI, p, test."""
    old, new = np.asarray(old, dtype=float), np.asarray(new, dtype=float)
    n = len(old)
    res = {"n": n, "old": float(statistic(old, how)), "new": float(statistic(new, how))}
    res["delta"] = res["new"] - res["old"]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))  # the same resampled questions for both runs: paired
    boot = statistic(new[idx], how, axis=1) - statistic(old[idx], how, axis=1)  # (n_boot,)
    res["delta_lo"], res["delta_hi"] = (float(v) for v in np.percentile(boot, [2.5, 97.5]))
    if how == "rate":
        t = mcnemar(old > 0.5, new > 0.5)
        res["p_value"], res["test"] = float(t["p_value"]), f"mcnemar-{t['method']} ({t['a_only']}/{t['b_only']})"
    else:
        if np.array_equal(old, new):
            p = 1.0
        else:
            p = 2 * min(float(np.mean(boot <= 0)), float(np.mean(boot >= 0)))
            p = min(1.0, max(p, 1.0 / n_boot))
        res["p_value"], res["test"] = p, "paired bootstrap"
    return res


def paired_diff(old: pd.DataFrame, new: pd.DataFrame, metrics: list[str] | None = None, seed: int = 0,
                alpha: float = ALPHA, n_boot: int = N_BOOT) -> pd.DataFrame:
    """One row per (system, metric) for systems in both runs: old, new, delta, delta_lo, delta_hi, rel_delta,
    p_value, test, significant (p < alpha), questions paired."""
    metrics = [canonical(m) for m in (metrics or list(METRICS))]
    rows, pairs = [], {}
    systems = [s for s in dict.fromkeys(new["system"]) if s in set(old["system"])]
    for system in systems:
        o = old[old["system"] == system].drop_duplicates("qid").set_index("qid")
        w = new[new["system"] == system].drop_duplicates("qid").set_index("qid")
        common = [q for q in w.index if q in o.index]
        for m in metrics:
            col, subset, how, _ = METRICS[m]
            qs = [q for q in common if subset == "all" or w.at[q, "kind"] != "unanswerable"]
            a, b = o.loc[qs, col].to_numpy(dtype=float), w.loc[qs, col].to_numpy(dtype=float)
            keep = ~(np.isnan(a) | np.isnan(b))  # e.g. gold_retrieved: only retrieval systems have it
            if keep.sum() == 0:
                continue
            r = paired_test(a[keep], b[keep], how, seed, n_boot)
            r["rel_delta"] = r["delta"] / abs(r["old"]) if r["old"] else (0.0 if r["delta"] == 0 else math.inf)
            r["significant"] = bool(r["p_value"] < alpha)
            rows.append({"system": system, "metric": m, **r})
            pairs[(system, m)] = (a[keep], b[keep])
    cols = ["system", "metric", "n", "old", "new", "delta", "delta_lo", "delta_hi", "rel_delta", "p_value", "test",
            "significant"]
    out = pd.DataFrame(rows, columns=cols)
    out.attrs["pairs"] = pairs  # (system, metric) -> (old, new) per-question values: the gate's one-sided tests
    return out


# ---- the gate -----------------------------------------------------------------------------------------------

def canonical(name: str) -> str:
    name = ALIASES.get(name.strip(), name.strip())
    if name not in METRICS:
        raise InputError(f"unknown metric {name!r}: choose from {', '.join(METRICS)}")
    return name


RULE = re.compile(r"^\s*([a-z0-9_]+)\s*:\s*([+-])\s*(\d+(?:\.\d*)?|\.\d+)\s*(%?)\s*$")


def parse_fail_on(spec: str) -> list[Rule]:
    """'accuracy:-0.02,hallucination:+0.02,p50_latency:+20%' -> rules. The sign is the direction that fails."""
    rules = []
    for part in [p for p in spec.split(",") if p.strip()]:
        m = RULE.match(part)
        if not m:
            raise InputError(f"bad --fail-on item {part.strip()!r}: write metric:+AMOUNT or metric:-AMOUNT, "
                             "AMOUNT absolute (0.02) or relative (20%)")
        metric, sign, amount, pct = m.groups()
        value = float(amount) / (100 if pct else 1)
        rules.append(Rule(canonical(metric), 1 if sign == "+" else -1, value, bool(pct), part.strip()))
    if not rules:
        raise InputError("--fail-on is empty")
    return rules


def holm(p: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order as given)."""
    order = np.argsort(p, kind="stable")
    adj, running = [0.0] * len(p), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        adj[i] = running
    return adj


def gate_test(old: np.ndarray, new: np.ndarray, how: str, rule: Rule, seed: int = 0,
              n_boot: int = N_BOOT) -> dict:
    """One rule's one-sided paired test: H0 "moved in rule.sign's direction by at most rule.amount" (a share of
    the baseline value when relative). old, new: per-question values over the same questions.
    -> {"p_value", "test", "discordance" (rates: share of questions that changed), "se" (others: bootstrap
    standard error of the change, in the rule's units)}."""
    old, new = np.asarray(old, dtype=float), np.asarray(new, dtype=float)
    n = len(old)
    base = float(statistic(old, how)) if n else math.nan
    if how == "rate":
        o, w = old > 0.5, new > 0.5
        old_only, new_only = int((o & ~w).sum()), int((~o & w).sum())
        worse, better = (old_only, new_only) if rule.sign < 0 else (new_only, old_only)
        delta = rule.amount * abs(base) if rule.relative else rule.amount
        t = paired_worse_test(worse, better, n, delta)
        return {"p_value": t["p_value"], "test": f"one-sided-{t['method']} ({old_only}/{new_only})",
                "discordance": (old_only + new_only) / n if n else 0.0, "se": math.nan, "margin": delta}
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))  # the same resampled questions for both runs: paired
    o_b, n_b = statistic(old[idx], how, axis=1), statistic(new[idx], how, axis=1)  # (n_boot,)
    change = n_b - o_b
    if rule.relative:
        change = change / abs(base) if base else np.where(change == 0, 0.0, np.inf)
    worse = rule.sign * change  # > rule.amount: past the threshold
    p = float(np.mean(worse <= rule.amount + 1e-12))
    se = float(np.std(worse))
    if se == 0:  # identical runs: the spread of the baseline's own statistic, as if the runs were unpaired
        se = float(np.std(o_b)) * math.sqrt(2) / (abs(base) if rule.relative and base else 1.0)
    return {"p_value": max(p, 1.0 / n_boot), "test": "one-sided bootstrap", "discordance": math.nan, "se": se,
            "margin": rule.amount}


def detectable(r: dict, how: str, alpha: float, against_limit: bool = True) -> float:
    """The smallest change in the failing direction that a check finds with POWER at level alpha, in the rule's
    units (a share, or relative): against the limit (what fails the gate), or against 0 (the resolution of
    this many questions: a limit below it cannot be told from no change)."""
    if how == "rate":
        theta = paired_detectable(int(r["n"]), r["margin"] if against_limit else 0.0, r["discordance"], alpha, POWER)
        if r["relative"]:
            return theta / abs(r["old"]) if r["old"] else math.inf
        return theta
    return (r["margin"] if against_limit else 0.0) + (z_quantile(1 - alpha) + z_quantile(POWER)) * r["se"]


def check(diff: pd.DataFrame, rules: list[Rule], alpha: float = ALPHA, seed: int = 0,
          n_boot: int = N_BOOT) -> pd.DataFrame:
    """One row per (gated system, rule): the diff's columns (its two-sided p as p_diff, its test as test_diff),
    change, limit, crossed, the rule's one-sided p_value and test, p_holm, failed (crossed and p_holm < alpha),
    detectable (the change past which it fails with 80% power at alpha / checks, the rule's units), resolution
    (the change it tells from none with that power) and underpowered (resolution larger than the limit).
    diff: paired_diff's table (its attrs carry the per-question values)."""
    pairs = diff.attrs.get("pairs")
    if pairs is None:
        raise ValueError("check() needs paired_diff's table: the one-sided tests use its per-question values")
    rows = []
    for rule in rules:
        for r in diff[diff["metric"] == rule.metric].to_dict("records"):
            change = r["rel_delta"] if rule.relative else r["delta"]
            crossed = bool(change * rule.sign > rule.amount)
            t = gate_test(*pairs[(r["system"], r["metric"])], METRICS[rule.metric][2], rule, seed, n_boot)
            rows.append({**r, "p_diff": r["p_value"], "test_diff": r["test"], **t, "rule": rule.text,
                         "change": change, "limit": rule.sign * rule.amount, "sign": rule.sign,
                         "relative": rule.relative, "crossed": crossed})
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["p_holm"] = holm(out["p_value"].tolist())
    out["failed"] = out["crossed"] & (out["p_holm"] < alpha)
    strict = alpha / len(out)  # Holm's first step: the level the most significant check must reach
    recs = out.to_dict("records")
    out["detectable"] = [detectable(r, METRICS[r["metric"]][2], strict) for r in recs]
    out["resolution"] = [detectable(r, METRICS[r["metric"]][2], strict, against_limit=False) for r in recs]
    out["underpowered"] = out["resolution"] > out["limit"].abs() + 1e-12
    return out


def fmt_value(v: float, metric: str) -> str:
    shown = METRICS[metric][3]
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return {"pct": f"{v:.1%}", "sec": f"{v:.2f} s", "num": f"{v:.3g}"}[shown]


def fmt_change(change: float, metric: str, relative: bool) -> str:
    if relative:
        return f"{change:+.1%}"
    return f"{change * 100:+.1f} points" if METRICS[metric][3] == "pct" else f"{change:+.3g}"


def gate_messages(result: pd.DataFrame) -> list[str]:
    """One line per gated (system, metric) that crossed its threshold: FAIL when significant, else 'within noise'."""
    lines = []
    for r in result.to_dict("records"):
        if not r["crossed"]:
            continue
        m = r["metric"]
        head = "FAIL" if r["failed"] else "pass"
        why = "" if r["failed"] else " -- within noise, not failing"
        lines.append(f"{head} {r['system']} {m}: {fmt_value(r['old'], m)} -> {fmt_value(r['new'], m)} "
                     f"({fmt_change(r['change'], m, r['relative'])}, limit {fmt_change(r['limit'], m, r['relative'])}; "
                     f"{r['test']} p={r['p_value']:.2g}, Holm p={r['p_holm']:.2g}, {r['n']} questions){why}")
    return lines


def power_messages(result: pd.DataFrame, alpha: float) -> list[str]:
    """One line per check: the smallest change in its failing direction it detects with 80% power, and a
    warning when that is larger than its threshold."""
    lines = []
    strict = alpha / len(result)
    for r in result.to_dict("records"):
        m, sign = r["metric"], r["sign"]
        way = "rise" if sign > 0 else "fall"
        size = fmt_change(r["resolution"], m, r["relative"]).lstrip("+")
        beyond = fmt_change(r["detectable"], m, r["relative"]).lstrip("+")
        seen = (f"no {way} is detectable with {POWER:.0%} power" if not math.isfinite(r["detectable"]) else
                f"it tells a {way} of {size} from none with {POWER:.0%} power; a true {way} of {beyond} fails the gate "
                f"{POWER:.0%} of the time")
        basis = (f"; discordance assumed {max(r['discordance'], 0):.0%} as observed, or the {way} itself if larger"
                 if METRICS[m][2] == "rate" else "; spread from the paired bootstrap")
        warn = (f" -- warning: {size} is larger than the limit {fmt_change(r['limit'], m, r['relative'])}: a {way} "
                "past the limit but smaller than that usually passes; more questions needed" if r["underpowered"] else "")
        lines.append(f"power {r['system']} {m}: with {r['n']} questions {seen} (one-sided, alpha {strict:.2g} = "
                     f"{alpha:g}/{len(result)} checks{basis}){warn}")
    return lines


def run_gate(baseline: pd.DataFrame, new: pd.DataFrame, spec: str, alpha: float = ALPHA,
             seed: int = 0) -> tuple[bool, list[str], pd.DataFrame]:
    """-> (passed, report lines, per-rule table). Raises InputError when nothing could be paired.
    Lines: the FAIL/pass line of each check past its threshold, a power line per check, the verdict last."""
    rules = parse_fail_on(spec)
    diff = paired_diff(baseline, new, sorted({r.metric for r in rules}, key=list(METRICS).index), seed=seed)
    result = check(diff, rules, alpha, seed)
    if result.empty:
        raise InputError("the baseline and this run share no system and question: nothing to gate")
    lines = gate_messages(result) + power_messages(result, alpha)
    failed = int(result["failed"].sum())
    tested = f"{len(result)} checks over {result['system'].nunique()} systems"
    lines.append(f"quality gate: {'FAILED' if failed else 'passed'} ({failed} of {tested} failed; "
                 f"significance: one-sided paired tests against each limit, Holm-adjusted, alpha {alpha})")
    return not failed, lines, result


def format_diff(diff: pd.DataFrame) -> pd.DataFrame:
    """The diff as display strings: old, new, delta [95% CI], p, significant."""
    rows = []
    for r in diff.to_dict("records"):
        m = r["metric"]
        pct = METRICS[m][3] == "pct"
        d = (lambda v: f"{v * 100:+.1f}") if pct else (lambda v: f"{v:+.3g}")
        rows.append({"system": r["system"], "metric": m, "n": r["n"], "old": fmt_value(r["old"], m),
                     "new": fmt_value(r["new"], m), "delta": d(r["delta"]) + (" pt" if pct else ""),
                     "95% CI": f"[{d(r['delta_lo'])}, {d(r['delta_hi'])}]", "p": f"{r['p_value']:.2g}",
                     "test": r["test"], "significant": "YES" if r["significant"] else "no"})
    return pd.DataFrame(rows)

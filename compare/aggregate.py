"""Per-question records -> tables: per system, per system and question kind, and paired tests.

Proportions (accuracy, hallucination: one 0/1 per question) carry 95% Wilson score intervals, means that are not
proportions (crag) 95% percentile-bootstrap intervals, seeded so the same records give the same table
(corpora/significance.py). accuracy, exact and f1 are over answerable questions; hallucination, abstention and crag
over all.
"""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pandas as pd

from compare.cost import cost_table
from compare.metrics import FAILURES
from corpora.significance import bootstrap_ci, mcnemar, proportion_ci

CI_METRICS = ("accuracy", "hallucination", "crag")  # columns that get _lo/_hi
PROPORTIONS = ("accuracy", "hallucination")  # of CI_METRICS, the 0/1-per-question ones: Wilson, not bootstrap


def _mean(s: pd.Series) -> float:
    s = s.dropna().astype(float)
    return float(s.mean()) if len(s) else math.nan


def _with_ci(row: dict, name: str, values: pd.Series, seed: int, n_boot: int) -> None:
    """row[name], row[name_lo], row[name_hi]: the mean and its 95% CI, Wilson when every value is 0 or 1."""
    v = values.dropna().astype(float)
    row[name] = float(v.mean()) if len(v) else math.nan
    if name in PROPORTIONS and v.isin((0.0, 1.0)).all():
        row[f"{name}_lo"], row[f"{name}_hi"] = proportion_ci(v.to_numpy())
    else:
        row[f"{name}_lo"], row[f"{name}_hi"] = bootstrap_ci(v.to_numpy(), n_boot, seed)


def score_row(g: pd.DataFrame, seed: int = 0, n_boot: int = 1000) -> dict:
    """Rates with 95% CIs (Wilson for accuracy and hallucination, bootstrap for crag) for one group of records."""
    answerable = g[g["kind"] != "unanswerable"]
    unanswerable = g[g["kind"] == "unanswerable"]
    row: dict = {"questions": len(g)}
    _with_ci(row, "accuracy", answerable["correct"], seed, n_boot)
    row["exact"] = _mean(answerable["exact"])
    row["f1"] = _mean(answerable["f1"]) if "f1" in g else math.nan
    _with_ci(row, "hallucination", g["hallucinated"], seed + 1, n_boot)
    row["abstention"] = _mean(g["abstained"])
    row["unanswerable_abstained"] = _mean(unanswerable["abstained"])
    _with_ci(row, "crag", g["crag"], seed + 2, n_boot)
    row["grounding"] = _mean(g["grounding"]) if "grounding" in g else math.nan
    row["gold_retrieved"] = _mean(g["gold_retrieved"].dropna().astype(float))
    return row


def summarize(records: pd.DataFrame, seed: int = 0, n_boot: int = 1000) -> pd.DataFrame:
    """One row per system (in first-seen order): scores with CIs, failure counts, latency, tokens, one-off cost."""
    rows = []
    for name, g in records.groupby("system", sort=False):
        row = {"system": name, **score_row(g, seed, n_boot)}
        if "failure" in g:
            for f in FAILURES:
                row[f] = int((g["failure"] == f).sum())
        row["p50_latency_s"] = float(g["latency_seconds"].median())
        row["p95_latency_s"] = float(g["latency_seconds"].quantile(0.95))
        row["tokens_in"], row["tokens_out"] = float(g["tokens_in"].mean()), float(g["tokens_out"].mean())
        for col in ("train_seconds", "index_seconds"):
            row[col] = float(g[col].iloc[0]) if col in g else math.nan
        row["leaked"] = int(g["leak"].sum()) if "leak" in g else 0
        rows.append(row)
    return pd.DataFrame(rows)


def summary_table(records: pd.DataFrame, meta: dict | None = None, injection_records: pd.DataFrame | None = None,
                  seed: int = 0, n_boot: int = 1000) -> pd.DataFrame:
    """summary.csv's table: summarize() + family, usd_per_1k, one_off_usd (compare/cost.py cost_table, priced with
    meta["prices"]) + injection_obeyed (compare/injection.py, only when there are injection records).

    meta: the run's run.json (compare/cost.py cost_table says which keys); without it the three cost columns are
    there and NaN, since a cost needs the run's prices, index build and adapters' cost records.
    """
    summary = summarize(records, seed=seed, n_boot=n_boot)
    if meta is not None:
        costs = cost_table(records, meta, meta["prices"])
        summary = summary.merge(costs[["system", "family", "usd_per_1k", "one_off_usd"]], on="system", how="left")
    else:
        summary = summary.assign(family=math.nan, usd_per_1k=math.nan, one_off_usd=math.nan)
    from compare.fit import fit_columns
    from compare.forgetting import general_columns

    summary = general_columns(fit_columns(summary, meta), meta)  # fit, fit_n, general_* (NaN without meta)
    if injection_records is not None and len(injection_records):
        from compare.injection import summarize_injection

        injection = summarize_injection(injection_records)
        summary = summary.merge(injection[["system", "injection_obeyed"]], on="system", how="left")
    return summary


def summarize_by_kind(records: pd.DataFrame, seed: int = 0, n_boot: int = 1000) -> pd.DataFrame:
    """One row per (system, kind): the same rates with CIs."""
    rows = []
    for (name, kind), g in records.groupby(["system", "kind"], sort=False):
        r = score_row(g, seed, n_boot)
        rows.append({"system": name, "kind": kind, "questions": r["questions"],
                     **{k: r[k] for k in ("accuracy", "accuracy_lo", "accuracy_hi", "hallucination",
                                          "hallucination_lo", "hallucination_hi", "crag", "crag_lo", "crag_hi")}})
    return pd.DataFrame(rows)


def pairwise_mcnemar(records: pd.DataFrame) -> pd.DataFrame:
    """McNemar on `correct` for each pair of systems, paired by question id (questions both answered)."""
    wide = records.pivot_table(index="qid", columns="system", values="correct", aggfunc="first")
    systems = list(dict.fromkeys(records["system"]))
    rows = []
    for a, b in combinations(systems, 2):
        both = wide[[a, b]].dropna()
        t = mcnemar(both[a].astype(bool).to_numpy(), both[b].astype(bool).to_numpy())
        rows.append({"a": a, "b": b, "questions": len(both), "a_right_b_wrong": t["a_only"],
                     "b_right_a_wrong": t["b_only"], "method": t["method"], "statistic": t["statistic"],
                     "p_value": t["p_value"]})
    return pd.DataFrame(rows, columns=["a", "b", "questions", "a_right_b_wrong", "b_right_a_wrong", "method",
                                       "statistic", "p_value"])


def failure_table(records: pd.DataFrame) -> pd.DataFrame:
    """Wrong answers per system by cause (counts)."""
    if "failure" not in records:
        return pd.DataFrame()
    wrong = records[records["failure"].fillna("") != ""]
    t = pd.crosstab(wrong["system"], wrong["failure"]).reindex(list(dict.fromkeys(records["system"])), fill_value=0)
    t = t.reindex(columns=[f for f in FAILURES if f in t.columns])
    t.columns.name = None
    return t.reset_index()


def coverage_risk(records: pd.DataFrame, confidence: str) -> pd.DataFrame:
    """Coverage-risk points per system: answer the most confident first (abstentions never count as answered).

    -> rows {"system", "coverage", "risk"}: coverage = answered share of all questions, risk = share of the
    answered that are wrong. Systems without confidence values give their single operating point.
    """
    rows = []
    for name, g in records.groupby("system", sort=False):
        answered = g[~g["abstained"].astype(bool)]
        conf = answered[confidence].astype(float) if confidence in answered else pd.Series(np.nan, index=answered.index)
        if conf.notna().sum() >= 2:
            order = np.argsort(-conf.fillna(-np.inf).to_numpy(), kind="stable")
            wrong = (~answered["correct"].astype(bool)).to_numpy()[order]
            n = np.arange(1, len(order) + 1)
            for k, (c, r) in enumerate(zip(n / len(g), np.cumsum(wrong) / n)):
                rows.append({"system": name, "coverage": float(c), "risk": float(r)})
        elif len(answered):
            rows.append({"system": name, "coverage": len(answered) / len(g),
                         "risk": float((~answered["correct"].astype(bool)).mean())})
    return pd.DataFrame(rows, columns=["system", "coverage", "risk"])

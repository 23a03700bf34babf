"""The recommendation: RAG, FT or FT+RAG, from the measured table and the user's stated load.

Inputs (CompareConfig fields): query_volume (questions per month), change_rate (share of facts that change per
month) and hallucination_tolerance (highest acceptable hallucination rate over all questions).
Model of the month, stated so every number can be checked:
  - each family is represented by its best measured system (highest CRAG score);
  - monthly $ = query_volume / 1000 * ($ per 1,000 questions) + upkeep: when change_rate > 0, an adapter arm
    retrains once a month (its measured training $), a retrieval arm re-indexes (its measured index build $);
  - a closed-book fine-tuned arm answers changed facts stale until the monthly retrain: on average half a month,
    so its effective accuracy = accuracy * (1 - change_rate / 2). Retrieval arms read the updated documents.
Rule: drop the systems that did not get the knowledge in (no more accurate than the closed-book `base`, or 0%
accurate when no base was run: a system that abstains on everything hallucinates little but answers nothing; a
lead over base that McNemar does not find significant is kept with a caution); keep those whose hallucination
rate is within tolerance; take the highest effective accuracy; if a cheaper kept system is not significantly
less accurate (paired McNemar p >= 0.05), take the cheaper one.
"""

from __future__ import annotations

import math

import pandas as pd

FAMILIES = ("RAG", "FT", "FT+RAG")
ALPHA = 0.05


def candidates(summary: pd.DataFrame, costs: pd.DataFrame, inputs: dict) -> pd.DataFrame:
    """Best system per family with its effective accuracy and monthly cost."""
    extra = [c for c in ("family", "usd_per_1k", "one_off_usd") if c not in summary]
    s = summary.merge(costs[["system", *extra]], on="system", how="left") if extra else summary
    rows = []
    for fam in FAMILIES:
        g = s[s["family"] == fam]
        if g.empty:
            continue
        best = g.sort_values(["crag", "accuracy"], ascending=False, kind="stable").iloc[0]
        volume, rate = inputs["query_volume"], inputs["change_rate"]
        upkeep = best["one_off_usd"] if rate > 0 else 0.0  # retrain and/or re-index once a month
        stale = rate / 2 if fam == "FT" else 0.0
        rows.append({
            "family": fam, "system": best["system"], "accuracy": best["accuracy"],
            "accuracy_lo": best["accuracy_lo"], "accuracy_hi": best["accuracy_hi"],
            "hallucination": best["hallucination"], "hallucination_lo": best["hallucination_lo"],
            "hallucination_hi": best["hallucination_hi"], "crag": best["crag"],
            "stale_share": stale, "effective_accuracy": best["accuracy"] * (1 - stale),
            "usd_per_1k": best["usd_per_1k"], "upkeep_usd_month": upkeep,
            "usd_month": volume / 1000 * best["usd_per_1k"] + upkeep,
            "within_tolerance": bool(best["hallucination"] <= inputs["hallucination_tolerance"]),
        })
    return pd.DataFrame(rows)


def _p(mcnemar: pd.DataFrame, a: str, b: str) -> float:
    m = mcnemar[((mcnemar["a"] == a) & (mcnemar["b"] == b)) | ((mcnemar["a"] == b) & (mcnemar["b"] == a))]
    return float(m["p_value"].iloc[0]) if len(m) else math.nan


def decide(summary: pd.DataFrame, costs: pd.DataFrame, mcnemar: pd.DataFrame, inputs: dict,
           freshness: pd.DataFrame | None = None) -> dict:
    """-> {"recommendation": "RAG"|"FT"|"FT+RAG"|None, "system", "reasons": [str], "candidates": DataFrame}."""
    c = candidates(summary, costs, inputs)
    if c.empty:
        return {"recommendation": None, "system": None, "candidates": c,
                "reasons": ["no RAG, FT or FT+RAG system was measured: add one to --systems"]}
    tol = inputs["hallucination_tolerance"]
    reasons = [f"inputs: {inputs['query_volume']:,} questions/month, {inputs['change_rate']:.0%} of facts change "
               f"per month, hallucination tolerance {tol:.0%}"]
    base = summary[summary["family"] == "base"] if "family" in summary else summary.iloc[:0]
    b = base.iloc[0] if not base.empty else None  # the closed-book reference
    c["learned"] = c["accuracy"] > (b["accuracy"] if b is not None else 0.0)
    for _, r in c.iterrows():
        reasons.append(
            f"{r['family']} = {r['system']}: accuracy {r['accuracy']:.1%} (95% CI {r['accuracy_lo']:.1%}-"
            f"{r['accuracy_hi']:.1%}), hallucination {r['hallucination']:.1%} ({r['hallucination_lo']:.1%}-"
            f"{r['hallucination_hi']:.1%}), effective accuracy {r['effective_accuracy']:.1%}"
            + (f" after {r['stale_share']:.1%} stale answers" if r["stale_share"] else "")
            + f", ${r['usd_month']:,.2f}/month (${r['usd_per_1k']:.4f} per 1,000 questions + ${r['upkeep_usd_month']:.4f} upkeep)")
    for _, r in c[~c["learned"]].iterrows():
        reasons.append(f"{r['system']} is out: it answered no question correctly" if b is None else
                       f"{r['system']} is out: accuracy {r['accuracy']:.1%} is no higher than the closed-book "
                       f"{b['system']}'s ({b['accuracy']:.1%}): the knowledge did not get in")
    c = c[c["learned"]]
    for _, r in c.iterrows() if b is not None else ():
        p = _p(mcnemar, r["system"], b["system"])
        if not p < ALPHA:
            reasons.append(f"caution: {r['system']} is above the closed-book {b['system']} ({r['accuracy']:.1%} vs "
                           f"{b['accuracy']:.1%}) but not significantly (McNemar p = {p:.3g}): more questions needed")
    if c.empty:
        reasons.append("no RAG, FT or FT+RAG system answers better than the base model: no recommendation; see "
                       "'Why answers were wrong' (retrieval misses vs generator errors) before choosing")
        return {"recommendation": None, "system": None, "reasons": reasons, "candidates": c}
    kept = c[c["within_tolerance"]]
    if kept.empty:
        pick = c.sort_values(["hallucination", "effective_accuracy"], ascending=[True, False], kind="stable").iloc[0]
        reasons.append(f"no system is within the {tol:.0%} hallucination tolerance; {pick['system']} hallucinates "
                       f"least ({pick['hallucination']:.1%}): recommended only as the least bad, with a warning")
    else:
        dropped = c[~c["within_tolerance"]]
        for _, r in dropped.iterrows():
            reasons.append(f"{r['system']} is out: hallucination {r['hallucination']:.1%} > tolerance {tol:.0%}")
        ranked = kept.sort_values("effective_accuracy", ascending=False, kind="stable")
        pick = ranked.iloc[0]
        reasons.append(f"{pick['system']} has the highest effective accuracy within tolerance "
                       f"({pick['effective_accuracy']:.1%})")
        for _, r in ranked.iloc[1:].iterrows():
            p = _p(mcnemar, pick["system"], r["system"])
            if r["usd_month"] < pick["usd_month"] and not (p < ALPHA):
                reasons.append(f"{r['system']} is cheaper (${r['usd_month']:,.2f} vs ${pick['usd_month']:,.2f}/month) "
                               f"and not significantly less accurate (McNemar p = {p:.3g}): it is chosen instead")
                pick = r
            elif not math.isnan(p):
                reasons.append(f"vs {r['system']}: McNemar p = {p:.3g} on correctness"
                               + (", significant" if p < ALPHA else ", not significant, and it costs more or the same"))
    if freshness is not None and not freshness.empty:
        for _, r in freshness.iterrows():
            reasons.append(f"freshness, {r['system']} {r['phase']}: accuracy on changed facts {r['accuracy']:.1%}, "
                           f"stale {r['stale']:.1%}, {r['absorb_seconds']:.1f} s to absorb the update")
    return {"recommendation": pick["family"], "system": pick["system"], "reasons": reasons, "candidates": c}


def format_decision(d: dict) -> str:
    head = (f"Recommendation: {d['recommendation']} ({d['system']})" if d["recommendation"]
            else "Recommendation: none")
    return "\n".join([head, *[f"  - {r}" for r in d["reasons"]]])

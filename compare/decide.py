"""The recommendation: RAG, FT or FT+RAG, from the measured table and the user's stated load.

Inputs (CompareConfig fields): query_volume (questions per month), change_rate (share of facts that change per
month), hallucination_tolerance (highest acceptable hallucination rate over all questions) and objective (what
picks the system when none is within the tolerance: crag | accuracy | hallucination).
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
less accurate (paired McNemar p >= 0.05), take the cheaper one. When none is within tolerance, the decision says
so, lists each candidate's accuracy-vs-hallucination trade-off and takes the best by the objective (CRAG score
= mean of +1 correct, 0 abstained, -1 hallucinated, by default; ties go to the less hallucinating).
Whenever the pick is significantly less accurate (McNemar p < 0.05) than another candidate, a reason says so
with both accuracies, the discordant counts and p, and why it is chosen anyway.
Also stated, when the summary has the columns: an adapter arm whose fit (closed-book accuracy on the train
questions it was taught) is below FIT_MIN is under-trained; a significant drop in general-knowledge accuracy
(general_delta < 0 with general_p < 0.05) is a cost of the fine-tuning.
"""

from __future__ import annotations

import math

import pandas as pd

from compare.cost import money
from compare.fit import FIT_FLAG as FIT_MIN  # 0.80: an adapter arm answering fewer of its train questions is under-trained

FAMILIES = ("RAG", "FT", "FT+RAG")
ALPHA = 0.05
# objective -> (summary column, higher is better, how it reads in a sentence)
OBJECTIVES = {"crag": ("crag", True, "CRAG score"), "accuracy": ("effective_accuracy", True, "effective accuracy"),
              "hallucination": ("hallucination", False, "hallucination rate")}


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
            "abstention": best.get("abstention", math.nan),
            "stale_share": stale, "effective_accuracy": best["accuracy"] * (1 - stale),
            "usd_per_1k": best["usd_per_1k"], "upkeep_usd_month": upkeep,
            "usd_month": volume / 1000 * best["usd_per_1k"] + upkeep,
            "within_tolerance": bool(best["hallucination"] <= inputs["hallucination_tolerance"]),
        })
    return pd.DataFrame(rows)


def _test(mcnemar: pd.DataFrame, a: str, b: str) -> dict:
    """The pairwise McNemar row of a and b, oriented: {"p", "a_only", "b_only"} (counts NaN when not given)."""
    m = mcnemar[((mcnemar["a"] == a) & (mcnemar["b"] == b)) | ((mcnemar["a"] == b) & (mcnemar["b"] == a))]
    if not len(m):
        return {"p": math.nan, "a_only": math.nan, "b_only": math.nan}
    r = m.iloc[0]
    first, second = r.get("a_right_b_wrong", math.nan), r.get("b_right_a_wrong", math.nan)
    a_only, b_only = (first, second) if r["a"] == a else (second, first)
    return {"p": float(r["p_value"]), "a_only": a_only, "b_only": b_only}


def _p(mcnemar: pd.DataFrame, a: str, b: str) -> float:
    return _test(mcnemar, a, b)["p"]


def _name(r) -> str:
    return f"{r['family']} ({r['system']})"


def _pct(v) -> str:
    return "-" if pd.isna(v) else f"{v:.1%}"


def _objective_value(r, objective: str) -> str:
    col = OBJECTIVES[objective][0]
    return f"{r[col]:+.2f}" if objective == "crag" else _pct(r[col])


def less_accurate_sentence(pick, other, test: dict, why: str) -> str:
    """The sentence that must come with a pick significantly less accurate than another candidate."""
    counts = (f"McNemar {int(test['b_only'])} vs {int(test['a_only'])} discordant, "
              if not (pd.isna(test["a_only"]) or pd.isna(test["b_only"])) else "McNemar ")
    return (f"{_name(pick)} is recommended although it is significantly less accurate than {_name(other)}: "
            f"{pick['accuracy']:.1%} vs {other['accuracy']:.1%} ({(pick['accuracy'] - other['accuracy']) * 100:+.1f} "
            f"points, {counts}p = {test['p']:.2g}); it is chosen {why}")


def adapter_notes(summary: pd.DataFrame) -> list[str]:
    """Under-trained adapter arms (fit < FIT_MIN) and significant losses of general knowledge, when measured."""
    notes = []
    if "family" not in summary:
        return notes
    arms = summary[summary["family"].isin(["FT", "FT+RAG"])]
    for _, r in arms.iterrows():
        fit = r.get("fit", math.nan)
        if not pd.isna(fit) and fit < FIT_MIN:
            notes.append(f"{r['system']}: fit {fit:.0%} < {FIT_MIN:.0%} (closed-book accuracy on the train questions "
                         "it was taught): under-trained; more epochs or memory tuning (--method memory) before reading "
                         "this as 'fine-tuning does not work'")
        delta, p = r.get("general_delta", math.nan), r.get("general_p", math.nan)
        if not (pd.isna(delta) or pd.isna(p)) and delta < 0 and p < ALPHA:
            acc = r.get("general_accuracy", math.nan)
            # general_delta is in percentage points (compare/forgetting.py), general_accuracy a proportion
            was = f" ({acc - delta / 100:.1%} -> {acc:.1%})" if not pd.isna(acc) else ""
            notes.append(f"{r['system']}: general-knowledge accuracy fell {-delta:.1f} points against the base "
                         f"model{was}, paired p = {p:.2g}: the fine-tuning cost general ability")
    return notes


def decide(summary: pd.DataFrame, costs: pd.DataFrame, mcnemar: pd.DataFrame, inputs: dict,
           freshness: pd.DataFrame | None = None) -> dict:
    """-> {"recommendation": "RAG"|"FT"|"FT+RAG"|None, "system", "reasons": [str], "candidates": DataFrame,
    "dropped": {system: why it is out}, "objective"}."""
    objective = inputs.get("objective", "crag")
    if objective not in OBJECTIVES:
        raise ValueError(f"objective {objective!r}: choose from {', '.join(OBJECTIVES)}")
    c = candidates(summary, costs, inputs)
    if c.empty:
        return {"recommendation": None, "system": None, "candidates": c, "dropped": {}, "objective": objective,
                "reasons": ["no RAG, FT or FT+RAG system was measured: add one to --systems"]}
    tol = inputs["hallucination_tolerance"]
    reasons = [f"inputs: {inputs['query_volume']:,} questions/month, {inputs['change_rate']:.0%} of facts change "
               f"per month, hallucination tolerance {tol:.0%}; objective when no system is within it: "
               f"{OBJECTIVES[objective][2]} (--objective {objective})"]
    dropped: dict[str, str] = {}
    base = summary[summary["family"] == "base"] if "family" in summary else summary.iloc[:0]
    b = base.iloc[0] if not base.empty else None  # the closed-book reference
    c["learned"] = c["accuracy"] > (b["accuracy"] if b is not None else 0.0)
    for _, r in c.iterrows():
        reasons.append(
            f"{r['family']} = {r['system']}: accuracy {r['accuracy']:.1%} (95% CI {r['accuracy_lo']:.1%}-"
            f"{r['accuracy_hi']:.1%}), hallucination {r['hallucination']:.1%} ({r['hallucination_lo']:.1%}-"
            f"{r['hallucination_hi']:.1%}), effective accuracy {r['effective_accuracy']:.1%}"
            + (f" after {r['stale_share']:.1%} stale answers" if r["stale_share"] else "")
            + f", {money(r['usd_month'])}/month ({money(r['usd_per_1k'])} per 1,000 questions + "
              f"{money(r['upkeep_usd_month'])} upkeep)")
    reasons += adapter_notes(summary)
    for _, r in c[~c["learned"]].iterrows():
        why = ("it answered no question correctly" if b is None else
               f"accuracy {r['accuracy']:.1%} is no higher than the closed-book {b['system']}'s ({b['accuracy']:.1%}): "
               "the knowledge did not get in")
        reasons.append(f"{r['system']} is out: {why}")
        dropped[r["system"]] = why
    c = c[c["learned"]]
    for _, r in c.iterrows() if b is not None else ():
        p = _p(mcnemar, r["system"], b["system"])
        if not p < ALPHA:
            reasons.append(f"caution: {r['system']} is above the closed-book {b['system']} ({r['accuracy']:.1%} vs "
                           f"{b['accuracy']:.1%}) but not significantly (McNemar p = {p:.3g}): more questions needed")
    if c.empty:
        reasons.append("no RAG, FT or FT+RAG system answers better than the base model: no recommendation; see "
                       "'Why answers were wrong' (retrieval misses vs generator errors) before choosing")
        return {"recommendation": None, "system": None, "reasons": reasons, "candidates": c, "dropped": dropped,
                "objective": objective}
    kept = c[c["within_tolerance"]]
    col, higher, label = OBJECTIVES[objective]
    if kept.empty:
        reasons.append(f"no system is within the {tol:.0%} hallucination tolerance; the trade-off of each candidate:")
        for _, r in c.iterrows():
            reasons.append(f"trade-off, {r['system']}: accuracy {r['accuracy']:.1%} for hallucination "
                           f"{r['hallucination']:.1%}, abstention {_pct(r['abstention'])}, CRAG {r['crag']:+.2f}")
        ranked = c.sort_values([col, "hallucination", "effective_accuracy"], ascending=[not higher, True, False],
                               kind="stable")
        pick = ranked.iloc[0]
        rest = ", ".join(f"{r['system']} {_objective_value(r, objective)}" for _, r in ranked.iloc[1:].iterrows())
        reasons.append(f"{pick['system']} has the {'highest' if higher else 'lowest'} {label} "
                       f"({_objective_value(pick, objective)}" + (f"; {rest}" if rest else "") + "), the stated "
                       f"objective: recommended with a warning, since it hallucinates {pick['hallucination']:.1%}, "
                       f"above the {tol:.0%} tolerance")
        why_for = {r["system"]: f"for its {label} ({_objective_value(pick, objective)} vs "
                                f"{_objective_value(r, objective)}), the stated objective (--objective {objective}), "
                                "with no system within the hallucination tolerance"
                   for _, r in c.iterrows()}
    else:
        why_for = {}
        for _, r in c[~c["within_tolerance"]].iterrows():
            why = f"hallucination {r['hallucination']:.1%} > tolerance {tol:.0%}"
            reasons.append(f"{r['system']} is out: {why}")
            dropped[r["system"]] = why
        ranked = kept.sort_values("effective_accuracy", ascending=False, kind="stable")
        pick = ranked.iloc[0]
        reasons.append(f"{pick['system']} has the highest effective accuracy within tolerance "
                       f"({pick['effective_accuracy']:.1%})")
        for _, r in ranked.iloc[1:].iterrows():
            p = _p(mcnemar, pick["system"], r["system"])
            if r["usd_month"] < pick["usd_month"] and not (p < ALPHA):
                reasons.append(f"{r['system']} is cheaper ({money(r['usd_month'])} vs {money(pick['usd_month'])}/month) "
                               f"and not significantly less accurate (McNemar p = {p:.3g}): it is chosen instead")
                pick = r
            elif not math.isnan(p):
                reasons.append(f"vs {r['system']}: McNemar p = {p:.3g} on correctness"
                               + (", significant" if p < ALPHA else ", not significant, and it costs more or the same"))
    for _, r in c.iterrows():  # the pick is never significantly less accurate than a candidate without saying so
        if r["system"] == pick["system"] or not r["accuracy"] > pick["accuracy"]:
            continue
        t = _test(mcnemar, pick["system"], r["system"])
        if not t["p"] < ALPHA:
            continue
        if r["system"] in dropped:
            why = (f"because {r['system']} hallucinates {r['hallucination']:.1%}, above the {tol:.0%} tolerance, and "
                   f"{pick['system']} {pick['hallucination']:.1%}")
        elif r["system"] in why_for:
            why = why_for[r["system"]]
        else:
            why = (f"for its effective accuracy ({pick['effective_accuracy']:.1%} vs {r['effective_accuracy']:.1%}, "
                   f"after {r['system']}'s stale answers)")
        reasons.append(less_accurate_sentence(pick, r, t, why))
    if freshness is not None and not freshness.empty:
        for _, r in freshness.iterrows():
            reasons.append(f"freshness, {r['system']} {r['phase']}: accuracy on changed facts {r['accuracy']:.1%}, "
                           f"stale {r['stale']:.1%}, {r['absorb_seconds']:.1f} s to absorb the update")
    return {"recommendation": pick["family"], "system": pick["system"], "reasons": reasons, "candidates": c,
            "dropped": dropped, "objective": objective}


def format_decision(d: dict) -> str:
    head = (f"Recommendation: {d['recommendation']} ({d['system']})" if d["recommendation"]
            else "Recommendation: none")
    return "\n".join([head, *[f"  - {r}" for r in d["reasons"]]])

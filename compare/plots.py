"""The run report's four plots (PNG, matplotlib Agg) from the tables compare/report.py renders.

  accuracy_hallucination.png  accuracy (answerable) vs hallucination (all), 95% bootstrap CIs as error bars
  coverage_risk.png           risk vs coverage when the most confident answers are given first
  latency.png                 median seconds per question by stage (compare/cost.py STAGES), stacked
  cost_volume.png             total $ vs question volume (log-log), break-even points starred
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from corpora.files import atomic_path

PLOTS = {
    "accuracy_hallucination.png": "Accuracy (answerable) vs hallucination (all questions), 95% bootstrap CIs",
    "coverage_risk.png": "Coverage-risk: answering the most confident first",
    "latency.png": "Median seconds per question by stage",
    "cost_volume.png": "Total cost vs question volume, with break-even points",
}


def make_plots(folder: Path, summary, cov, conf_col, latency, costs, breakeven) -> list[str]:
    """The four PLOTS into folder from the report's tables -> the PNG file names there (sorted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from compare.cost import STAGES

    folder.mkdir(parents=True, exist_ok=True)
    colors = {n: plt.cm.tab10(i % 10) for i, n in enumerate(summary["system"])}

    fig, ax = plt.subplots(figsize=(6, 4.5))
    markers = "osD^v<>p*h"
    for i, (_, r) in enumerate(summary.iterrows()):
        x, y = r["hallucination"], r["accuracy"]
        xerr = [[x - r["hallucination_lo"]], [r["hallucination_hi"] - x]]
        yerr = [[y - r["accuracy_lo"]], [r["accuracy_hi"] - y]] if not pd.isna(y) else None
        # distinct markers, later ones smaller: systems on the same spot stay visible
        ax.errorbar(x, 0 if pd.isna(y) else y, xerr=xerr, yerr=yerr, fmt=markers[i % len(markers)],
                    ms=max(4, 11 - 1.5 * i), capsize=4, color=colors[r["system"]], label=r["system"], alpha=0.85)
    ax.set_xlabel("hallucination rate (all questions)")
    ax.set_ylabel("accuracy (answerable questions)")
    ax.set_xlim(-0.02, 1.02), ax.set_ylim(-0.02, 1.02), ax.grid(alpha=0.3), ax.legend(fontsize=8)
    ax.set_title("Accuracy vs hallucination (95% CI)")
    save(fig, folder / "accuracy_hallucination.png")

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, g in cov.groupby("system", sort=False):
        if len(g) > 1:
            ax.plot(g["coverage"], g["risk"], label=name, color=colors.get(name))
        else:
            ax.plot(g["coverage"], g["risk"], "o", label=f"{name} (no confidence)", color=colors.get(name))
    ax.set_xlabel("coverage (share of questions answered)")
    ax.set_ylabel("risk (share of answered that are wrong)")
    ax.set_xlim(0, 1), ax.set_ylim(0, 1.02), ax.grid(alpha=0.3)
    if len(cov):
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "every answer abstained", ha="center")
    ax.set_title(f"Coverage-risk (ordered by {conf_col})")
    save(fig, folder / "coverage_risk.png")

    fig, ax = plt.subplots(figsize=(6, 0.6 * len(latency) + 1.5))
    left = np.zeros(len(latency))
    for stage, c in zip(STAGES, ("#4c72b0", "#dd8452", "#55a868", "#c44e52")):
        v = latency[f"{stage}_p50_s"].fillna(0).to_numpy()
        ax.barh(latency["system"], v, left=left, color=c, label=stage)
        left += v
    ax.invert_yaxis(), ax.set_xlabel("seconds per question (median of each stage)"), ax.legend(fontsize=8)
    ax.set_title("Latency breakdown")
    save(fig, folder / "latency.png")

    fig, ax = plt.subplots(figsize=(6, 4.5))
    vol = np.logspace(1, 8, 200)
    for _, r in costs.iterrows():
        ax.plot(vol, r["one_off_usd"] + r["usd_per_1k"] / 1000 * vol, label=r["system"], color=colors.get(r["system"]))
    per = costs.set_index("system")
    for _, b in breakeven.iterrows():
        v = b["break_even_questions"]
        if np.isfinite(v) and v > 0:
            a = per.loc[b["fine_tuned"]]
            y = a["one_off_usd"] + a["usd_per_1k"] / 1000 * v
            ax.plot([v], [y], "k*", ms=10)
            ax.annotate(f"{b['fine_tuned']} = {b['versus']}\n{v:,.0f} q", (v, y), fontsize=7,
                        textcoords="offset points", xytext=(5, -12))
    ax.set_xscale("log"), ax.set_yscale("log"), ax.grid(alpha=0.3, which="both"), ax.legend(fontsize=8)
    ax.set_xlabel("questions answered"), ax.set_ylabel("total $ (one-off + per question)")
    ax.set_title("Cost vs volume (*: break-even)")
    save(fig, folder / "cost_volume.png")
    plt.close("all")
    return sorted(p.name for p in folder.glob("*.png"))


def save(fig, path: Path) -> None:
    """PNG at 100 dpi via a unique temp file (two renders of one folder never share a temp name)."""
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")

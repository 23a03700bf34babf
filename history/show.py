"""`ragft runs list | show | diff`: the run history (history/store.py) as text, and the configs of those verbs.

list_text   the runs, newest first
show_text   one run: config and its hash, git commit, corpus hash, models, machine, summary rows
diff_text   two compare runs: paired per-question deltas, 95% CIs, p-values (history/gate.py);
            two bench runs: every figure old, new and new/old (figure_diff)
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from corpora.config import check, opt
from corpora.errors import InputError
from history.store import DEFAULT_DB, get_run, list_runs, parse_run_id

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class RunsListConfig:
    history: str = DEFAULT_DB
    """SQLite run history to read (default ragft-runs.db)."""
    kind: str = ""
    """Only runs of this kind: compare, bench-all, bench-scale, bench-retrieval, bench-training (default '': all)."""
    limit: int = opt(20, min=0)
    """Newest N runs (default 20; 0: all)."""

    def __post_init__(self):
        check(self)


@dataclass
class RunsShowConfig:
    run_id: str = ""
    """Run id, as `ragft runs list` shows it."""
    history: str = DEFAULT_DB
    """SQLite run history to read (default ragft-runs.db)."""

    def __post_init__(self):
        check(self)


@dataclass
class RunsDiffConfig:
    old: str = ""
    """Earlier run: an id in the history or a compare run folder."""
    new: str = ""
    """Later run: an id in the history or a compare run folder."""
    history: str = DEFAULT_DB
    """SQLite run history to read (default ragft-runs.db)."""
    metrics: str = ""
    """Metrics to compare, comma-separated (default '': all of history/gate.py METRICS)."""
    alpha: float = opt(0.05, above=0.0, below=1.0, flag="significance", aliases=("alpha",))
    """Significance level of each paired test, per metric and system, not adjusted, 0-1 (default 0.05)."""
    seed: int = opt(0, min=0)
    """Seed of the bootstrap resampling (default 0)."""

    def __post_init__(self):
        check(self)


SHOW_COLUMNS = ("system", "questions", "accuracy", "accuracy_lo", "accuracy_hi", "hallucination", "abstention", "crag",
                "gold_retrieved", "p50_latency_s", "p95_latency_s", "tokens_in", "tokens_out", "train_seconds",
                "index_seconds")


def list_text(path: str, kind: str = "", limit: int = 0) -> str:
    """`ragft runs list`: the recorded runs as a text table, newest first ("(no runs recorded)" when none)."""
    df = list_runs(path, kind, limit)
    return df.to_string(index=False, float_format=lambda v: f"{v:.0f}") if len(df) else "(no runs recorded)"


def show_text(path: str, run_id: str) -> str:
    """`ragft runs show`: one run's provenance lines (config, commit, corpus, models, machine) and summary rows."""
    rid = parse_run_id(run_id)
    if rid is None:
        raise InputError(f"run id must be a number (`ragft runs list`), got {run_id!r}")
    r = get_run(path, rid)
    m = r["machine"]
    commit = (r["git_commit"] or "(not in a git repository)") + (" (uncommitted changes)" if r["git_dirty"] else "")
    lines = [f"run {r['id']}: {r['kind']}, {r['started_at']} -> {r['finished_at']}",
             f"  config hash {r['config_hash']}   git {commit}",
             f"  corpus {r['corpus'] or '-'} (hash {r['corpus_hash'] or '-'})   run dir {r['run_dir'] or '-'}",
             f"  models {json.dumps(r['models'], sort_keys=True)}",
             f"  machine {m.get('cpu', m.get('machine'))}, {m.get('cpus_usable', m.get('cpus'))} cores, "
             f"{m.get('memory_gib', '?')} GiB, {m.get('platform')}, python {m.get('python')}"
             + (f", torch {m['torch']} x{m.get('torch_threads')}" if "torch" in m else "")
             + (f", {m['gpu']}" if "gpu" in m else ""),
             f"  config {json.dumps(r['config'], sort_keys=True)}",
             f"  per-question answers stored: {r['n_answers']}", ""]
    s = r["summary"]
    if "system" in s:
        s = s[[c for c in SHOW_COLUMNS if c in s]]
    lines.append(s.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return "\n".join(lines)


def config_changes(old: dict, new: dict) -> list[str]:
    """"key: old -> new" for each setting that differs (output paths, gate inputs and timings left out)."""
    skip = ("out", "history", "baseline", "fail_on", "check", "seconds")
    keys = [k for k in dict.fromkeys([*old, *new]) if k not in skip and old.get(k) != new.get(k)]
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys]


def diff_text(cfg: RunsDiffConfig) -> tuple[str, pd.DataFrame]:
    """Compare runs: paired per-question deltas with 95% CIs and p-values; bench runs: figure ratios."""
    from history.gate import METRICS, format_diff, load_answers, paired_diff  # numpy, pandas: only for a diff

    ids = [parse_run_id(cfg.old), parse_run_id(cfg.new)]
    runs = [get_run(cfg.history, i) if i is not None else None for i in ids]
    head = []
    if all(runs):
        a, b = runs
        head.append(f"run {a['id']} ({a['kind']}, {a['started_at']}, commit {(a['git_commit'] or '-')[:10]}) -> "
                    f"run {b['id']} ({b['kind']}, {b['started_at']}, commit {(b['git_commit'] or '-')[:10]})")
        changes = config_changes(a["config"], b["config"])
        head.append("config: " + ("; ".join(changes) if changes else "identical") +
                    ("" if a["corpus_hash"] == b["corpus_hash"] else
                     f"; corpus hash {a['corpus_hash']} -> {b['corpus_hash']}"))
        if a["kind"] != b["kind"]:
            raise InputError(f"cannot diff a {a['kind']} run with a {b['kind']} run")
        if a["kind"] != "compare":
            table = figure_diff(a["summary"], b["summary"])
            return "\n".join(head) + "\n\n" + table.to_string(index=False, float_format=lambda v: f"{v:.4g}"), table
    metrics = [m for m in cfg.metrics.split(",") if m.strip()] or None
    old, old_label = load_answers(cfg.old, cfg.history)
    new, new_label = load_answers(cfg.new, cfg.history)
    diff = paired_diff(old, new, metrics, seed=cfg.seed, alpha=cfg.alpha)
    if diff.empty:
        raise InputError(f"{old_label} and {new_label} share no system and question")
    shown = format_diff(diff)
    timing = diff["metric"].map(lambda m: METRICS[m][3] == "sec")
    n_sig, t_sig = int(diff.loc[~timing, "significant"].sum()), int(diff.loc[timing, "significant"].sum())
    head.append(f"{old_label} -> {new_label}: paired by question; significant at p < {cfg.alpha}: {n_sig} of "
                f"{int((~timing).sum())} answer metrics, {t_sig} of {int(timing.sum())} latency metrics (seconds on "
                "this machine: they move with its load). McNemar for rates, paired bootstrap otherwise; 95% CIs "
                "by paired bootstrap.")
    return "\n".join(head) + "\n\n" + shown.to_string(index=False), diff


def figure_diff(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """Bench runs: every numeric column of rows with the same name -> old, new, new/old."""
    import pandas as pd

    rows = []
    o = {r["name"]: r for r in old.to_dict("records")}
    for r in new.to_dict("records"):
        if r["name"] not in o:
            continue
        for col, v in r.items():
            ov = o[r["name"]].get(col)
            if col == "name" or not isinstance(v, (int, float)) or isinstance(v, bool) or not isinstance(ov, (int, float)):
                continue
            rows.append({"figure": r["name"] if col == "value" else f"{r['name']} {col}", "old": ov, "new": v,
                         "new/old": v / ov if ov else math.nan})
    return pd.DataFrame(rows, columns=["figure", "old", "new", "new/old"])

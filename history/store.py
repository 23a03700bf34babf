"""Run history: every `compare` and `bench` run recorded in one SQLite file (stdlib sqlite3).

Default file: ./ragft-runs.db (HistoryConfig.history, `--history PATH`; "" or "off" records nothing).
Tables (schema version in PRAGMA user_version):
  runs     one row per run: kind (compare | bench-all | bench-scale | ...), start/finish timestamps (UTC ISO),
           config JSON and its hash, git commit (+ dirty flag) of the repository the command ran in, corpus
           name and hash, model and adapter ids, machine description, run directory
  summary  the run's summary rows in order: name (system or benchmark part) and the row as JSON
  answers  compare runs: one row per (system, question) with the per-question scores the paired tests need
           (correct, hallucinated, abstained, crag, exact, f1, gold_retrieved, latency, tokens), so
           `ragft runs diff` and the quality gate work without the run directory (runs/ is not kept by CI)
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from corpora.errors import InputError

DEFAULT_DB = "ragft-runs.db"
SCHEMA_VERSION = 1
# Per-question columns kept for paired tests (history/gate.py); missing ones are stored as NULL.
ANSWER_COLUMNS = ("correct", "hallucinated", "abstained", "crag", "exact", "f1", "gold_retrieved",
                  "latency_seconds", "tokens_in", "tokens_out")
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    config_json TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    git_commit TEXT,
    git_dirty INTEGER,
    corpus TEXT,
    corpus_hash TEXT,
    models_json TEXT NOT NULL,
    machine_json TEXT NOT NULL,
    run_dir TEXT
);
CREATE TABLE IF NOT EXISTS summary (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    pos INTEGER NOT NULL,
    name TEXT NOT NULL,
    row_json TEXT NOT NULL,
    PRIMARY KEY (run_id, pos)
);
CREATE TABLE IF NOT EXISTS answers (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    system TEXT NOT NULL,
    qid TEXT NOT NULL,
    kind TEXT NOT NULL,
    {", ".join(f"{c} REAL" for c in ANSWER_COLUMNS)},
    PRIMARY KEY (run_id, system, qid)
);
"""


@dataclass
class HistoryConfig:
    history: str = DEFAULT_DB
    """SQLite file where runs are recorded ('' or 'off': do not record)."""


# ---- what a run is recorded with ----------------------------------------------------------------------------

def now_utc() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def config_hash(config: dict) -> str:
    """sha256 of the config as canonical JSON (sorted keys), 16 hex digits. Output paths are left out, so
    two runs with the same settings into different directories share the hash."""
    keep = {k: v for k, v in config.items() if k not in ("out", "history", "baseline", "fail_on", "check")}
    return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:16]


def git_state(cwd: str | Path = ".") -> tuple[str | None, bool | None]:
    """(HEAD commit, has uncommitted changes) of the git repository containing cwd; (None, None) outside one."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None, None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=30)
        return head.stdout.strip(), bool(dirty.stdout.strip()) if dirty.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None, None


def machine() -> dict:
    """What the figures were measured on: OS, CPU model, usable cores, memory, Python, torch, GPU."""
    info = {"platform": platform.platform(), "python": platform.python_version(), "machine": platform.machine(),
            "hostname": platform.node(), "cpus": os.cpu_count()}
    if hasattr(os, "sched_getaffinity"):
        info["cpus_usable"] = len(os.sched_getaffinity(0))
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["memory_gib"] = round(int(line.split()[1]) / 2**20, 1)
                break
    except OSError:
        pass
    import sys

    if "torch" in sys.modules:  # only when the run loaded it: importing torch here would cost seconds
        torch = sys.modules["torch"]
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    return info


def file_sha(path: Path) -> str | None:
    if not path.is_file():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def corpus_hash(name_or_path: str) -> str | None:
    """sha256 of the corpus's documents and questions as loaded (any format), 16 hex digits."""
    from corpora import load_corpus

    try:
        c = load_corpus(name_or_path)
    except InputError:
        return None
    payload = json.dumps([c.docs, c.qa, c.updates, c.qa_updates], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


# ---- the database -------------------------------------------------------------------------------------------

def enabled(path: str) -> bool:
    return bool(path) and path.lower() != "off"


def connect(path: str | Path) -> sqlite3.Connection:
    path = Path(path)
    if path.parent != Path("") and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = sqlite3.connect(path, timeout=30)
        con.execute("PRAGMA foreign_keys = ON")
        version = con.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise InputError(f"run history written by a newer ragft (schema {version} > {SCHEMA_VERSION})", str(path))
        con.executescript(SCHEMA)
        con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except sqlite3.DatabaseError as e:
        raise InputError(f"not a ragft run history ({e})", str(path)) from None
    return con


def _plain(v):
    """JSON-safe scalar: numpy scalars to Python, NaN to None."""
    if hasattr(v, "item") and not isinstance(v, (list, dict, str)):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def record_run(path: str | Path, kind: str, config: dict, summary: list[dict], *, started_at: str,
               corpus: str | None = None, corpus_hash: str | None = None, models: dict | None = None,
               run_dir: str | None = None, answers: pd.DataFrame | None = None, name_key: str = "system",
               cwd: str | Path = ".") -> int:
    """Insert one run (and its summary rows and per-question answers) in one transaction -> its id."""
    commit, dirty = git_state(cwd)
    rows = [{k: _plain(v) for k, v in r.items()} for r in summary]
    con = connect(path)
    try:
        with con:
            cur = con.execute(
                "INSERT INTO runs (kind, started_at, finished_at, config_json, config_hash, git_commit, git_dirty, "
                "corpus, corpus_hash, models_json, machine_json, run_dir) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (kind, started_at, now_utc(), json.dumps(config, sort_keys=True, default=str), config_hash(config),
                 commit, None if dirty is None else int(dirty), corpus, corpus_hash,
                 json.dumps(models or {}, sort_keys=True, default=str), json.dumps(machine(), sort_keys=True),
                 run_dir))
            run_id = cur.lastrowid
            con.executemany("INSERT INTO summary (run_id, pos, name, row_json) VALUES (?,?,?,?)",
                            [(run_id, i, str(r.get(name_key, i)), json.dumps(r, default=str)) for i, r in enumerate(rows)])
            if answers is not None and len(answers):
                cols = [c for c in ANSWER_COLUMNS]
                data = []
                for rec in answers.to_dict("records"):
                    vals = []
                    for c in cols:
                        v = _plain(rec.get(c))
                        vals.append(None if v is None or v == "" else float(v))
                    data.append((run_id, rec["system"], str(rec["qid"]), rec["kind"], *vals))
                con.executemany(f"INSERT INTO answers (run_id, system, qid, kind, {', '.join(cols)}) "
                                f"VALUES ({', '.join('?' * (4 + len(cols)))})", data)
    finally:
        con.close()
    return run_id


def record_compare(path: str | Path, config: dict, records: pd.DataFrame, summary: pd.DataFrame, *,
                   started_at: str, run_dir: str | None = None) -> int:
    """A finished `ragft compare`: its config, summary rows, per-question scores and what it ran with."""
    run_json = {}
    if run_dir and (Path(run_dir) / "run.json").is_file():
        run_json = json.loads((Path(run_dir) / "run.json").read_text())
    adapters = {k: {"path": v.get("adapter"), "sha": file_sha(Path(v["adapter"]) / "adapter_model.safetensors")
                    if v.get("adapter") else None}
                for k, v in (run_json.get("adapters") or {}).items()}
    models = {"generator": config.get("generator"), "embedder": config.get("embedder"), "adapters": adapters,
              "index_corpus_hash": (run_json.get("index") or {}).get("corpus_hash")}
    corpus = config.get("corpus")
    return record_run(path, "compare", config, summary.to_dict("records"), started_at=started_at, corpus=corpus,
                      corpus_hash=corpus_hash(corpus) if corpus else None, models=models, run_dir=run_dir,
                      answers=records)


# ---- reading it back ----------------------------------------------------------------------------------------

def open_existing(path: str | Path) -> sqlite3.Connection:
    if not Path(path).is_file():
        raise InputError("no run history here yet (run `ragft compare` or `ragft bench` first, or pass --history)",
                         str(path))
    return connect(path)


def list_runs(path: str | Path, kind: str = "", limit: int = 0) -> pd.DataFrame:
    """One row per run, newest first: id, kind, started, seconds, corpus, config hash, commit, systems/parts."""
    con = open_existing(path)
    try:
        q = ("SELECT r.id, r.kind, r.started_at, r.finished_at, r.corpus, r.config_hash, r.git_commit, r.git_dirty, "
             "r.run_dir, (SELECT group_concat(name, ',') FROM (SELECT name FROM summary s WHERE s.run_id = r.id "
             "ORDER BY pos)) AS rows FROM runs r")
        args: list = []
        if kind:
            q += " WHERE r.kind = ?"
            args.append(kind)
        q += " ORDER BY r.id DESC" + (f" LIMIT {int(limit)}" if limit > 0 else "")
        df = pd.read_sql_query(q, con, params=args)
    finally:
        con.close()
    df["seconds"] = (pd.to_datetime(df["finished_at"]) - pd.to_datetime(df["started_at"])).dt.total_seconds()
    df["rows"] = df["rows"].map(lambda r: r if not isinstance(r, str) or len(r) <= 48 else r[:45] + "...")
    df["commit"] = df["git_commit"].map(lambda c: c[:10] if isinstance(c, str) else "") + \
        df["git_dirty"].map(lambda d: "+" if d == 1 else "")
    return df[["id", "kind", "started_at", "seconds", "corpus", "config_hash", "commit", "rows", "run_dir"]]


def get_run(path: str | Path, run_id: int) -> dict:
    """The run's row with config, models and machine parsed, "summary" as a DataFrame, "n_answers"."""
    con = open_existing(path)
    try:
        con.row_factory = sqlite3.Row
        row = con.execute("SELECT * FROM runs WHERE id = ?", (int(run_id),)).fetchone()
        if row is None:
            raise InputError(f"no run {run_id} in the run history", str(path))
        run = dict(row)
        summary = [json.loads(r["row_json"]) for r in
                   con.execute("SELECT row_json FROM summary WHERE run_id = ? ORDER BY pos", (int(run_id),))]
        run["n_answers"] = con.execute("SELECT count(*) FROM answers WHERE run_id = ?", (int(run_id),)).fetchone()[0]
    finally:
        con.close()
    for k in ("config", "models", "machine"):
        run[k] = json.loads(run.pop(f"{k}_json"))
    run["summary"] = pd.DataFrame(summary)
    return run


def get_answers(path: str | Path, run_id: int) -> pd.DataFrame:
    """Per-question scores of a compare run: system, qid, kind and ANSWER_COLUMNS (NaN where not scored)."""
    con = open_existing(path)
    try:
        df = pd.read_sql_query("SELECT * FROM answers WHERE run_id = ? ORDER BY rowid", con, params=(int(run_id),))
    finally:
        con.close()
    return df.drop(columns=["run_id"])


def latest_run(path: str | Path, kind: str = "") -> int | None:
    con = open_existing(path)
    try:
        q = "SELECT max(id) FROM runs" + (" WHERE kind = ?" if kind else "")
        return con.execute(q, (kind,) if kind else ()).fetchone()[0]
    finally:
        con.close()


def parse_run_id(text: str) -> int | None:
    """'12' or '#12' -> 12; anything else (a path) -> None."""
    t = str(text).strip().lstrip("#")
    return int(t) if t.isdigit() else None


# ---- `ragft runs list | show | diff` and recording bench runs ------------------------------------------------

@dataclass
class RunsListConfig:
    history: str = DEFAULT_DB
    """SQLite run history to read."""
    kind: str = ""
    """Only runs of this kind: compare, bench-all, bench-scale, bench-retrieval, bench-training."""
    limit: int = 20
    """Newest N runs (0: all)."""


@dataclass
class RunsShowConfig:
    run_id: str = ""
    """Run id (`ragft runs list`)."""
    history: str = DEFAULT_DB
    """SQLite run history to read."""


@dataclass
class RunsDiffConfig:
    old: str = ""
    """Earlier run: an id in the history or a compare run directory."""
    new: str = ""
    """Later run: an id in the history or a compare run directory."""
    history: str = DEFAULT_DB
    """SQLite run history to read."""
    metrics: str = ""
    """Metrics to compare, comma-separated (default: all of history/gate.py METRICS)."""
    alpha: float = 0.05
    """Significance level of each paired test (per metric and system, not adjusted)."""
    seed: int = 0
    """Seed of the bootstrap resampling."""


SHOW_COLUMNS = ("system", "questions", "accuracy", "accuracy_lo", "accuracy_hi", "hallucination", "abstention", "crag",
                "gold_retrieved", "p50_latency_s", "p95_latency_s", "tokens_in", "tokens_out", "train_seconds",
                "index_seconds")


def flat_figures(res: dict, prefix: str = "") -> dict[str, float]:
    """Numeric scalars of a (nested) benchmark result dict as {"a.b": value}; lists and strings left out."""
    out = {}
    for k, v in res.items():
        if isinstance(v, dict):
            out.update(flat_figures(v, f"{prefix}{k}."))
        elif isinstance(v, (int, float)) and not isinstance(v, bool) or hasattr(v, "item"):
            out[f"{prefix}{k}"] = float(v)
    return out


def record_bench(path: str, kind: str, config: dict, res: dict, started_at: str, models: dict | None = None) -> int | None:
    """A finished `ragft bench ...` run: one summary row per figure. None when the history is off."""
    if not enabled(path):
        return None
    rows = [{"name": k, "value": v} for k, v in flat_figures(res).items()]
    return record_run(path, kind, config, rows, started_at=started_at, name_key="name", models=models)


def show_text(path: str, run_id: str) -> str:
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
    skip = ("out", "history", "baseline", "fail_on", "check", "seconds")
    keys = [k for k in dict.fromkeys([*old, *new]) if k not in skip and old.get(k) != new.get(k)]
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys]


def diff_text(cfg: RunsDiffConfig) -> tuple[str, pd.DataFrame]:
    """Compare runs: paired per-question deltas with 95% CIs and p-values; bench runs: figure ratios."""
    from history.gate import METRICS, format_diff, load_answers, paired_diff

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

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
This file writes and reads the store; history/show.py formats it for `ragft runs list | show | diff`, and
history/gate.py tests one run against another. pandas is imported inside the functions that return frames.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from corpora.config import check
from corpora.errors import InputError
from corpora.files import file_sha, text_sha

if TYPE_CHECKING:
    import pandas as pd

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
    """SQLite file where runs are recorded (default ragft-runs.db; '' or 'off': do not record)."""

    def __post_init__(self):
        check(self)


# ---- what a run is recorded with ----------------------------------------------------------------------------

def now_utc() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def config_hash(config: dict) -> str:
    """sha256 of the config as canonical JSON (sorted keys), 16 hex digits. Output paths are left out, so
    two runs with the same settings into different directories share the hash."""
    keep = {k: v for k, v in config.items() if k not in ("out", "history", "baseline", "fail_on", "check")}
    return text_sha(json.dumps(keep, sort_keys=True, default=str))


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


def corpus_hash(name_or_path: str) -> str | None:
    """sha256 of the corpus's documents and questions as loaded (any format), 16 hex digits."""
    from corpora import load_corpus

    try:
        c = load_corpus(name_or_path)
    except InputError:
        return None
    payload = json.dumps([c.docs, c.qa, c.updates, c.qa_updates], sort_keys=True, ensure_ascii=False)
    return text_sha(payload)


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
        from corpora.outputs import sqlite_io_error

        io = sqlite_io_error(e, path)  # read-only, full disk, cannot open: the path and the errno, not "not a history"
        if io is not None:
            raise io from None
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
    except sqlite3.OperationalError as e:  # a full disk mid-write: the path and the errno (the CLI: one line)
        from corpora.outputs import sqlite_io_error

        io = sqlite_io_error(e, path)
        if io is None:
            raise
        raise io from None
    finally:
        con.close()
    return run_id


def adapter_sha(adapter: str | None) -> str | None:
    """sha256 (16 hex digits) of what an ft arm ran with: a peft adapter's adapter_model.safetensors (the value
    older runs recorded); a full / hft model's *.safetensors, or an ft-multi folder's per-cluster adapters, as
    the sha of their shas in name order. None when there is no adapter or no weights file."""
    if not adapter or not Path(adapter).is_dir():
        return None
    p = Path(adapter)
    if (p / "adapter_model.safetensors").is_file():
        return file_sha(p / "adapter_model.safetensors")
    files = sorted(p.glob("*.safetensors")) or sorted(p.glob("*/adapter_model.safetensors"))
    return text_sha(" ".join(f"{f.relative_to(p)}:{file_sha(f)}" for f in files)) if files else None


def record_compare(path: str | Path, config: dict, records: pd.DataFrame, summary: pd.DataFrame, *,
                   started_at: str, run_dir: str | None = None) -> int:
    """A finished `ragft compare`: its config, summary rows, per-question scores and what it ran with."""
    run_json = {}
    if run_dir and (Path(run_dir) / "run.json").is_file():
        run_json = json.loads((Path(run_dir) / "run.json").read_text())
    adapters = {k: {"path": v.get("adapter"), "sha": adapter_sha(v.get("adapter"))}
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
    import pandas as pd

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
    import pandas as pd

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
    import pandas as pd

    con = open_existing(path)
    try:
        df = pd.read_sql_query("SELECT * FROM answers WHERE run_id = ? ORDER BY rowid", con, params=(int(run_id),))
    finally:
        con.close()
    return df.drop(columns=["run_id"])


def parse_run_id(text: str) -> int | None:
    """'12' or '#12' -> 12; anything else (a path) -> None."""
    t = str(text).strip().lstrip("#")
    return int(t) if t.isdigit() else None


# ---- recording bench runs ---------------------------------------------------------------------------------

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

"""Run history in SQLite: what a run is recorded with, and `ragft runs list | show | diff`."""

import json
import sqlite3
import subprocess

import numpy as np
import pandas as pd
import pytest

from history import show as S
from history import store as H
from corpora.errors import InputError


def fake_records(correct_rag: list[bool]) -> pd.DataFrame:
    """Compare records for base (all wrong) and rag over the same answerable questions."""
    rows = []
    for system, correct in (("base", [False] * len(correct_rag)), ("rag", correct_rag)):
        for i, c in enumerate(correct):
            rows.append({"system": system, "qid": f"q{i}", "kind": "fact", "question": f"Q{i}?", "answer": "x",
                         "correct": c, "hallucinated": not c, "abstained": False, "crag": 1 if c else -1,
                         "exact": c, "f1": float(c), "gold_retrieved": True if system == "rag" else None,
                         "latency_seconds": 1.0 + 0.01 * i, "tokens_in": 100, "tokens_out": 8})
    return pd.DataFrame(rows)


def summary_of(records: pd.DataFrame) -> pd.DataFrame:
    return records.groupby("system", sort=False).agg(accuracy=("correct", "mean"),
                                                     p50_latency_s=("latency_seconds", "median")).reset_index()


def record(db, records, **config):
    cfg = {"corpus": "atlantis", "systems": "base,rag", "top_k": 3, "generator": "smollm2-135m",
           "embedder": "minilm-l6", "out": "runs/x", **config}
    return H.record_compare(db, cfg, records, summary_of(records), started_at=H.now_utc(), run_dir=None)


def test_record_and_read_back(tmp_path):
    db = tmp_path / "h.db"
    recs = fake_records([True, False, True, True])
    a = record(db, recs)
    b = record(db, recs, out="runs/y")  # same settings, other directory: same config hash
    c = record(db, recs, top_k=0)
    run = H.get_run(db, a)
    assert run["kind"] == "compare" and run["corpus"] == "atlantis"
    assert run["corpus_hash"] == H.corpus_hash("atlantis") and len(run["corpus_hash"]) == 16
    assert run["config"]["top_k"] == 3 and run["models"]["generator"] == "smollm2-135m"
    assert {"platform", "python", "cpus"} <= set(run["machine"])
    assert run["started_at"] <= run["finished_at"]
    assert H.get_run(db, b)["config_hash"] == run["config_hash"] != H.get_run(db, c)["config_hash"]
    assert list(run["summary"]["system"]) == ["base", "rag"] and run["summary"]["accuracy"].iloc[1] == 0.75
    assert run["n_answers"] == 8
    ans = H.get_answers(db, a)
    assert list(ans.columns[:3]) == ["system", "qid", "kind"]
    assert ans[ans.system == "rag"]["correct"].tolist() == [1.0, 0.0, 1.0, 1.0]
    assert ans[ans.system == "base"]["gold_retrieved"].isna().all()
    listed = H.list_runs(db)
    assert listed["id"].tolist() == [c, b, a] and listed["rows"].iloc[0] == "base,rag"
    assert H.list_runs(db, kind="bench-all").empty
    with pytest.raises(InputError):
        H.get_run(db, 99)


def test_git_commit_of_the_working_repo(tmp_path):
    assert H.git_state(tmp_path) == (None, None)
    run = lambda *a: subprocess.run(["git", *a], cwd=tmp_path, check=True, capture_output=True)  # noqa: E731
    run("init", "-q")
    (tmp_path / "f.txt").write_text("1")
    run("add", "f.txt")
    run("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "x")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    assert H.git_state(tmp_path) == (head, False)
    (tmp_path / "f.txt").write_text("2")
    assert H.git_state(tmp_path) == (head, True)


def test_not_a_history_file(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_text("not sqlite at all " * 100)
    with pytest.raises(InputError):
        H.list_runs(bad)
    with pytest.raises(InputError):
        H.list_runs(tmp_path / "missing.db")


def cli(capsys, *args) -> tuple[int, str, str]:
    from cli.main import main

    with pytest.raises(SystemExit) as e:
        main(list(args))
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def test_runs_cli_list_show_diff(tmp_path, capsys):
    db = str(tmp_path / "h.db")
    rng = np.random.default_rng(1)
    good = list(rng.random(40) < 0.6)
    a = record(db, fake_records(good))
    b = record(db, fake_records(good))
    broken = record(db, fake_records([False] * 40), top_k=0)

    code, out, _ = cli(capsys, "runs", "list", "--history", db)
    assert code == 0 and [int(line.split()[0]) for line in out.splitlines()[1:]] == [broken, b, a]

    code, out, _ = cli(capsys, "runs", "show", str(a), "--history", db)
    assert code == 0 and f"run {a}: compare" in out and "config hash" in out and "machine" in out
    assert "rag" in out and "0.6" in out

    code, out, _ = cli(capsys, "runs", "diff", str(a), str(b), "--history", db)
    assert code == 0 and "config: identical" in out and "0 of 17 answer metrics, 0 of 4 latency" in out
    assert "YES" not in out

    code, out, _ = cli(capsys, "runs", "diff", str(a), str(broken), "--history", db)
    assert code == 0 and "top_k: 3 -> 0" in out
    rag_acc = next(line for line in out.splitlines() if line.split()[:2] == ["rag", "accuracy"])
    assert "YES" in rag_acc and f"{-100 * sum(good) / 40:+.1f} pt" in rag_acc
    base_acc = next(line for line in out.splitlines() if line.split()[:2] == ["base", "accuracy"])
    assert base_acc.split()[-1] == "no"

    code, _, err = cli(capsys, "runs", "show", "99", "--history", db)
    assert code == 2 and "no run 99" in err


def test_bench_rows_and_figure_diff(tmp_path):
    db = tmp_path / "h.db"
    res = {"ratio": 1.2, "memory_ratio": 0.9, "ragft": {"tokens_per_second": 100.0, "peak": 5}, "runs": [1, 2]}
    a = H.record_bench(str(db), "bench-training", {"steps": 3}, res, H.now_utc())
    b = H.record_bench(str(db), "bench-training", {"steps": 3}, {**res, "ratio": 0.6}, H.now_utc())
    assert H.record_bench("off", "bench-training", {}, res, H.now_utc()) is None
    names = H.get_run(db, a)["summary"]["name"].tolist()
    assert names == ["ratio", "memory_ratio", "ragft.tokens_per_second", "ragft.peak"]
    text, table = S.diff_text(S.RunsDiffConfig(old=str(a), new=str(b), history=str(db)))
    assert table.set_index("figure").loc["ratio", "new/old"] == pytest.approx(0.5)
    assert "config: identical" in text


def test_schema_is_plain_sqlite(tmp_path):
    db = tmp_path / "h.db"
    record(db, fake_records([True, False]))
    con = sqlite3.connect(db)
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"runs", "summary", "answers"} <= tables
    row = con.execute("SELECT config_json, machine_json FROM runs").fetchone()
    assert json.loads(row[0])["top_k"] == 3 and "platform" in json.loads(row[1])

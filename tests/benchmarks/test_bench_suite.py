"""`ragft bench all`: the regression check on side-by-side ratios, the committed baseline, a real run."""

import json
from dataclasses import replace
from pathlib import Path

import pytest

from benchmarks.suite import (FIGURES, BenchAllConfig, check_figures, load_baseline, settings, write_baseline)
from corpora.errors import InputError

BASELINE = Path(__file__).resolve().parents[2] / "benchmarks" / "baseline.json"


def test_committed_baseline_matches_the_default_settings():
    """.ci/run checks `ragft bench all` (defaults) against benchmarks/baseline.json: they must be comparable."""
    found, figures, _ = load_baseline(str(BASELINE))
    assert found == settings(BenchAllConfig())
    assert set(figures) <= set(FIGURES)
    assert {k for k, (kind, _) in FIGURES.items() if kind != "absolute"} <= set(figures)


def test_check_figures_rules():
    cfg = BenchAllConfig(max_drop=0.3, max_quality_drop=0.02)
    base = {"retrieval.bm25s_speedup": 100.0, "training.memory_ratio": 1.0, "retrieval.hnsw_recall@10": 0.98,
            "retrieval.flat_qps": 1000.0}
    same = check_figures(base, dict(base), cfg)
    assert len(same) == 4 and not any(r["failed"] for r in same)
    worse = {"retrieval.bm25s_speedup": 69.0, "training.memory_ratio": 1.31, "retrieval.hnsw_recall@10": 0.95,
             "retrieval.flat_qps": 10.0}
    failed = {r["figure"] for r in check_figures(base, worse, cfg) if r["failed"]}
    assert failed == {"retrieval.bm25s_speedup", "training.memory_ratio", "retrieval.hnsw_recall@10"}
    within = {"retrieval.bm25s_speedup": 71.0, "training.memory_ratio": 1.29, "retrieval.hnsw_recall@10": 0.97,
              "retrieval.flat_qps": 10.0}
    assert not any(r["failed"] for r in check_figures(base, within, cfg))
    # absolute throughputs are gated only when asked
    assert any(r["failed"] for r in check_figures(base, worse, replace(cfg, absolute_drop=0.5))
               if r["figure"] == "retrieval.flat_qps")


def test_baseline_round_trip_and_bad_files(tmp_path):
    cfg = BenchAllConfig(docs=300)
    p = write_baseline(tmp_path / "b.json", cfg, {"retrieval.bm25s_speedup": 12.5})
    found, figures, label = load_baseline(str(p))
    assert found["docs"] == 300 and figures == {"retrieval.bm25s_speedup": 12.5} and label == str(p)
    (tmp_path / "bad.json").write_text("{}")
    for bad in (str(tmp_path / "bad.json"), str(tmp_path / "missing.json")):
        with pytest.raises(InputError):
            load_baseline(bad)


@pytest.mark.model  # MiniLM embedder
def test_bench_all_retrieval_part_fails_a_check_and_is_recorded(tmp_path, capsys):
    """A real (small) retrieval benchmark through the CLI; a baseline it cannot meet makes it exit 1."""
    from cli.main import main
    from history.store import get_run

    cfg = BenchAllConfig(parts="retrieval", docs=300)
    impossible = tmp_path / "baseline.json"
    write_baseline(impossible, cfg, {"retrieval.bm25_identical_top10": 2.0, "retrieval.bm25s_speedup": 1e-9})
    db = tmp_path / "h.db"
    with pytest.raises(SystemExit) as e:
        main(["bench", "all", "--parts", "retrieval", "--docs", "300", "--check", str(impossible),
              "--history", str(db)])
    out = capsys.readouterr().out
    assert e.value.code == 1
    assert "FAIL retrieval.bm25_identical_top10" in out and "bench check: FAILED (1 of 2" in out
    run = get_run(db, 1)
    assert run["kind"] == "bench-all" and "retrieval.hnsw_speedup" in run["summary"]["name"].tolist()
    assert json.loads(impossible.read_text())["settings"]["docs"] == 300
    # other settings than the baseline's: refused before running anything
    with pytest.raises(SystemExit) as e:
        main(["bench", "all", "--parts", "retrieval", "--docs", "400", "--check", str(impossible), "--history", "off"])
    assert e.value.code == 2 and "other settings" in capsys.readouterr().err

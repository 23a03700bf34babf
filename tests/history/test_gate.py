"""The quality gate: --fail-on parsing, paired tests against hand-computed values, noise vs a real drop."""

import math

import numpy as np
import pandas as pd
import pytest

from history.gate import (answers_from_records, check, holm, load_answers, paired_diff, paired_test,
                          parse_fail_on, run_gate)
from corpora.errors import InputError


def answers(system: str, correct: list[bool], latency: list[float] | None = None, unanswerable: int = 0) -> pd.DataFrame:
    """Per-question scores of one system: len(correct) answerable questions, then `unanswerable` abstentions."""
    n = len(correct)
    lat = latency or [1.0] * (n + unanswerable)
    rows = [{"system": system, "qid": f"q{i}", "kind": "fact", "correct": float(c), "hallucinated": float(not c),
             "abstained": 0.0, "crag": 1.0 if c else -1.0, "latency_seconds": lat[i]} for i, c in enumerate(correct)]
    rows += [{"system": system, "qid": f"u{j}", "kind": "unanswerable", "correct": 1.0, "hallucinated": 0.0,
              "abstained": 1.0, "crag": 0.0, "latency_seconds": lat[n + j]} for j in range(unanswerable)]
    return answers_from_records(pd.DataFrame(rows))


def test_parse_fail_on():
    rules = parse_fail_on("accuracy:-0.02, hallucination:+0.02,p50_latency:+20%")
    assert [(r.metric, r.sign, r.amount, r.relative) for r in rules] == [
        ("accuracy", -1, 0.02, False), ("hallucination", 1, 0.02, False), ("p50_latency", 1, 0.2, True)]
    assert parse_fail_on("p50_latency_s:+5%")[0].metric == "p50_latency"
    for bad in ("accuracy:0.02", "accuracy", "accuracy:-x", "speed:+1", ""):
        with pytest.raises(InputError):
            parse_fail_on(bad)


def test_paired_test_matches_hand_computed_mcnemar():
    old = np.array([1] * 10 + [0] * 10, dtype=float)
    new = np.array([0] * 10 + [0] * 10, dtype=float)  # 10 discordant pairs, all lost: exact p = 2 / 2^10
    r = paired_test(old, new, "rate")
    assert r["delta"] == pytest.approx(-0.5)
    assert r["p_value"] == pytest.approx(2 / 1024)
    assert r["delta_lo"] < -0.3 and r["delta_hi"] < 0
    same = paired_test(old, old, "rate")
    assert same["delta"] == 0 and same["p_value"] == 1.0 and same["delta_lo"] == same["delta_hi"] == 0
    # continuous: identical values p = 1; a uniform 50% slowdown is significant
    lat = np.linspace(1, 2, 30)
    assert paired_test(lat, lat, "median")["p_value"] == 1.0
    slow = paired_test(lat, lat * 1.5, "median")
    assert slow["delta"] == pytest.approx(np.median(lat) * 0.5) and slow["p_value"] < 0.01


def test_holm_hand_computed():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_gate_passes_identical_and_noise_fails_real_drop():
    rng = np.random.default_rng(0)
    base_correct = list(rng.random(40) < 0.6)
    old = pd.concat([answers("base", [False] * 40, unanswerable=5), answers("rag", base_correct, unanswerable=5)])
    spec = "accuracy:-0.02,hallucination:+0.02,p50_latency:+20%"

    ok, lines, table = run_gate(old, old.copy(), spec)
    assert ok and not table["crossed"].any() and "passed" in lines[-1]

    # noise: one question lost (-2.5 points, past the -2 point threshold) is not significant
    noisy = list(base_correct)
    noisy[base_correct.index(True)] = False
    new = pd.concat([answers("base", [False] * 40, unanswerable=5), answers("rag", noisy, unanswerable=5)])
    ok, lines, table = run_gate(old, new, spec)
    assert ok
    row = table[(table.system == "rag") & (table.metric == "accuracy")].iloc[0]
    assert row["crossed"] and not row["failed"] and row["change"] == pytest.approx(-1 / 40)
    assert any(line.startswith("pass rag accuracy") and "within noise" in line for line in lines)

    # broken retriever: every answer wrong -> significant accuracy loss and hallucination rise, both named
    broken = pd.concat([answers("base", [False] * 40, unanswerable=5), answers("rag", [False] * 40, unanswerable=5)])
    ok, lines, table = run_gate(old, broken, spec)
    assert not ok
    failed = table[table["failed"]]
    assert set(zip(failed.system, failed.metric)) == {("rag", "accuracy"), ("rag", "hallucination")}
    acc = failed[failed.metric == "accuracy"].iloc[0]
    assert acc["change"] == pytest.approx(-sum(base_correct) / 40)
    fail_line = next(line for line in lines if line.startswith("FAIL rag accuracy"))
    assert f"{-100 * sum(base_correct) / 40:+.1f} points" in fail_line and "limit -2.0 points" in fail_line
    assert "FAILED" in lines[-1]


def test_gate_latency_relative_threshold():
    lat = list(np.linspace(0.5, 1.5, 40))
    old = answers("rag", [True] * 40, lat)
    slower = answers("rag", [True] * 40, [x * 1.5 for x in lat])
    ok, lines, table = run_gate(old, slower, "p50_latency:+20%")
    assert not ok and table.iloc[0]["change"] == pytest.approx(0.5)
    assert "+50.0%" in lines[0] and "limit +20.0%" in lines[0]
    a_bit = answers("rag", [True] * 40, [x * 1.1 for x in lat])
    assert run_gate(old, a_bit, "p50_latency:+20%")[0]  # significant, but within the threshold


def test_diff_pairs_by_question_and_skips_missing():
    old = answers("rag", [True, True, False, False])
    new = answers("rag", [True, False, False, False]).iloc[1:]  # q0 missing in the new run
    d = paired_diff(old, new, ["accuracy", "gold_retrieved"])
    assert list(d["metric"]) == ["accuracy"]  # gold_retrieved is NaN for both: left out
    assert d.iloc[0]["n"] == 3 and d.iloc[0]["delta"] == pytest.approx(-1 / 3)
    res = check(d, parse_fail_on("accuracy:-0.5"))
    assert not res.iloc[0]["crossed"]


def test_load_answers_from_run_dir(tmp_path):
    rec = pd.DataFrame({"system": ["rag", "rag"], "qid": ["a", "b"], "kind": ["fact", "unanswerable"],
                        "correct": [True, False], "hallucinated": [False, True], "abstained": [False, False],
                        "crag": [1, -1], "gold_retrieved": [True, None], "latency_seconds": [0.5, 0.7],
                        "answer": ["x", "y"]})
    rec.to_csv(tmp_path / "records.csv", index=False)
    ans, label = load_answers(str(tmp_path))
    assert label == str(tmp_path)
    assert list(ans["correct"]) == [1.0, 0.0] and ans["gold_retrieved"].iloc[0] == 1.0
    assert math.isnan(ans["gold_retrieved"].iloc[1]) and math.isnan(ans["f1"].iloc[0])
    with pytest.raises(InputError):
        load_answers(str(tmp_path / "nope"))


def test_compare_cli_records_and_gate_exits_1_naming_the_metric(tmp_path, tiny_model_dir, monkeypatch, capsys):
    """`ragft compare` with the tiny random model: recorded in the history; against itself the gate passes;
    against a baseline in which every answer was right it exits 1 naming the system, metric and change."""
    from cli.main import main
    from history.store import get_answers, list_runs
    from tests.conftest import guild_corpus

    monkeypatch.chdir(tmp_path)
    corpus = guild_corpus(tmp_path / "c", 9)
    common = ["compare", "--corpus", str(corpus), "--systems", "base", "--generator", str(tiny_model_dir),
              "--max-new-tokens", "3", "--history", str(tmp_path / "h.db")]

    def ragft(*args):
        with pytest.raises(SystemExit) as e:
            main([*common, *args])
        return e.value.code, capsys.readouterr().out

    code, out = ragft("--out", str(tmp_path / "r1"))
    assert code == 0 and "recorded as run 1" in out
    code, out = ragft("--out", str(tmp_path / "r2"), "--baseline", "1", "--fail-on", "accuracy:-0.02,p50_latency:+900%")
    assert code == 0 and "quality gate: passed" in out
    assert list_runs(tmp_path / "h.db")["id"].tolist() == [2, 1] and len(get_answers(tmp_path / "h.db", 2)) == 8

    good = pd.read_csv(tmp_path / "r1" / "records.csv")
    assert not good["correct"].any()  # a random model answers nothing right
    good["correct"], good["hallucinated"] = True, False
    (tmp_path / "all-right").mkdir()
    good.to_csv(tmp_path / "all-right" / "records.csv", index=False)
    code, out = ragft("--out", str(tmp_path / "r3"), "--baseline", str(tmp_path / "all-right"),
                      "--fail-on", "accuracy:-0.02")
    assert code == 1
    # issue 16 item 8: one-sided against the -2 point limit (exact unconditional), no longer two-sided McNemar vs 0
    assert "FAIL base accuracy: 100.0% -> 0.0% (-100.0 points, limit -2.0 points; one-sided-exact (8/0) p=0.0046" in out
    assert "quality gate: FAILED" in out
    with pytest.raises(SystemExit) as e:  # --fail-on without --baseline: bad input before any model runs
        main([*common, "--fail-on", "accuracy:-0.02"])
    assert e.value.code == 2


def test_gate_rule_is_one_sided_against_its_threshold():
    """issue 16 item 8: H0 "fell by at most the limit" vs H1 "by more", on the per-question values."""
    from history.gate import gate_test

    old = np.array([1.0] * 6 + [0.0] * 4)
    new = np.zeros(10)
    fall = parse_fail_on("accuracy:-0.02")[0]
    t = gate_test(old, new, "rate", fall)
    assert t["test"] == "one-sided-exact (6/0)" and t["p_value"] == pytest.approx(0.0126, abs=5e-4)
    assert gate_test(old, new, "rate", parse_fail_on("accuracy:-0.5")[0])["p_value"] > 0.2  # 60 points vs a 50 limit
    assert gate_test(new, old, "rate", fall)["p_value"] == 1.0          # a rise never fails a fall rule
    assert gate_test(old, old, "rate", fall)["p_value"] == 1.0
    rise = parse_fail_on("hallucination:+0.02")[0]
    assert gate_test(new, old, "rate", rise)["p_value"] == pytest.approx(t["p_value"])  # mirror image
    # relative: -10% of a 60% baseline is a 6-point margin
    rel = gate_test(old, new, "rate", parse_fail_on("accuracy:-10%")[0])
    assert rel["margin"] == pytest.approx(0.06) and rel["p_value"] > t["p_value"]
    # means: one-sided bootstrap; identical values pass with p = 1
    lat = np.linspace(1, 2, 30)
    assert gate_test(lat, lat, "median", parse_fail_on("p50_latency:+20%")[0])["p_value"] == 1.0
    assert gate_test(lat, lat * 1.5, "median", parse_fail_on("p50_latency:+20%")[0])["p_value"] < 0.01
    assert gate_test(lat, lat * 1.1, "median", parse_fail_on("p50_latency:+20%")[0])["p_value"] > 0.5


def test_ten_question_collapse_fails_and_identical_runs_pass_with_power_lines():
    """The issue's case on saved answers: 10 questions, rag 60% -> 0% (6/0 discordant) must FAIL; before issue 16
    it printed 'mcnemar-exact (6/0) p=0.031, Holm p=0.062 -- within noise' and passed."""
    spec = "accuracy:-0.02,hallucination:+0.02"
    old = answers("rag", [True] * 6 + [False] * 4)
    collapsed = answers("rag", [False] * 10)
    ok, lines, table = run_gate(old, collapsed, spec)
    assert not ok and "FAILED" in lines[-1]
    acc = table[table.metric == "accuracy"].iloc[0]
    assert acc["failed"] and acc["p_holm"] < 0.05 and acc["p_diff"] == pytest.approx(2 / 64)  # the diff: two-sided
    assert any(line.startswith("FAIL rag accuracy: 60.0% -> 0.0% (-60.0 points, limit -2.0 points; one-sided-exact "
                               "(6/0) p=0.013, Holm p=0.025, 10 questions)") for line in lines)
    power = next(line for line in lines if line.startswith("power rag accuracy"))
    assert "with 10 questions it tells a fall of" in power and "is larger than the limit -2.0 points" in power
    ok, lines, table = run_gate(old, old.copy(), spec)
    assert ok and "passed" in lines[-1] and (table["p_value"] == 1.0).all()
    assert table["underpowered"].all()  # 10 questions cannot see 2 points: said on every check
    assert [line.split(":")[0] for line in lines[:-1]] == ["power rag accuracy", "power rag hallucination"]
    # 400 questions see a few points: no warning
    big_old = answers("rag", [True] * 240 + [False] * 160)
    ok, lines, table = run_gate(big_old, big_old.copy(), "accuracy:-0.1")
    assert ok and not table["underpowered"].any() and "warning" not in " ".join(lines)


@pytest.mark.model
def test_compare_cli_ten_question_collapse_fails_the_gate(tmp_path, monkeypatch):
    """issue 16 item 8 through the real CLI and models: a --top-k 0 rag run against a --top-k 2 baseline on 10
    questions exits 1; the baseline's settings run again exit 0."""
    import dataclasses

    from cli.main import main

    monkeypatch.chdir(tmp_path)
    fields = {f.name for f in dataclasses.fields(__import__("compare.config", fromlist=["x"]).CompareConfig)}
    off = [flag for name, flag in (("fit_size", "--fit-size"), ("general_size", "--general-size")) if name in fields]
    common = ["compare", "--systems", "rag", "--limit", "10", "--injection", "0",
              "--history", str(tmp_path / "h.db"), *[a for f in off for a in (f, "0")]]

    def ragft(*args):
        with pytest.raises(SystemExit) as e:
            main([*common, *args])
        return e.value.code

    assert ragft("--out", str(tmp_path / "r1")) == 0
    spec = ["--baseline", "1", "--fail-on", "accuracy:-0.02,hallucination:+0.02"]
    assert ragft("--out", str(tmp_path / "r2"), *spec) == 0  # the same settings: passes
    assert ragft("--out", str(tmp_path / "r3"), "--top-k", "0", *spec) == 1

"""Fit check (compare/fit.py) and forgetting check (compare/forgetting.py): tables from records, the paired delta
against base, the perplexity ratio, the shipped general set; one real-model run of `ragft compare` with both."""

import math

import pandas as pd
import pytest

from compare.fit import FIT_FLAG, fit_arms, fit_columns, fit_questions, sample_questions, sample_size, score_rows, \
    under_trained
from compare.forgetting import (GENERAL_QA, GENERAL_TEXT, general_arms, general_columns, load_general, paired_delta,
                                perplexity, ppl_ratio, significant_drops, text_windows)
from corpora.significance import mcnemar
from corpora.text import contains_gold

META_SYSTEMS = [{"name": "base", "adapter_key": ""}, {"name": "rag", "adapter_key": ""},
                {"name": "ft", "adapter_key": "default"}, {"name": "ft+rag", "adapter_key": "default"},
                {"name": "ft:docs", "adapter_key": "recipe:docs"}]
SUMMARY = pd.DataFrame({"system": [s["name"] for s in META_SYSTEMS], "accuracy": [0.1, 0.5, 0.2, 0.3, 0.0]})


def q(i, answers=("Ann",), kind="fact"):
    return {"id": f"q{i}", "question": f"Who {i}?", "answers": list(answers), "kind": kind}


def test_fit_sample_is_seeded_answerable_and_in_file_order():
    train = [q(i) for i in range(10)] + [q(10, (), "unanswerable"), q(11, ())]
    a, b = fit_questions(train, 4, seed=3), fit_questions(train, 4, seed=3)
    assert a == b and len(a) == 4
    assert [x["id"] for x in a] == sorted((x["id"] for x in a), key=lambda s: int(s[1:]))  # file order kept
    assert all(x["kind"] != "unanswerable" and x["answers"] for x in a)
    assert fit_questions(train, 4, seed=4) != a  # another seed, another sample
    assert fit_questions(train, 100, 0) == train[:10]  # all answerable ones when fewer than asked
    assert fit_questions(train, 0, 0) == [] and sample_questions(train, -1, 0) == []
    assert sample_size(64, 0) == 64 and sample_size(64, 4) == 4 and sample_size(0, 4) == 0


def test_fit_table_from_records_and_summary_columns():
    qs = [q(i, (f"Name {i}",)) for i in range(5)]
    answers = [{"answer": f"It was Name {i}." if i < 4 else "I don't know"} for i in range(5)]
    rows = pd.DataFrame(score_rows("default", qs, answers) + score_rows("recipe:docs", qs, [{"answer": "x"}] * 5))
    for col in ("model", "qid", "question", "gold", "answer", "correct", "abstained", "exact", "f1"):
        assert col in rows
    assert list(rows["correct"][:5]) == [True, True, True, True, False] and rows["abstained"][4]
    arms = fit_arms(rows)
    assert arms == {"default": {"fit": 0.8, "fit_n": 5, "fit_right": 4},
                    "recipe:docs": {"fit": 0.0, "fit_n": 5, "fit_right": 0}}
    s = fit_columns(SUMMARY, {"systems": META_SYSTEMS, "fit": {"arms": arms}}).set_index("system")
    assert s.loc["ft", "fit"] == s.loc["ft+rag", "fit"] == 0.8 and s.loc["ft", "fit_n"] == 5
    assert math.isnan(s.loc["base", "fit"]) and math.isnan(s.loc["rag", "fit_n"])  # no adapter: NaN
    assert list(under_trained(s.reset_index())["system"]) == ["ft:docs"]  # 0.8 is not below FIT_FLAG
    assert FIT_FLAG == 0.80
    # without the check (or without meta) the columns are there and NaN
    for meta in (None, {"systems": META_SYSTEMS}):
        s = fit_columns(SUMMARY, meta)
        assert s["fit"].isna().all() and s["fit_n"].isna().all()


def test_paired_delta_is_points_and_mcnemar_p():
    base = {f"q{i}": i < 6 for i in range(10)}  # 6 of 10 right
    arm = {f"q{i}": i < 2 or i == 9 for i in range(10)}  # 3 of 10: 4 base-only, 1 arm-only
    d = paired_delta(arm, base)
    assert d["delta"] == pytest.approx(-30.0) and d["n"] == 10
    assert (d["arm_only"], d["base_only"]) == (1, 4)
    assert d["p"] == mcnemar([arm[k] for k in base], list(base.values()))["p_value"]
    assert d["p"] == pytest.approx(2 * (1 + 5) / 2 ** 5)  # exact binomial: 2 * P(X <= 1 | n=5)
    assert paired_delta(base, base)["delta"] == 0.0 and paired_delta(base, base)["p"] == 1.0
    assert paired_delta({"q0": True, "x": False}, {"q0": False})["n"] == 1  # only shared questions are paired
    assert math.isnan(paired_delta({"a": True}, {"b": True})["delta"])


def test_ppl_ratio():
    assert ppl_ratio(12.0, 10.0) == pytest.approx(1.2) and ppl_ratio(10.0, 10.0) == 1.0
    assert math.isnan(ppl_ratio(None, 10.0)) and math.isnan(ppl_ratio(10.0, None)) and math.isnan(ppl_ratio(3, 0))
    assert text_windows(list(range(10)), 4) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert text_windows(list(range(9)), 4) == [[0, 1, 2, 3], [4, 5, 6, 7]]  # a lone last token predicts nothing


def test_general_table_from_records_and_shared_weights():
    qs = [q(i, ("Paris",)) for i in range(8)]
    base = score_rows("base", qs, [{"answer": "Paris"}] * 6 + [{"answer": "Rome"}] * 2)
    ft = score_rows("default", qs, [{"answer": "Paris"}] * 2 + [{"answer": "Rome"}] * 6)
    ppl = {"base": {"tokens": 100, "nll": 230.0, "ppl": 10.0}, "default": {"tokens": 100, "nll": 250.0, "ppl": 15.0}}
    arms = general_arms(pd.DataFrame(base + ft), ppl)
    assert arms["base"]["general_accuracy"] == 0.75 and arms["base"]["general_delta"] == 0.0
    assert arms["base"]["general_p"] == 1.0 and arms["base"]["general_ppl_ratio"] == 1.0
    d = arms["default"]
    assert d["general_accuracy"] == 0.25 and d["general_n"] == 8 and d["general_delta"] == pytest.approx(-50.0)
    assert d["general_p"] == pytest.approx(2 / 2 ** 4) and (d["general_arm_only"], d["general_base_only"]) == (0, 4)
    assert d["general_ppl_ratio"] == pytest.approx(1.5) and d["general_ppl"] == 15.0
    s = general_columns(SUMMARY, {"systems": META_SYSTEMS, "general": {"arms": arms}}).set_index("system")
    assert s.loc["rag", "general_accuracy"] == s.loc["base", "general_accuracy"] == 0.75  # rag = base's weights
    assert s.loc["ft+rag", "general_delta"] == s.loc["ft", "general_delta"] == pytest.approx(-50.0)
    assert s["general_accuracy"].isna().tolist() == [False, False, False, False, True]  # ft:docs not checked
    assert list(significant_drops(s.reset_index())["system"]) == []  # p = 0.125: not significant
    s.loc["ft", "general_p"] = 0.01
    assert list(significant_drops(s.reset_index())["system"]) == ["ft"]
    assert general_columns(SUMMARY, None)[["general_accuracy", "general_p", "general_ppl_ratio"]].isna().all().all()


def test_shipped_general_set_and_text():
    rows = load_general()
    assert GENERAL_QA.is_file() and 290 <= len(rows) <= 360
    assert len({r["id"] for r in rows}) == len(rows) and len({r["question"] for r in rows}) == len(rows)
    for r in rows:  # the native qa.jsonl row shape
        assert set(r) >= {"id", "question", "answers", "doc_ids", "kind", "split"} and r["kind"] == "fact"
        assert r["answers"] and all(isinstance(a, str) and a for a in r["answers"])
        assert not contains_gold(r["question"], r["answers"]), r  # restating the question is not an answer
    words = GENERAL_TEXT.read_text(encoding="utf-8").split()
    assert len(words) > 2000


def test_perplexity_on_the_tiny_model_matches_the_model_loss(tiny_model_dir):
    """perplexity() against the model's own mean cross-entropy (transformers' labels= loss) on one window."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = "The river runs to the sea and the sea is wide."
    ids = tok(text, add_special_tokens=False)["input_ids"]
    r = perplexity(model, tok, text, window=len(ids))
    with torch.no_grad():
        loss = model(input_ids=torch.tensor([ids]), labels=torch.tensor([ids])).loss
    assert r["tokens"] == len(ids) - 1
    assert r["nll"] / r["tokens"] == pytest.approx(float(loss), rel=1e-4)
    assert r["ppl"] == pytest.approx(math.exp(float(loss)), rel=1e-4)


def test_report_flags_under_trained_arm_and_significant_drop(tmp_path):
    """A run folder whose run.json carries both checks: summary.csv gets the columns, report.md the section with
    the under-trained flag (fit < 80%) and the significant drop, and summarize() agrees with summary.csv."""
    import json

    from compare import summarize
    from compare.report import render
    from tests.compare.test_report_render import make_run

    out = tmp_path / "run"
    _, df = make_run(out)
    meta = json.loads((out / "run.json").read_text())
    meta["fit"] = {"questions": 64, "size": 64, "threshold": 0.8,
                   "arms": {"default": {"fit": 0.125, "fit_n": 64, "fit_right": 8}}}
    meta["general"] = {"questions": 128, "size": 128, "set": "general_qa.jsonl", "text_tokens": 3125,
                       "arms": {"base": {"general_accuracy": 0.5, "general_n": 128, "general_delta": 0.0,
                                         "general_p": 1.0, "general_ppl_ratio": 1.0},
                                "default": {"general_accuracy": 0.3, "general_n": 128, "general_delta": -20.0,
                                            "general_p": 0.0004, "general_ppl_ratio": 1.31}}}
    (out / "run.json").write_text(json.dumps(meta))
    render(out)
    s = pd.read_csv(out / "summary.csv").set_index("system")
    assert s.loc["ft", "fit"] == s.loc["ft+rag", "fit"] == 0.125 and math.isnan(s.loc["rag", "fit"])
    assert s.loc["rag", "general_accuracy"] == 0.5 and s.loc["ft+rag", "general_delta"] == -20.0
    assert s.loc["ft", "general_ppl_ratio"] == 1.31
    pd.testing.assert_frame_equal(summarize(df, meta=meta), pd.read_csv(out / "summary.csv"), check_dtype=False)
    md = (out / "report.md").read_text()
    section = md.split("## Fit and forgetting", 1)[1].split("\n## ", 1)[0]
    assert "- ft is under-trained: fit 12.5% of 64 train questions (&lt; 80%)" in section
    assert "- ft forgot general knowledge: 30.0% vs base, -20.0 points (McNemar p = 0.0004)." in section
    assert "| ft | 12.5% | 64 | 30.0% | 128 | -20.0 | 0.0004 | 1.310 |" in section
    assert "| rag | - | - | 50.0% | 128 | +0.0 | 1 | 1.000 |" in section
    results = md.split("## Results per system", 1)[1].split("\n## ", 1)[0]
    header = next(line for line in results.splitlines() if line.startswith("| system |"))
    assert "| accuracy |" in header and "fit" not in header and "general" not in header  # their own section


@pytest.mark.model
def test_compare_reports_fit_and_forgetting_with_real_models(tmp_path, smollm2_path):
    import json

    from compare.harness import CompareConfig, run

    out = tmp_path / "run"
    cfg = CompareConfig(limit=4, max_steps=2, fit_size=3, general_size=5, injection=0, out=str(out))
    run(cfg, progress=False, history="off")
    s = pd.read_csv(out / "summary.csv").set_index("system")
    for col in ("fit", "fit_n", "general_accuracy", "general_n", "general_delta", "general_p", "general_ppl_ratio"):
        assert col in s
    assert s.loc[["base", "rag"], "fit"].isna().all()
    assert s.loc[["ft", "ft+rag"], "fit"].between(0, 1).all() and (s.loc[["ft", "ft+rag"], "fit_n"] == 3).all()
    assert s["general_accuracy"].between(0, 1).all() and (s["general_n"] == 4).all()  # at most --limit 4
    assert (s.loc[["base", "rag"], "general_delta"] == 0).all() and (s.loc[["base", "rag"], "general_p"] == 1).all()
    assert s["general_p"].between(0, 1).all() and s["general_delta"].between(-100, 100).all()
    assert (s.loc[["base", "rag"], "general_ppl_ratio"] == 1).all() and (s["general_ppl_ratio"] > 0).all()
    assert s.loc["ft", "general_ppl_ratio"] == s.loc["ft+rag", "general_ppl_ratio"]
    fit = pd.read_csv(out / "fit_records.csv") if (out / "fit_records.csv").is_file() else \
        pd.read_parquet(out / "fit_records.parquet")
    assert len(fit) == 3 and {"question", "gold", "answer", "correct"} <= set(fit.columns)
    meta = json.loads((out / "run.json").read_text())
    assert meta["general"]["text_tokens"] > 2000 and set(meta["general"]["perplexity"]) == {"base", "default"}
    assert "## Fit and forgetting" in (out / "report.md").read_text()
    for f in ("answers/fit-default.jsonl", "answers/general-base.jsonl", "answers/general-default.jsonl",
              "answers/general-ppl-base.json"):
        assert (out / f).is_file(), f
    # resumed: the checks' answers come from the cache, the numbers are the same
    before = (out / "answers" / "general-default.jsonl").read_text()
    run(cfg, progress=False, history="off")
    assert (out / "answers" / "general-default.jsonl").read_text() == before
    pd.testing.assert_frame_equal(pd.read_csv(out / "summary.csv").set_index("system")[["fit", "general_accuracy"]],
                                  s[["fit", "general_accuracy"]])

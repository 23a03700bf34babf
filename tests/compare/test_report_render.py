"""The run directory's report from hand-made answers (no model): tables, plots, HTML, decision, `ragft report`."""

import json
import subprocess
import sys

import pandas as pd

from compare.cost import load_prices
from compare.harness import CompareConfig, build_records
from compare.report import load_records, render, write_run
from compare.systems import parse_systems

QUESTIONS = [
    {"id": f"q{i}", "question": f"Who founded place {i}?", "answers": [f"Founder {i}"], "doc_ids": [f"d{i}"],
     "kind": "fact"} for i in range(6)
] + [{"id": "u1", "question": "How tall is the lighthouse?", "answers": [], "doc_ids": ["d0"], "kind": "unanswerable"}]


def answer(q, text, retrieved):
    return {"qid": q["id"], "answer": text, "retrieved_ids": retrieved, "retrieved_chunks": list(range(len(retrieved))),
            "retrieved_scores": [0.5] * len(retrieved), "retrieve_seconds": 0.01 * bool(retrieved),
            "prompt_seconds": 0.001, "prompt": "Question: ...", "tokens_in": 400 if retrieved else 60, "tokens_out": 4,
            "gen_seconds": 4.0, "prefill_seconds": 3.0, "decode_seconds": 1.0, "batch": 4, "latency_seconds": 4.0,
            "context": f"Place {q['id'][1:]} was founded by Founder {q['id'][1:]}." if retrieved else None}


def make_run(out, freshness=False):
    systems = parse_systems("base,rag,ft,ft+rag")
    ans = {"base": [answer(q, "I don't know", []) for q in QUESTIONS],
           "rag": [answer(q, f"Founder {q['id'][1:]}" if q["id"] in ("q0", "q1", "q2", "q3") else "Someone Else",
                          [f"d{q['id'][1:]}" if q["id"] != "q4" else "d9"]) for q in QUESTIONS],
           "ft": [answer(q, "Founder 0" if q["id"] == "q0" else "Wrong Name", []) for q in QUESTIONS],
           "ft+rag": [answer(q, f"Founder {q['id'][1:]}" if q["id"] < "q3" else "I don't know",
                             [f"d{q['id'][1:]}"]) for q in QUESTIONS]}
    adapters = {"default": {"adapter": "x", "train_seconds": 300.0, "trained_tokens": 9000, "device": "cpu x2",
                            "steps": 30}}
    index_meta = {"build_seconds": 20.0, "size_bytes": 123456, "corpus_hash": "h"}
    leaks = {"q5": {"train_id": "t5", "similarity": 0.97}}
    df = build_records(systems, QUESTIONS, ans, adapters, index_meta, leaks)
    meta = {"corpus": "hand", "split": "test", "questions": len(QUESTIONS), "device": "cpu", "threads": 2,
            "index": index_meta, "leaks": leaks, "prices": load_prices(),
            "systems": [{"name": s.name, "retriever": s.retriever, "adapter_key": s.adapter_key, "family": s.family}
                        for s in systems], "adapters": adapters}
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps({**vars(CompareConfig()), "hallucination_tolerance": 0.5}))
    (out / "run.json").write_text(json.dumps(meta))
    return write_run(out, df, meta), df


def test_report_has_tables_plots_and_a_decision_citing_measured_numbers(tmp_path):
    out = tmp_path / "run"
    res, df = make_run(out)
    for f in ("summary.csv", "summary_by_kind.csv", "mcnemar.csv", "failures.csv", "latency.csv", "costs.csv",
              "break_even.csv", "report.md", "report.html", "decision.txt", "summary.txt"):
        assert (out / f).is_file(), f
    for png in ("accuracy_hallucination", "coverage_risk", "latency", "cost_volume"):
        assert (out / "plots" / f"{png}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (out / "report.html").read_text()
    assert html.count("<table") >= 8 and html.count("<img") == 4
    s = res["summary"].set_index("system")
    assert s.loc["rag", "accuracy"] == 4 / 6 and s.loc["base", "accuracy"] == 0.0
    assert s.loc["base", "hallucination"] == 0.0             # it always declines: no hallucination
    assert s.loc["base", "unanswerable_abstained"] == 1.0
    # the decision names the system and quotes its measured accuracy and hallucination
    d = res["decision"]
    assert d["recommendation"] in ("RAG", "FT", "FT+RAG")
    pick = s.loc[d["system"]]
    text = (out / "decision.txt").read_text()
    assert f"{pick['accuracy']:.1%}" in text and f"{pick['hallucination']:.1%}" in text
    assert "Decision" in (out / "report.md").read_text() and text.splitlines()[0] in (out / "report.md").read_text()
    # failure attribution: rag missed the gold doc on q4 (retrieved d9), answered wrong with it on q5
    f = df.set_index(["system", "qid"])["failure"]
    assert f[("rag", "q4")] == "retrieval_miss" and f[("rag", "q5")] == "generator_error"
    assert f[("ft", "q1")] == "parametric_hallucination" and f[("base", "q1")] == "declined"
    # leakage shown
    assert "1 of 7 test questions are near-identical" in (out / "report.md").read_text()


def test_records_round_trip_and_report_command_rerenders(tmp_path):
    out = tmp_path / "run"
    make_run(out)
    back = load_records(out)
    assert back.loc[0, "gold"] == ["Founder 0"] and isinstance(back.loc[0, "retrieved_ids"], list)
    before = (out / "summary.csv").read_text()
    (out / "summary.csv").unlink()
    (out / "report.html").unlink()
    p = subprocess.run([sys.executable, "-m", "cli", "report", str(out)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert (out / "summary.csv").read_text() == before and (out / "report.html").is_file()
    assert "Recommendation:" in p.stdout
    bad = subprocess.run([sys.executable, "-m", "cli", "report", str(tmp_path)], capture_output=True, text=True)
    assert bad.returncode == 2 and "not a compare run directory" in bad.stderr and "Traceback" not in bad.stderr

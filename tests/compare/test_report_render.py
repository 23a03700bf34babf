"""The run directory's report from hand-made answers (no model): tables, plots, HTML, decision, `ragft report`."""

import base64
import json
import re
import subprocess
import sys

import pandas as pd

from compare.cost import load_prices
from compare.harness import CompareConfig, build_records
from compare.records import load_records, save_records
from compare.report import render, write_run
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


def test_html_is_self_contained_and_md_links_plots_with_readable_headers_and_examples(tmp_path):
    out = tmp_path / "run"
    make_run(out)
    page = (out / "report.html").read_text()
    srcs = re.findall(r'<img src="([^"]*)"', page)
    assert len(srcs) == 4 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert base64.b64decode(srcs[0].split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "report.md").read_text()
    for png in ("accuracy_hallucination", "coverage_risk", "latency", "cost_volume"):
        assert f"](plots/{png}.png)" in md
    # readable headers in the pages, snake_case kept in the CSV files
    assert "p50 latency (s)" in md and "p50_latency_s" not in md and "$ per 1k questions" in md
    assert "p50 latency (s)" in page and "p50_latency_s" in (out / "summary.csv").read_text().splitlines()[0]
    # examples: per system right and wrong answers with question, gold, answer, retrieved ids and the cause
    examples = md.split("## Examples", 1)[1].split("\n## ", 1)[0]
    assert "| wrong | q4 | Who founded place 4? | Founder 4 | Someone Else | d9 | retrieval miss |" in examples
    assert "| right | q0 | Who founded place 0? | Founder 0 | Founder 0 | d0 | - |" in examples
    assert "| wrong | q1 | Who founded place 1? | Founder 1 | Wrong Name | - | parametric hallucination |" in examples
    assert examples.count("| right |") + examples.count("| wrong |") == 4 + 6 + 4 + 6
    assert md == (render(out) and (out / "report.md").read_text())  # deterministic


def test_summarize_returns_summary_csv_columns(tmp_path):
    from compare import summarize

    out = tmp_path / "run"
    _, df = make_run(out)
    meta = json.loads((out / "run.json").read_text())
    saved = pd.read_csv(out / "summary.csv")
    s = summarize(df, meta=meta)
    assert list(s.columns) == list(saved.columns)
    pd.testing.assert_frame_equal(s, saved, check_dtype=False)
    assert list(summarize(df).columns) == list(saved.columns)  # without the run's meta: cost columns NaN
    probes = df[df["system"] == "rag"].assign(injected_retrieved=True, obeyed=df["qid"] == "q0")
    save_records(out, probes, "injection_records")
    render(out)
    saved = pd.read_csv(out / "summary.csv")
    assert saved.columns[-1] == "injection_obeyed"
    pd.testing.assert_frame_equal(summarize(df, meta=meta, injection_records=probes), saved, check_dtype=False)


def md_cells(line: str) -> list[str]:
    """A markdown table row split on its unescaped pipes (the escaped ones stay inside a cell)."""
    return re.split(r"(?<!\\)\|", line.strip())[1:-1]


def test_markdown_cells_and_price_text_are_escaped(tmp_path):
    out = tmp_path / "run"
    make_run(out)
    evil = "q0|x\n<script>alert(1)</script>"
    records = load_records(out)
    records.loc[records["qid"] == "q0", "qid"] = evil
    records.loc[records["qid"] == evil, "question"] = "Who | founded\n<b>place</b> 0 & why?"
    save_records(out, records)
    meta = json.loads((out / "run.json").read_text())
    meta["leaks"] = {evil: {"train_id": "t<i>|", "similarity": 0.97}}
    meta["prices"].update(hardware="2 cores | <script>x</script>\n# not a heading", gpu="<b>H100</b>",
                          source="a & b <img src=x onerror=alert(1)>")
    (out / "run.json").write_text(json.dumps(meta))
    render(out)
    md = (out / "report.md").read_text()
    for raw in ("<script", "<b>", "<i>", "<img", "\n# not a heading"):
        assert raw not in md, raw
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md and "q0\\|x<br>" in md and "a &amp; b" in md
    # every table keeps its columns: each row has as many cells as its header, and no row is broken
    lines = md.splitlines()
    tables = 0
    for i, line in enumerate(lines):
        if line.startswith("| ") and (i == 0 or not lines[i - 1].startswith("|")):
            tables += 1
            width = len(md_cells(line))
            j = i
            while j < len(lines) and lines[j].startswith("|"):
                assert len(md_cells(lines[j])) == width, lines[j]
                j += 1
            assert j == len(lines) or lines[j] == "", lines[j]
    assert tables >= 12
    assert any(evil.split("|")[0] + "\\|x<br>&lt;script&gt;" in line for line in lines if line.startswith("| wrong")
               or line.startswith("| right"))
    page = (out / "report.html").read_text()
    assert "<script" not in page and "<b>H100" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page

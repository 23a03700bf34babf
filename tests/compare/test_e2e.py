"""End to end with the real shipped models: index, LoRA (2 steps), four systems, five questions, run twice."""

import subprocess
import sys

import pandas as pd

from compare.harness import CompareConfig, run, summarize


def test_compare_five_questions_with_real_models(tmp_path, smollm2_path):
    cfg = CompareConfig(limit=5, max_steps=2, out=str(tmp_path / "run"))
    records = run(cfg, progress=False, history="off")  # not into ./ragft-runs.db
    assert len(records) == 4 * 5
    assert list(records["system"].unique()) == ["base", "rag", "ft", "ft+rag"]
    for col in ["question", "retrieved_ids", "retrieved_scores", "prompt", "answer", "correct", "abstained",
                "hallucinated", "tokens_in", "tokens_out", "latency_seconds"]:
        assert col in records
    rag = records[records["system"] == "rag"]
    base = records[records["system"] == "base"]
    assert all(len(ids) == 2 for ids in rag["retrieved_ids"])  # top_k 2
    assert all("[atl-" in p for p in rag["prompt"]) and not any("[atl-" in p for p in base["prompt"])
    assert (rag["tokens_in"].to_numpy() > base["tokens_in"].to_numpy()).all()
    assert (records["tokens_out"] > 0).any()

    summary = summarize(records)
    assert list(summary["system"]) == ["base", "rag", "ft", "ft+rag"]
    assert (summary.set_index("system").loc[["ft", "ft+rag"], "train_seconds"] > 0).all()
    saved = pd.read_csv(tmp_path / "run" / "summary.csv")
    assert list(saved["system"]) == list(summary["system"])
    assert len(pd.read_csv(tmp_path / "run" / "records.csv")) == 20
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").is_file()
    for col in ["exact", "f1", "crag", "grounding", "gold_recall", "failure", "leak", "prefill_seconds",
                "decode_seconds", "prompt_seconds"]:
        assert col in records
    assert set(records["crag"]) <= {-1, 0, 1}
    assert records[records["system"] == "rag"]["grounding"].notna().any()
    assert records[records["system"] == "base"]["grounding"].isna().all()
    for f in ["report.html", "report.md", "decision.txt", "costs.csv", "mcnemar.csv", "plots/cost_volume.png",
              "answers/rag.jsonl", "injection.csv", "answers/injection-rag.jsonl"]:
        assert (tmp_path / "run" / f).is_file(), f

    # Prompt-injection probes: retrieval arms only, a rate per system in the summary and the report.
    obeyed = saved.set_index("system")["injection_obeyed"]
    assert obeyed[["base", "ft"]].isna().all() and obeyed[["rag", "ft+rag"]].between(0, 1).all()
    assert "## Prompt injection" in (tmp_path / "run" / "report.md").read_text()

    # Same seed, fresh run directory (adapter trained again): identical answers and numbers apart from timings.
    again_records = run(CompareConfig(**{**vars(cfg), "out": str(tmp_path / "run2")}), progress=False,
                        history="off")
    assert list(again_records["answer"]) == list(records["answer"])
    again = summarize(again_records)
    timing = [c for c in summary.columns if c.endswith(("_s", "_seconds"))]
    pd.testing.assert_frame_equal(summary.drop(columns=timing), again.drop(columns=timing))
    assert (tmp_path / "run" / "summary_by_kind.csv").read_text() == (tmp_path / "run2" / "summary_by_kind.csv").read_text()


def ragft(*args):
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True)


def test_cli_help_lists_config_fields():
    out = ragft("compare", "--help")
    assert out.returncode == 0
    assert "--top-k" in out.stdout and "Chunks put into the prompt" in out.stdout
    for cmd in ("index", "ask", "finetune"):
        assert ragft(cmd, "--help").returncode == 0


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path):
    for args, message in [
        (["compare", "--corpus", "nope"], "unknown corpus 'nope'"),
        (["ask", "Who?", "--index", str(tmp_path / "missing")], "no manifest.json"),
        (["ask", "Who?", "--retriever", "magic"], "unknown retriever 'magic'"),
        (["finetune", "--generator", str(tmp_path)], "not a model directory"),
        (["compare", "--systems", "base,oracle"], "unknown system oracle"),
    ]:
        out = ragft(*args)
        assert out.returncode == 2, (args, out.stderr)
        assert message in out.stderr and "Traceback" not in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr

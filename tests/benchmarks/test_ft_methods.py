"""benchmarks/ft_methods.py: issue 16 item 9's command line and table, no model loaded.

The table is built from a run folder written here by hand (records, summary.csv, run.json, config.json and the
adapter folders' cost.json), so each column's arithmetic is checked against counts worked out below; the command
line is parsed back by the real `ragft compare` options and CompareConfig.
"""

import json
import math
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pytest

from benchmarks.ft_methods import (FtMethodsConfig, adapter_folder, build_table, compare_argv, compare_config,
                                   estimate_seconds, finetune_commands, question_groups, to_markdown, write_table)
from compare.records import save_records
from compare.systems import parse_systems
from corpora.errors import InputError

# A corpus of 2 train and 6 test questions: t1, t2 rephrase train questions (trained facts), d1, d2 are only in
# the documents, u1, u2 unanswerable. mh is a multi_hop rewording of a train question: a trained fact too.
QUESTIONS = [
    {"id": "a", "kind": "fact", "split": "train", "paraphrase_of": None, "answers": ["x"]},
    {"id": "b", "kind": "fact", "split": "train", "paraphrase_of": None, "answers": ["y"]},
    {"id": "t1", "kind": "fact", "split": "test", "paraphrase_of": "a", "answers": ["x"]},
    {"id": "mh", "kind": "multi_hop", "split": "test", "paraphrase_of": "b", "answers": ["y"]},
    {"id": "d1", "kind": "fact", "split": "test", "paraphrase_of": None, "answers": ["z"]},
    {"id": "d2", "kind": "fact", "split": "test", "paraphrase_of": None, "answers": ["w"]},
    {"id": "u1", "kind": "unanswerable", "split": "test", "paraphrase_of": None, "answers": []},
    {"id": "u2", "kind": "unanswerable", "split": "test", "paraphrase_of": None, "answers": []},
]
# system -> qid -> (correct, abstained, hallucinated), as compare's score_answer would give them
ANSWERS = {
    "base": {"t1": (0, 0, 1), "mh": (0, 0, 1), "d1": (0, 0, 1), "d2": (0, 1, 0), "u1": (0, 0, 1), "u2": (0, 0, 1)},
    "ft:lora": {"t1": (1, 0, 0), "mh": (0, 1, 0), "d1": (0, 0, 1), "d2": (0, 0, 1), "u1": (1, 1, 0), "u2": (0, 0, 1)},
    "ft:hft": {"t1": (1, 0, 0), "mh": (1, 0, 0), "d1": (0, 1, 0), "d2": (0, 1, 0), "u1": (1, 1, 0), "u2": (1, 1, 0)},
    "ft-multi:route": {"t1": (0, 1, 0), "mh": (1, 0, 0), "d1": (1, 0, 0), "d2": (0, 0, 1), "u1": (0, 0, 1),
                       "u2": (1, 1, 0)},
}
KEYS = {"base": "", "ft:lora": "method:lora", "ft:hft": "method:hft", "ft-multi:route": "multi:route"}


def write_run(root: Path) -> Path:
    """A finished compare folder as the harness leaves it (what the table reads), paths in run.json relative to
    the directory compare ran in, as the harness writes them."""
    run = root / "runs" / "ftm-fixture"
    rel = Path("runs") / "ftm-fixture"
    kind = {q["id"]: q["kind"] for q in QUESTIONS}
    rows = [{"system": s, "qid": q, "kind": kind[q], "correct": bool(c), "abstained": bool(a), "hallucinated": bool(h),
             "answer": "", "gold": []} for s, qs in ANSWERS.items() for q, (c, a, h) in qs.items()]
    run.mkdir(parents=True)
    save_records(run, pd.DataFrame(rows))
    pd.DataFrame([
        {"system": "base", "fit": math.nan, "fit_n": math.nan, "general_accuracy": 0.5, "general_delta": 0.0,
         "general_p": 1.0},
        {"system": "ft:lora", "fit": 0.25, "fit_n": 32, "general_accuracy": 0.45, "general_delta": -5.0,
         "general_p": 0.21},
        {"system": "ft:hft", "fit": 0.875, "fit_n": 32, "general_accuracy": 0.2, "general_delta": -30.0,
         "general_p": 0.0004},
        {"system": "ft-multi:route", "fit": math.nan, "fit_n": math.nan, "general_accuracy": math.nan,
         "general_delta": math.nan, "general_p": math.nan},
    ]).to_csv(run / "summary.csv", index=False)
    for name, method, params, lr in (("adapter-lora", "lora", 4884480, 2e-3), ("adapter-hft", "hft", 106000000, 1e-4)):
        (run / name).mkdir()
        (run / name / "cost.json").write_text(json.dumps({"method": method, "trainable_params": params,
                                                          "config": {"lr": lr}}))
    multi = run / "adapter-multi-k3"
    for c in range(3):
        (multi / f"cluster-{c}").mkdir(parents=True)
        (multi / f"cluster-{c}" / "cost.json").write_text(json.dumps({"method": "lora", "trainable_params": 1000 + c,
                                                                      "config": {"lr": 2e-3}}))
    (multi / "manifest.json").write_text(json.dumps({"clusters": [{"adapter": f"cluster-{c}"} for c in range(3)]}))
    adapters = {"method:lora": {"adapter": str(rel / "adapter-lora"), "train_seconds": 77.5, "steps": 20},
                "method:hft": {"adapter": str(rel / "adapter-hft"), "train_seconds": 150.25, "steps": 20},
                "multi:route": {"adapter": str(rel / "adapter-multi-k3"), "train_seconds": 230.0, "steps": 60}}
    (run / "run.json").write_text(json.dumps({
        "corpus": "fixture", "split": "test", "questions": 6, "device": "cpu", "threads": 2,
        "systems": [{"name": s, "adapter_key": k} for s, k in KEYS.items()], "adapters": adapters}))
    cfg = asdict(compare_config(FtMethodsConfig(out=str(rel), max_steps=20)))
    (run / "config.json").write_text(json.dumps({**cfg, "systems": ",".join(KEYS)}))
    return run


def test_question_groups_follow_paraphrase_of_to_a_train_question():
    groups = question_groups(QUESTIONS + [{"id": "x", "kind": "fact", "split": "test", "paraphrase_of": "t1"}])
    assert groups == {"t1": "trained_fact", "mh": "trained_fact", "d1": "document_only", "d2": "document_only",
                      "u1": "unanswerable", "u2": "unanswerable",
                      "x": "document_only"}  # a rewording of a TEST question: its fact was never trained


def test_table_columns_arithmetic(tmp_path):
    run = write_run(tmp_path)
    t = build_table(run, QUESTIONS).set_index("system")
    assert list(t.index) == list(KEYS)  # run order
    # trained facts: t1, mh; document-only: d1, d2; unanswerable: u1, u2 (counts from ANSWERS above)
    assert t.loc["base", ["trained_fact_right", "trained_fact_n"]].tolist() == [0, 2]
    assert t.loc["base", "document_only_hallucination"] == 0.5  # d1 hallucinated, d2 abstained
    assert t.loc["base", "unanswerable_abstention"] == 0.0
    assert t.loc["ft:lora", "trained_fact_accuracy"] == 0.5  # t1 right, mh abstained
    assert t.loc["ft:lora", ["document_only_hallucinated", "document_only_n"]].tolist() == [2, 2]
    assert t.loc["ft:lora", ["unanswerable_abstained", "unanswerable_n"]].tolist() == [1, 2]
    assert t.loc["ft:hft", "trained_fact_accuracy"] == 1.0
    assert t.loc["ft:hft", "document_only_hallucination"] == 0.0 and t.loc["ft:hft", "unanswerable_abstention"] == 1.0
    assert t.loc["ft-multi:route", "trained_fact_accuracy"] == 0.5
    assert t.loc["ft-multi:route", "document_only_hallucination"] == 0.5
    assert t.loc["ft-multi:route", "unanswerable_abstention"] == 0.5
    # summary.csv's columns pass through; NaN stays NaN
    assert t.loc["ft:lora", "fit"] == 0.25 and t.loc["ft:lora", "fit_n"] == 32
    assert t.loc["ft:hft", "general_delta"] == -30.0 and t.loc["ft:hft", "general_p"] == 0.0004
    assert math.isnan(t.loc["base", "fit"]) and math.isnan(t.loc["ft-multi:route", "general_delta"])
    # run.json's seconds and steps; cost.json's parameters, lr and method (multi: K cluster adapters summed)
    assert t["train_seconds"].tolist() == [0.0, 77.5, 150.25, 230.0]
    assert t["steps"].tolist() == [0, 20, 20, 60]
    assert t["trainable_params"].tolist() == [0, 4884480, 106000000, 1000 + 1001 + 1002]
    assert t.loc["ft:hft", "lr"] == 1e-4 and t.loc["ft-multi:route", "lr"] == 2e-3
    assert t["method"].tolist() == ["base", "lora", "hft", "multi route"]


def test_markdown_and_files(tmp_path):
    run = write_run(tmp_path)
    table = build_table(run, QUESTIONS)
    md = to_markdown(run, table)
    assert "| lora | ft:lora | 25.0% (n=32) | 50.0% (1/2) | 100.0% (2/2) | 50.0% (1/2) | -5.0 pts (p=0.21) | 78 | 20 | " \
           "0.002 | 4,884,480 |" in md
    assert "| multi route | ft-multi:route | n/a | 50.0% (1/2) | 50.0% (1/2) | 50.0% (1/2) | n/a | 230 | 60 | 0.002 | 3,003 |" in md
    assert "| base | base | n/a | 0.0% (0/2) | 50.0% (1/2) | 0.0% (0/2) | +0.0 pts (p=1) | 0 | 0 | - | 0 |" in md
    assert "seed 0" in md and "--max-steps 20" in md and "2 torch threads" in md and "finished 20" in md
    assert "ragft compare" in md and "Columns:" in md
    # write_table reads the corpus named in config.json (atlantis), whose test questions are not these: refused
    with pytest.raises(InputError):
        write_table(FtMethodsConfig(run=str(run)))


def test_table_refuses_a_folder_that_is_not_a_finished_run(tmp_path):
    with pytest.raises(InputError, match="not a finished"):
        build_table(tmp_path, QUESTIONS)


def test_adapter_folder_found_from_another_directory(tmp_path):
    run = write_run(tmp_path)
    assert adapter_folder(run, "runs/ftm-fixture/adapter-lora") == run / "adapter-lora"
    assert adapter_folder(run, "/elsewhere/ftm-fixture/adapter-multi-k3") == run / "adapter-multi-k3"
    assert adapter_folder(run, "runs/ftm-fixture/missing") is None and adapter_folder(run, None) is None


def test_command_parses_with_the_real_compare_options():
    from cli.compare import compare
    from compare.config import CompareConfig
    from history.gate import GateConfig
    from history.store import HistoryConfig

    cfg = FtMethodsConfig(max_steps=20, seed=3)
    argv = compare_argv(cfg)
    assert argv[:2] == ["ragft", "compare"]
    ctx = compare.make_context("compare", argv[2:])
    kw = dict(ctx.params)
    kw.pop("as_json")
    for cls in (GateConfig, HistoryConfig):
        for f in cls.__dataclass_fields__:
            value = kw.pop(f)
            if f == "history":
                assert value == "off"
    cc = CompareConfig(**kw)
    assert cc == compare_config(cfg)
    assert (cc.max_steps, cc.seed, cc.injection, cc.split, cc.limit, cc.top_k) == (20, 3, 0, "test", 0, 2)
    systems = parse_systems(cc.systems)
    assert systems[0].name == "base" and all(s.retriever == "none" for s in systems)  # closed-book
    keys = [s.adapter_key for s in systems]
    assert keys[:6] == ["", "method:lora", "method:dora", "method:hft", "method:full", "method:memory"]
    assert keys[6:] in ([], ["multi:merge", "multi:route"])
    assert compare_argv(cfg, multi=False)[compare_argv(cfg, multi=False).index("--systems") + 1] == \
        "base,ft:lora,ft:dora,ft:hft,ft:full,ft:memory"


def test_pretrained_arms_and_estimate(tmp_path):
    cfg = FtMethodsConfig(max_steps=20)
    lines = finetune_commands(cfg, lr=1e-4, root=str(tmp_path))
    assert "--method hft" in lines["hft"] and "--lr 0.0001" in lines["full"] and "--max-steps 20" in lines["hft"]
    folder = tmp_path / "hft"
    folder.mkdir()
    (folder / "config.json").write_text("{}")  # a standalone model folder, as method hft saves
    cc = compare_config(cfg, pretrained={"hft": str(folder)}, multi=False)
    assert [s.adapter_key for s in parse_systems(cc.systems)][3] == f"path:{folder}"
    lo, hi = estimate_seconds(cfg, multi=True)
    assert 0 < lo < hi
    assert estimate_seconds(FtMethodsConfig(max_steps=40), multi=True)[0] > lo  # more steps, more time

"""The `ragft` command itself: start-up imports, one-line errors, --version, the verb table, options from
field metadata (choices, flag names, deprecated aliases that warn) and --json output."""

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from importlib.metadata import version as dist_version
from pathlib import Path

import click
import pytest

from cli.main import VERBS, load_verb, main
from cli.options import config_options, field_docs
from corpora.config import check, opt
from corpora.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers", "pandas", "sentence_transformers", "faiss", "matplotlib", "peft")


def python_m_cli(*args, importtime: bool = False) -> subprocess.CompletedProcess:
    flags = ["-X", "importtime"] if importtime else []
    return subprocess.run([sys.executable, *flags, "-m", "cli", *args], capture_output=True, text=True, cwd=ROOT)


def imported(importtime_stderr: str) -> set[str]:
    """Top-level package names from `python -X importtime` lines ('import time: self | cumulative | name')."""
    names = set()
    for line in importtime_stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


def ragft(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(list(args))
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def test_help_and_version_import_no_heavy_package():
    for args in (["--help"], ["--version"]):
        p = python_m_cli(*args, importtime=True)
        assert p.returncode == 0, p.stderr[-2000:]
        heavy = imported(p.stderr) & set(HEAVY)
        assert not heavy, f"`ragft {' '.join(args)}` imported {sorted(heavy)}"
    p = python_m_cli("--help")
    for verb in VERBS:
        assert verb in p.stdout


def test_bad_flag_is_one_line_and_exit_2():
    p = python_m_cli("compare", "--bogus-flag")
    assert p.returncode == 2
    assert p.stdout == "" and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert p.stderr.startswith("ragft: error: ") and "--bogus-flag" in p.stderr and "Traceback" not in p.stderr
    p = python_m_cli("no-such-verb")
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and "no-such-verb" in p.stderr


def test_version_is_the_package_version(capsys):
    code, out, _ = ragft(capsys, "--version")
    pyproject = re.search(r'^version\s*=\s*"([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    assert code == 0 and out.strip() == f"ragft {dist_version('ragft')}" == f"ragft {pyproject}"


def test_verb_table_line_is_the_first_line_of_each_commands_help():
    for name, (_, line) in VERBS.items():
        cmd = load_verb(name)
        assert isinstance(cmd, click.Command)
        assert cmd.help.strip().splitlines()[0] == line, name


# ---- options from field metadata ---------------------------------------------------------------------------

@dataclass
class Toy:
    lora_alpha: int = opt(16, min=1, aliases=("alpha",))
    """LoRA alpha (default 16)."""
    significance: float = opt(0.05, above=0, below=1, flag="sig", aliases=("--old-sig",))
    """Significance level (default 0.05)."""
    method: str = opt("lora", choices=("lora", "dora"))
    """lora | dora (default lora)."""
    shuffle: bool = True
    """Shuffle
    the examples."""

    def __post_init__(self):
        check(self)


@click.command()
@config_options(Toy)
def toy(**kw):
    """A command that only parses."""


def parse(cmd: click.Command, args: list[str]) -> dict:
    """The field values click hands the command, without running it."""
    with cmd.make_context(cmd.name or "cmd", list(args)) as ctx:
        return dict(ctx.params)


def test_field_metadata_makes_the_options(capsys):
    assert field_docs(Toy)["shuffle"] == "Shuffle the examples."
    assert parse(toy, []) == {"lora_alpha": 16, "significance": 0.05, "method": "lora", "shuffle": True}
    assert parse(toy, ["--sig", "0.01", "--no-shuffle"])["significance"] == 0.01
    assert capsys.readouterr().err == ""
    text = toy.get_help(click.Context(toy))
    # the default is stated once: in the help line, not again as click's "[default: 16]"
    assert "[lora|dora]" in text and "--sig" in text and "(default 16)" in text and "[default: 16]" not in text
    assert "--alpha" not in text and "--significance" not in text  # old spellings are hidden
    # a value outside the choices reaches the config, whose check names the flag (one error path)
    params = parse(toy, ["--method", "qlora"])
    with pytest.raises(InputError, match="--method 'qlora': must be one of lora, dora"):
        Toy(**params)


def test_deprecated_alias_sets_the_field_and_warns_once(capsys):
    capsys.readouterr()
    assert parse(toy, ["--alpha", "8"])["lora_alpha"] == 8 == parse(toy, ["--lora-alpha", "8"])["lora_alpha"]
    err = capsys.readouterr().err
    assert err == "ragft: warning: --alpha is deprecated, use --lora-alpha\n"
    assert parse(toy, ["--old-sig", "0.2"])["significance"] == 0.2
    assert "--old-sig is deprecated, use --sig" in capsys.readouterr().err
    assert parse(toy, ["--lora-alpha", "4", "--alpha", "8"])["lora_alpha"] == 4  # the new spelling wins
    assert parse(toy, [])["lora_alpha"] == 16  # nothing left over from an earlier parse


# The flags renamed so one name means one idea across verbs (issue 13): old spelling -> new spelling.
RENAMED = [
    (("finetune",), ["--alpha", "8"], ["--lora-alpha", "8"]),
    (("finetune",), ["--data", "qa,docs"], ["--recipe", "qa+docs"]),
    (("finetune",), ["--batch-size", "4"], ["--train-batch-size", "4"]),
    (("compare",), ["--alpha", "0.01"], ["--significance", "0.01"]),
    (("compare",), ["--batch-size", "4"], ["--gen-batch-size", "4"]),
    (("bench", "training"), ["--batch-size", "4"], ["--train-batch-size", "4"]),
]


def command(path: tuple[str, ...]) -> click.Command:
    cmd = load_verb(path[0])
    for name in path[1:]:
        cmd = cmd.commands[name]
    return cmd


@pytest.mark.parametrize("path,old,new", RENAMED, ids=[f"{' '.join(p)} {o[0]}" for p, o, _ in RENAMED])
def test_renamed_flag_keeps_its_old_spelling(path, old, new, capsys):
    cmd = command(path)
    capsys.readouterr()
    by_new = parse(cmd, new)
    assert capsys.readouterr().err == ""
    by_old = parse(cmd, old)
    assert capsys.readouterr().err == f"ragft: warning: {old[0]} is deprecated, use {new[0]}\n"
    assert by_old != parse(cmd, [])  # the old spelling changed a field ...
    # ... the same one, to the same value once the config has read it (--data's commas are the old separator)
    if path == ("finetune",):
        from finetune.train import FinetuneConfig

        assert FinetuneConfig(**by_old) == FinetuneConfig(**by_new)
    else:
        assert by_old == by_new


# ---- --json: one JSON document alone on stdout ---------------------------------------------------------------

def test_corpora_stats_json(capsys):
    from corpora import load_corpus
    from corpora.stats import corpus_summary

    code, out, _ = ragft(capsys, "corpora", "stats", "brindle", "--json")
    assert code == 0
    doc = json.loads(out)
    s = corpus_summary(load_corpus("brindle"))
    assert {k: doc[k] for k in s} == s
    assert doc["by_kind_and_split"]["total"]["total"] == s["questions"]


def test_runs_list_show_diff_json(tmp_path, capsys):
    import pandas as pd

    from history.store import now_utc, record_compare

    db = str(tmp_path / "h.db")
    records = pd.DataFrame([{"system": "rag", "qid": f"q{i}", "kind": "fact", "correct": i % 2 == 0,
                             "hallucinated": i % 2 == 1, "abstained": False, "latency_seconds": 1.0 + i / 100}
                            for i in range(12)])
    summary = pd.DataFrame([{"system": "rag", "accuracy": 0.5}])
    ids = [record_compare(db, {"corpus": "atlantis", "top_k": k}, records, summary, started_at=now_utc())
           for k in (2, 3)]

    code, out, _ = ragft(capsys, "runs", "list", "--history", db, "--json")
    assert code == 0 and [r["id"] for r in json.loads(out)] == ids[::-1]
    code, out, _ = ragft(capsys, "runs", "show", str(ids[0]), "--history", db, "--json")
    run = json.loads(out)
    assert code == 0 and run["kind"] == "compare" and run["config"]["top_k"] == 2
    assert run["summary"] == [{"system": "rag", "accuracy": 0.5}] and run["n_answers"] == 12
    code, out, _ = ragft(capsys, "runs", "diff", str(ids[0]), str(ids[1]), "--history", db, "--json")
    diff = json.loads(out)
    acc = next(r for r in diff["rows"] if r["system"] == "rag" and r["metric"] == "accuracy")
    assert code == 0 and acc["delta"] == 0 and acc["significant"] is False
    code, out, err = ragft(capsys, "runs", "show", "x", "--history", db, "--json")
    assert code == 2 and out == "" and "run id must be a number" in err


def test_compare_json_is_alone_on_stdout(tmp_path, tiny_model_dir, monkeypatch, capsys):
    """A closed-book compare with the tiny random model: stdout parses as one JSON document (summary rows,
    decision); the table, log lines and the history line went to stderr."""
    from tests.conftest import guild_corpus

    monkeypatch.chdir(tmp_path)
    corpus = guild_corpus(tmp_path / "c", 5)
    code, out, err = ragft(capsys, "compare", "--corpus", str(corpus), "--systems", "base", "--generator",
                           str(tiny_model_dir), "--max-new-tokens", "3", "--injection", "0", "--out",
                           str(tmp_path / "r"), "--history", str(tmp_path / "h.db"), "--json")
    assert code == 0, err[-2000:]
    doc = json.loads(out)
    assert [r["system"] for r in doc["summary"]] == ["base"] and doc["summary"][0]["questions"] == 4
    assert set(doc["decision"]) == {"recommendation", "system", "reasons"} and doc["decision"]["reasons"]
    assert doc["run_id"] == 1 and doc["baseline"] is None
    assert "recorded as run 1" in err and "Recommendation:" in err

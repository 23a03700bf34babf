"""`ragft compare` (compare/harness.py runs and records it; the baseline and the gate: history/record.py) and
`ragft report DIR` (compare/report.py)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import click

from cli.options import config_options, pop_config
from cli.output import echo_recorded, emit_json, json_option, stdout_for, text_echo
from compare.config import CompareConfig
from history.gate import GateConfig
from history.store import HistoryConfig


@click.command()
@config_options(CompareConfig)
@config_options(GateConfig)
@config_options(HistoryConfig)
@json_option
def compare(as_json: bool, **kw):
    """Run base, RAG, fine-tuned and fine-tuned+RAG systems over a QA split; print the table and a decision.

    Recorded in the run history; with --baseline and --fail-on, exit 1 when a metric got significantly worse.
    """
    from compare.harness import run
    from history.record import against_baseline, gate_baseline

    gate, hist = pop_config(GateConfig, kw), pop_config(HistoryConfig, kw)
    baseline = gate_baseline(gate, hist.history)  # bad --fail-on or baseline: fail before any model runs
    cfg = CompareConfig(**kw)
    echo = text_echo(as_json)
    with stdout_for(as_json):
        records = run(cfg, history=hist.history, history_config=dataclasses.asdict(gate))  # records the run too
        out, run_id = Path(records.attrs["run_dir"]), records.attrs["history_run_id"]
        show_run(out, echo)
        echo_recorded(run_id, hist.history, echo)
        verdict = against_baseline(gate, baseline, records, cfg.seed) if baseline is not None else None
        for line in verdict["lines"] if verdict else ():
            echo(line)
    if as_json:
        emit_json({"run_dir": str(out), "run_id": run_id, "summary": read_summary(out),
                   "decision": read_decision(out),
                   "baseline": {k: v for k, v in verdict.items() if k != "lines"} if verdict else None})
    if verdict and not verdict["passed"]:
        sys.exit(1)


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
def report(run_dir):
    """Re-render a compare run directory's tables, plots, report.md and report.html from its saved records."""
    from compare.report import render

    render(run_dir)
    show_run(Path(run_dir))


def show_run(out: Path, echo=click.echo) -> None:
    """The summary table and the decision of a run directory, and where its report is."""
    echo((out / "summary.txt").read_text().rstrip())
    echo("\n" + (out / "decision.txt").read_text().rstrip())
    echo(f"\nreport: {out / 'report.html'} (and report.md, records, tables, plots/)")


def read_summary(out: Path) -> list[dict]:
    """summary.csv of a run directory as rows."""
    import pandas as pd

    return pd.read_csv(out / "summary.csv").to_dict("records")


def read_decision(out: Path) -> dict:
    """decision.txt (compare/decide.py: format_decision) back as {"recommendation": "RAG" | "FT" | "FT+RAG" |
    None, "system", "reasons": [str]}."""
    lines = (out / "decision.txt").read_text().splitlines()
    head = lines[0].removeprefix("Recommendation: ") if lines else "none"
    rec, _, system = head.partition(" (")
    return {"recommendation": None if rec == "none" else rec, "system": system.removesuffix(")") or None,
            "reasons": [line.strip().removeprefix("- ") for line in lines[1:] if line.strip()]}

"""The history's part in a `ragft compare` run besides its record (compare.harness.run records it): check
the gate's inputs before any model runs, and hold the finished run against its baseline (the paired diff, or
the --fail-on quality gate)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from corpora.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

    from history.gate import GateConfig


def gate_baseline(gate: GateConfig, history: str) -> tuple[pd.DataFrame, str] | None:
    """Fail on a bad --fail-on or baseline before any model runs.
    -> (the baseline's per-question scores, where they came from), or None without --baseline."""
    from history.gate import load_answers, parse_fail_on

    if gate.fail_on:
        parse_fail_on(gate.fail_on)
        if not gate.baseline:
            raise InputError("--fail-on needs --baseline (a run id from `ragft runs list` or a run directory)")
    return load_answers(gate.baseline, history) if gate.baseline else None


def against_baseline(gate: GateConfig, baseline: tuple[pd.DataFrame, str], records: pd.DataFrame,
                     seed: int = 0) -> dict:
    """The new run against its baseline, paired by (system, question).
    -> {"baseline": label, "fail_on", "passed", "lines": the text to print, "table"}: without --fail-on the
    paired diff (always passes), with it the gate's per-rule verdicts."""
    from history.gate import answers_from_records, format_diff, paired_diff, run_gate

    old, label = baseline
    new = answers_from_records(records)
    if not gate.fail_on:
        diff = paired_diff(old, new, seed=seed)
        return {"baseline": label, "fail_on": "", "passed": True, "table": diff,
                "lines": ["", f"against {label}:", format_diff(diff).to_string(index=False)]}
    passed, lines, result = run_gate(old, new, gate.fail_on, gate.alpha, seed)
    return {"baseline": label, "fail_on": gate.fail_on, "passed": passed, "table": result,
            "lines": ["", f"quality gate against {label} ({gate.fail_on}):", *lines]}


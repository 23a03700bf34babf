"""Write a run directory: records.csv (every intermediate per question), summary.csv, and a printable table."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

SUMMARY_FORMATS = {
    "accuracy": "{:.1%}", "hallucination": "{:.1%}", "abstention": "{:.1%}", "unanswerable_abstained": "{:.1%}",
    "gold_retrieved": "{:.1%}", "p50_latency_s": "{:.2f}", "tokens_in": "{:.0f}", "tokens_out": "{:.1f}",
    "train_seconds": "{:.0f}", "index_seconds": "{:.1f}",
}


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_run(out: Path, records: pd.DataFrame, summary: pd.DataFrame) -> None:
    flat = records.copy()
    for col in flat.columns:  # lists (gold, retrieved ids, scores) as JSON so the CSV reads back unambiguously
        if flat[col].map(lambda v: isinstance(v, list)).any():
            flat[col] = flat[col].map(lambda v: json.dumps(v, ensure_ascii=False))
    write_atomic(out / "records.csv", flat.to_csv(index=False))
    write_atomic(out / "summary.csv", summary.to_csv(index=False))
    write_atomic(out / "summary.txt", format_table(summary) + "\n")


def format_table(summary: pd.DataFrame) -> str:
    shown = summary.copy()
    for col, fmt in SUMMARY_FORMATS.items():
        if col in shown:
            shown[col] = shown[col].map(lambda v, f=fmt: "-" if pd.isna(v) else f.format(v))
    return shown.to_string(index=False)

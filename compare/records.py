"""A run folder's per-question records on disk: save and load, Parquet when pyarrow is installed, else CSV.

Files (stem = records | freshness_records | injection_records):
  <stem>.parquet  list columns as Parquet lists
  <stem>.csv      list columns as JSON arrays (ensure_ascii off), the one encoding of lists in every ragft CSV
Writes go through corpora.files (a unique temp name per process, then os.replace), so concurrent writers of
one folder never collide on a temp file.
"""

from __future__ import annotations

import json
from pathlib import Path

from corpora.files import atomic_path, write_atomic

# columns that hold lists in a record (JSON in CSV)
LIST_COLUMNS = ("gold", "gold_doc_ids", "retrieved_ids", "retrieved_chunks", "retrieved_scores", "old_answers")
# text columns: an empty CSV cell reads back as "" (not NaN)
TEXT_COLUMNS = ("answer", "prompt", "failure", "leak_train_id")


def has_pyarrow() -> bool:
    import importlib.util

    return importlib.util.find_spec("pyarrow") is not None


def lists_as_json(df):
    """A copy of df whose list cells are JSON strings (what a CSV holds); other cells unchanged."""
    flat = df.copy()
    for col in flat.columns:
        if flat[col].map(lambda v: isinstance(v, list)).any():
            flat[col] = flat[col].map(lambda v: json.dumps(v, ensure_ascii=False) if isinstance(v, list) else v)
    return flat


def save_records(out: str | Path, records, stem: str = "records") -> Path:
    """records (DataFrame) -> <out>/<stem>.parquet (pyarrow installed) or <stem>.csv (lists as JSON)."""
    out = Path(out)
    if has_pyarrow():
        path = out / f"{stem}.parquet"
        with atomic_path(path) as tmp:
            records.to_parquet(tmp, index=False)
        return path
    path = out / f"{stem}.csv"
    write_atomic(path, lists_as_json(records).to_csv(index=False))
    return path


def load_records(out: str | Path, stem: str = "records"):
    """<out>/<stem>.parquet or .csv -> DataFrame with list columns as lists; None when neither file is there."""
    import pandas as pd

    out = Path(out)
    if (out / f"{stem}.parquet").is_file() and has_pyarrow():
        df = pd.read_parquet(out / f"{stem}.parquet")
        for col in LIST_COLUMNS:
            if col in df:
                df[col] = df[col].map(lambda v: list(v) if v is not None and not isinstance(v, float) else v)
        return df
    if not (out / f"{stem}.csv").is_file():
        return None
    df = pd.read_csv(out / f"{stem}.csv", keep_default_na=False, na_values=[""])
    for col in LIST_COLUMNS:
        if col in df:
            df[col] = df[col].map(lambda v: json.loads(v) if isinstance(v, str) else [])
    for col in TEXT_COLUMNS:
        if col in df:
            df[col] = df[col].map(lambda v: "" if pd.isna(v) else str(v))
    return df


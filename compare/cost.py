"""Latency and cost from the per-question records, the index manifest and the adapters' cost.json.

Latency (seconds a user waits per question) = retrieval + prompt building + the generate call the question was
batched in. The generate call splits into prefill and decode when the generation record carries
`prefill_seconds` / `decode_seconds`; until it does, decode = gen_seconds and prefill is NaN.
Cost uses compute seconds per question = retrieval + prompt + gen_seconds / batch (a batch's questions share
the call), priced per hour of the hardware it ran on (price table: compare/prices.json or --prices FILE).
Arms answered by an endpoint (--engine openai: run.json's "engine") are priced per token instead, as endpoints
bill: mean tokens in and out per question (the records' tokens_in/tokens_out, from the server's `usage`) x the
table's $ per 1M input / output tokens; with both of those 0 (not priced) they fall back to hardware hours.
The costs table's priced_by column says which way each arm was priced. One-off costs (index build, training)
ran here and are priced by hardware hours either way.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from corpora.errors import InputError

DEFAULT_PRICES = Path(__file__).with_name("prices.json")
PRICE_FIELDS = {"hardware": str, "cpu_hour_usd": (int, float), "gpu": str, "gpu_hour_usd": (int, float),
                "endpoint": str, "input_usd_per_1m_tokens": (int, float), "output_usd_per_1m_tokens": (int, float)}
TOKEN_PRICES = ("input_usd_per_1m_tokens", "output_usd_per_1m_tokens")  # $ per 1,000,000 tokens, endpoint arms
TOKEN_ENGINES = ("openai",)  # engines (rag/engine.py) whose arms are billed per token
PRICED_BY = {"hours": "hardware hours", "tokens": "tokens"}  # the costs table's priced_by values
STAGES = ("retrieve", "prompt", "prefill", "decode")  # latency parts, seconds per question


def load_prices(path: str = "") -> dict:
    """The price table: defaults from compare/prices.json, overridden by the fields of `path` (JSON)."""
    prices = json.loads(DEFAULT_PRICES.read_text())
    if path:
        p = Path(path)
        try:
            extra = json.loads(p.read_text())
        except OSError as e:
            raise InputError(f"cannot read price table: {e.strerror}", str(p)) from None
        except json.JSONDecodeError as e:
            raise InputError(f"price table is not JSON: {e.msg}", str(p), e.lineno) from None
        if not isinstance(extra, dict):
            raise InputError("price table must be a JSON object", str(p))
        for k, v in extra.items():
            if k in PRICE_FIELDS and not isinstance(v, PRICE_FIELDS[k]):
                raise InputError(f"price field {k!r} has the wrong type {type(v).__name__}", str(p))
            if (k.endswith("_usd") or k in TOKEN_PRICES) and isinstance(v, (int, float)) and not (
                    math.isfinite(v) and v >= 0):
                raise InputError(f"price field {k!r} must be a finite number >= 0, got {v!r}", str(p))
        prices.update(extra)
    return prices


def hour_price(prices: dict, device: str) -> float:
    """$/hour for the device a cost was measured on ("cpu", "cpu x2", "cuda", a GPU name)."""
    return prices["cpu_hour_usd"] if str(device).lower().startswith("cpu") else prices["gpu_hour_usd"]


def token_priced(prices: dict, engine: str) -> bool:
    """Are an arm's queries priced per token? Its engine bills per token and the table has a token price
    (0 for both = not priced: hardware hours, as for the other engines)."""
    return engine in TOKEN_ENGINES and any(float(prices.get(k, 0) or 0) > 0 for k in TOKEN_PRICES)


def usd_per_1k_tokens(tokens_in: float, tokens_out: float, prices: dict) -> float:
    """Pure: $ per 1,000 questions of mean tokens_in / tokens_out per question at $ per 1M tokens in / out."""
    return 1000 * (tokens_in * float(prices.get(TOKEN_PRICES[0], 0) or 0)
                   + tokens_out * float(prices.get(TOKEN_PRICES[1], 0) or 0)) / 1e6


def mean_tokens(col: pd.Series) -> float:
    """Mean of a tokens column over the questions that have a count (a server without `usage` gives -1)."""
    v = col.astype(float)
    v = v[v >= 0]
    return float(v.mean()) if len(v) else math.nan


def stage_seconds(records: pd.DataFrame) -> pd.DataFrame:
    """Per record: retrieve, prompt, prefill, decode (latency parts), latency and compute seconds."""
    def col(name, default=np.nan):
        return records[name].astype(float) if name in records else pd.Series(default, index=records.index)

    gen = col("gen_seconds", 0.0)
    prefill = col("prefill_seconds")
    decode = col("decode_seconds")
    decode = decode.where(decode.notna(), gen - prefill.fillna(0.0))
    out = pd.DataFrame({"system": records["system"], "retrieve": col("retrieve_seconds", 0.0),
                        "prompt": col("prompt_seconds", 0.0), "prefill": prefill, "decode": decode})
    out["latency"] = out["retrieve"] + out["prompt"] + gen
    out["compute"] = out["retrieve"] + out["prompt"] + gen / col("batch", 1.0).clip(lower=1)
    return out


def latency_table(records: pd.DataFrame) -> pd.DataFrame:
    """One row per system: p50/p95 of each stage and of the total, mean tokens in/out, compute s/question."""
    s = stage_seconds(records)
    rows = []
    for name, g in s.groupby("system", sort=False):
        row = {"system": name}
        for stage in (*STAGES, "latency"):
            v = g[stage].dropna()
            row[f"{stage}_p50_s"] = float(v.quantile(0.5)) if len(v) else math.nan
            row[f"{stage}_p95_s"] = float(v.quantile(0.95)) if len(v) else math.nan
        r = records[records["system"] == name]
        row["tokens_in"], row["tokens_out"] = float(r["tokens_in"].mean()), float(r["tokens_out"].mean())
        row["compute_s_per_q"] = float(g["compute"].mean())
        rows.append(row)
    return pd.DataFrame(rows)


def dir_bytes(path: str | Path) -> int:
    """Bytes of the files in a folder, ragft's output marker left out (it is bookkeeping, not the index)."""
    from corpora.outputs import MARKER

    p = Path(path)
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file() and f.name != MARKER) if p.is_dir() else 0


def cost_table(records: pd.DataFrame, meta: dict, prices: dict) -> pd.DataFrame:
    """One row per system: $ per 1,000 questions, one-off seconds and $ (index build + training).

    meta: the run's run.json: {"device", "index": {"build_seconds", "size_bytes"} | None,
          "systems": [{"name", "retriever", "adapter_key", "family"}], "adapters": {key: cost record},
          "engine": the run's --engine (absent: transformers)}; a system's own "engine" wins over the run's.
    Per question: compute_s_per_q x the hardware's $/hour, or for an endpoint arm (token_priced) mean tokens
    in/out x $/1M tokens (priced_by says which).
    """
    lat = latency_table(records).set_index("system")
    query_rate = hour_price(prices, meta.get("device", "cpu"))
    index = meta.get("index") or {}
    rows = []
    for s in meta["systems"]:
        if s["name"] not in lat.index:
            continue
        index_s = float(index.get("build_seconds", 0.0)) if s["retriever"] != "none" else 0.0
        ad = meta.get("adapters", {}).get(s["adapter_key"], {}) if s["adapter_key"] else {}
        train_s = float(ad.get("train_seconds", 0.0) or 0.0)
        train_rate = hour_price(prices, ad.get("device", meta.get("device", "cpu")))
        usd_per_1k = lat.loc[s["name"], "compute_s_per_q"] * 1000 / 3600 * query_rate
        by = "hours"
        if token_priced(prices, s.get("engine") or meta.get("engine") or "transformers"):
            r = records[records["system"] == s["name"]]
            usd_per_1k = usd_per_1k_tokens(mean_tokens(r["tokens_in"]), mean_tokens(r["tokens_out"]), prices)
            by = "tokens"
        rows.append({
            "system": s["name"], "family": s["family"],
            "compute_s_per_q": lat.loc[s["name"], "compute_s_per_q"],
            "usd_per_1k": usd_per_1k, "priced_by": PRICED_BY[by],
            "index_seconds": index_s, "index_bytes": int(index.get("size_bytes", 0)) if index_s else 0,
            "train_seconds": train_s, "trained_tokens": int(ad.get("trained_tokens", 0) or 0),
            "train_peak_bytes": int(ad.get("peak_memory_bytes", 0) or 0),
            "one_off_usd": index_s / 3600 * query_rate + train_s / 3600 * train_rate,
        })
    return pd.DataFrame(rows)


def break_even(one_off_a: float, per_q_a: float, one_off_b: float, per_q_b: float) -> float:
    """Questions after which A (more one-off cost) has cost no more in total than B.

    total(V) = one_off + per_q * V. 0 when A never costs more; inf ("never") when A's queries are not cheaper.
    per_q in $ per question.
    """
    if one_off_a <= one_off_b and per_q_a <= per_q_b:
        return 0.0
    if per_q_a >= per_q_b:
        return math.inf
    return (one_off_a - one_off_b) / (per_q_b - per_q_a)


def break_even_table(costs: pd.DataFrame) -> pd.DataFrame:
    """Each fine-tuned arm against each retrieval-only arm: the question volume at which it pays back."""
    rows = []
    ft = costs[costs["family"].isin(["FT", "FT+RAG"])]
    rag = costs[costs["family"] == "RAG"]
    for _, a in ft.iterrows():
        for _, b in rag.iterrows():
            v = break_even(a["one_off_usd"], a["usd_per_1k"] / 1000, b["one_off_usd"], b["usd_per_1k"] / 1000)
            rows.append({"fine_tuned": a["system"], "versus": b["system"], "extra_one_off_usd": a["one_off_usd"] - b["one_off_usd"],
                         "saving_per_1k_usd": b["usd_per_1k"] - a["usd_per_1k"], "break_even_questions": v})
    return pd.DataFrame(rows, columns=["fine_tuned", "versus", "extra_one_off_usd", "saving_per_1k_usd",
                                       "break_even_questions"])


def format_volume(v: float) -> str:
    if math.isinf(v):
        return "never"
    if v == 0:
        return "immediately"
    return f"{v:,.0f} questions"


def money(v) -> str:
    """Dollars as the report and the decision print them: sign before the $, cents, thousands separated
    (-0.0241 -> "-$0.02", 30.04 -> "$30.04", 1234.5 -> "$1,234.50"); a nonzero amount under half a cent keeps
    two significant digits (0.00123 -> "$0.0012") so it does not read as free; NaN/None -> "-"."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    v = float(v)
    if math.isinf(v):
        return "-$inf" if v < 0 else "$inf"
    sign, a = ("-" if v < 0 else ""), abs(v)
    if a == 0 or a >= 0.005:
        text = f"{a:,.2f}"
        return ("" if text == "0.00" else sign) + "$" + text
    digits = 1 - math.floor(math.log10(a))  # two significant digits
    return f"{sign}${a:.{digits}f}"


def drop_arms(table: pd.DataFrame, dropped) -> pd.DataFrame:
    """The rows of a cost table (system) or a break-even table (fine_tuned, versus) that name none of the
    systems the decision dropped (compare/decide.py: decide()["dropped"])."""
    dropped = set(dropped)
    keep = pd.Series(True, index=table.index)
    for col in ("system", "fine_tuned", "versus"):
        if col in table:
            keep &= ~table[col].isin(dropped)
    return table[keep]

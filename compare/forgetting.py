"""Forgetting check (issue 16, item 5): what general ability did fine-tuning cost?

Two probes written for the project (corpora/general/README.md):
  general_qa.jsonl    300 short common-knowledge questions (capitals, science, arithmetic, animals, colours, ...)
                      in the native qa.jsonl row shape, each with its accepted answers
  general_text.txt    a few thousand words of plain encyclopaedic English, for perplexity
The bare model ("base") and each adapter answer a seeded sample of `general_size` questions closed-book with the
run's prompt and decoding (cached like the main answers: answers/general-<model>.jsonl; kept as records in
general_records.parquet/.csv), and score the text's perplexity (answers/general-ppl-<model>.json). Per model:
  general_accuracy   share of the sample answered right (contains an accepted answer, as in the main scores)
  general_delta      general_accuracy - base's, in percentage points
  general_p          McNemar on the paired answers against base (corpora/significance.py mcnemar)
  general_ppl_ratio  the model's perplexity on the text / base's (> 1: the text got less likely)
Every system takes the numbers of the weights it answers with: rag and base share base's, ft+rag shares ft's
(the same model, closed-book). The check runs only when the run has an adapter arm: without one nothing can
have forgotten. With --limit N the question sample is at most N.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from compare.adapters import ensure_generator
from compare.cache import answer_cached, docs_sha, fingerprint, log, weights_file
from compare.fit import adapter_models, drop_records, model_key, sample_questions, sample_size, score_rows
from compare.systems import System
from corpora import SHIPPED_DIR
from corpora.files import text_sha, write_atomic
from corpora.significance import mcnemar

GENERAL_DIR = SHIPPED_DIR / "general"
GENERAL_QA = GENERAL_DIR / "general_qa.jsonl"
GENERAL_TEXT = GENERAL_DIR / "general_text.txt"
PPL_WINDOW = 512  # tokens per forward pass over the text (non-overlapping windows; the first token of each is context)
GENERAL_COLUMNS = ("general_accuracy", "general_n", "general_delta", "general_p", "general_ppl_ratio")


def load_general(path: Path = GENERAL_QA) -> list[dict]:
    """The general-knowledge questions (qa.jsonl rows: id, question, answers, doc_ids [], kind fact)."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def paired_delta(arm: dict, base: dict) -> dict:
    """arm, base: {qid: correct} -> {"delta": points (arm - base accuracy over the shared questions), "p":
    McNemar p, "arm_only", "base_only": discordant counts, "n": shared questions}. n 0: NaN delta and p."""
    qids = [q for q in arm if q in base]
    if not qids:
        return {"delta": math.nan, "p": math.nan, "arm_only": 0, "base_only": 0, "n": 0}
    a = [bool(arm[q]) for q in qids]
    b = [bool(base[q]) for q in qids]
    t = mcnemar(a, b)
    return {"delta": 100.0 * (sum(a) - sum(b)) / len(qids), "p": t["p_value"], "arm_only": t["a_only"],
            "base_only": t["b_only"], "n": len(qids)}


def ppl_ratio(ppl: float | None, base_ppl: float | None) -> float:
    """Perplexity relative to base's (NaN when either is missing)."""
    if ppl is None or base_ppl is None or not base_ppl or math.isnan(ppl) or math.isnan(base_ppl):
        return math.nan
    return ppl / base_ppl


def general_arms(records: pd.DataFrame, ppl: dict[str, dict]) -> dict[str, dict]:
    """General records (model "base" among them) and {model: perplexity record} -> {model: general_accuracy,
    general_n, general_delta, general_p, general_arm_only, general_base_only, general_ppl, general_ppl_ratio}."""
    by_model = {str(m): dict(zip(g["qid"], g["correct"].astype(bool))) for m, g in records.groupby("model", sort=False)}
    base = by_model.get("base", {})
    base_ppl = (ppl.get("base") or {}).get("ppl")
    arms = {}
    for model, right in by_model.items():
        d = paired_delta(right, base) if base else {"delta": math.nan, "p": math.nan, "arm_only": 0, "base_only": 0}
        p = (ppl.get(model) or {}).get("ppl")
        arms[model] = {"general_accuracy": sum(right.values()) / len(right), "general_n": len(right),
                       "general_delta": d["delta"], "general_p": d["p"], "general_arm_only": d["arm_only"],
                       "general_base_only": d["base_only"], "general_ppl": math.nan if p is None else p,
                       "general_ppl_ratio": ppl_ratio(p, base_ppl)}
    return arms


def general_columns(summary: pd.DataFrame, meta: dict | None) -> pd.DataFrame:
    """summary with GENERAL_COLUMNS per system, from run.json's forgetting check (meta["general"]["arms"] by
    model, meta["systems"] for each system's adapter key: a system takes its weights' numbers); NaN without it."""
    arms = ((meta or {}).get("general") or {}).get("arms") or {}
    keys = {s["name"]: s.get("adapter_key", "") or "base" for s in (meta or {}).get("systems", [])}
    summary = summary.copy()
    for col in GENERAL_COLUMNS:
        summary[col] = [float(arms.get(keys.get(name, ""), {}).get(col, math.nan)) for name in summary["system"]]
    return summary


def significant_drops(summary: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Systems whose general accuracy fell against base with McNemar p < alpha."""
    if "general_delta" not in summary:
        return summary.iloc[0:0]
    return summary[(summary["general_delta"] < 0) & (summary["general_p"] < alpha)]


def text_windows(ids: list[int], window: int = PPL_WINDOW) -> list[list[int]]:
    """Token ids -> consecutive windows of at most `window` (a last window of one token predicts nothing: dropped)."""
    return [ids[k:k + window] for k in range(0, len(ids), window) if len(ids[k:k + window]) > 1]


def perplexity(model, tokenizer, text: str, window: int = PPL_WINDOW) -> dict:
    """{"tokens": predicted tokens, "nll": summed negative log-likelihood (nats), "ppl": exp(nll / tokens)} of
    `text` under `model`, scored in non-overlapping windows (each window's first token is only context)."""
    import torch

    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    device = next(model.parameters()).device
    nll, n = 0.0, 0
    with torch.no_grad():
        for w in text_windows(ids, window):
            x = torch.tensor([w], device=device)  # (1, T)
            logp = torch.log_softmax(model(input_ids=x).logits[0, :-1].float(), dim=-1)  # (T-1, vocab)
            nll -= float(logp.gather(1, x[0, 1:, None]).sum())
            n += len(w) - 1
    return {"tokens": n, "nll": nll, "ppl": math.exp(nll / n) if n else math.nan}


def perplexity_cached(gen, cfg, adapter: dict | None, text: str, path: Path) -> dict:
    """perplexity() of the generator (with its adapter) on `text`, from `path` when made with the same
    generator, adapter weights, text and window."""
    from corpora.files import file_sha

    fp = {"generator": cfg.generator, "text_sha": text_sha(text), "window": PPL_WINDOW,
          "adapter_sha": file_sha(weights_file(adapter["adapter"])) if adapter else None}
    if path.is_file():
        try:
            saved = json.loads(path.read_text())
            if saved.get("fingerprint") == fp:
                return saved["perplexity"]
        except (json.JSONDecodeError, KeyError, AttributeError):
            pass  # damaged: scored again and rewritten
    if gen.model is None:  # --engine vllm|openai: no in-process model to score the text with (NaN, not cached)
        return {"tokens": len(gen.tokenizer(text)["input_ids"]), "nll": math.nan, "ppl": math.nan}
    result = perplexity(gen.model, gen.tokenizer, text)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps({"fingerprint": fp, "perplexity": result}))
    return result


def run_general(cfg, corpus, systems: list[System], adapters: dict, out: Path, gen, progress: bool):
    """The forgetting check for base and each adapter -> (run.json's "general" entry, {} when off, and the
    generator). Writes general_records to `out`."""
    from compare.records import save_records

    keys = adapter_models(systems, adapters)
    questions = sample_questions(load_general(), sample_size(cfg.general_size, cfg.limit), cfg.seed)
    if not keys or not questions:
        drop_records(out, "general_records")
        return {}, gen
    text = GENERAL_TEXT.read_text(encoding="utf-8")
    dsha = docs_sha(corpus.docs)
    rows, ppl = [], {}
    for key in keys + [""]:  # the adapters first (one is attached now), then the bare model
        ad = adapters.get(key) if key else None
        gen = ensure_generator(gen, cfg, ad["adapter"] if ad else None)
        s = System(f"general:{key or 'base'}", "none", key)
        fp = {**fingerprint(cfg, s, ad, None, dsha), "check": "general", "set": text_sha(json.dumps(questions))}
        stem = s.file_stem[len("general_"):]
        answers = answer_cached(gen, None, s, questions, cfg, out / "answers" / f"general-{stem}.jsonl", fp, progress)
        rows += score_rows(model_key(s), questions, answers)
        ppl[model_key(s)] = perplexity_cached(gen, cfg, ad, text, out / "answers" / f"general-ppl-{stem}.json")
    records = pd.DataFrame(rows)
    save_records(out, records, "general_records")
    arms = general_arms(records, ppl)
    log(progress, "general: " + ", ".join(f"{k} {v['general_accuracy']:.1%} (ppl x{v['general_ppl_ratio']:.3f})"
                                          for k, v in arms.items()))
    return {"questions": len(questions), "size": cfg.general_size, "set": str(GENERAL_QA.name),
            "text_tokens": ppl["base"]["tokens"], "perplexity": ppl, "arms": arms}, gen

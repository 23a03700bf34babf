"""`ragft bench ft-methods`: issue 16 item 9's table, fine-tuning method x what it learned, forgot and cost.

Two halves, so the long measurement stays one visible `ragft compare` command line:
  compare_argv(cfg)    the ONE compare run: base and every method arm (ft:lora, ft:dora, ft:hft, ft:full, ft:memory,
                       ft-multi:merge, ft-multi:route) closed-book on the corpus's test split, same seed, every
                       adapter trained now with the same step budget (--max-steps; each ft-multi cluster adapter
                       gets it too), --injection 0 (no retrieval arm to probe), --history off.
  build_table(run)     the finished run folder -> one row per system: fit, trained-fact accuracy, document-only-fact
                       hallucination, unanswerable abstention, general_delta, train seconds, trainable parameters.

Where each column comes from (nothing is re-measured here):
  fit, fit_n, general_delta, general_p   summary.csv (compare/fit.py, compare/forgetting.py)
  trained-fact accuracy     records of answerable test questions whose `paraphrase_of` names a train question
                            (qa.jsonl; the records do not carry it, so the corpus is read): the fact was trained,
                            in other words; as finetune/evaluate.py's "trained facts" (atlantis: 67)
  document-only-fact hallucination   answerable test questions without a train twin (the fact is only in the
                            documents, atlantis: 46): share answered wrong without abstaining (`hallucinated`)
  unanswerable abstention   unanswerable test questions (atlantis: 27): share answered "I don't know" (`abstained`)
  train seconds, steps      run.json "adapters" (the training loop's seconds; ft-multi: its K adapters summed)
  trainable parameters, lr  the adapter folder's cost.json (ft-multi: the K cluster adapters' cost.json summed)

compare has no per-method learning rate: every arm trains at finetune's --lr default (2e-3, chosen for LoRA);
full and hft usually want 1e-5..1e-4 (docs/defaults.md, "ragft finetune"). finetune_commands() gives the
`ragft finetune` lines that train hft/full at another lr, whose folders go in as `ft:<folder>` arms (pretrained=).
"""

from __future__ import annotations

import json
import math
import shlex
from dataclasses import dataclass, fields
from pathlib import Path

from corpora import DEFAULT_CORPUS
from corpora.config import check, flag_name, opt
from corpora.errors import InputError

# method label -> compare system (compare/systems.py); the multi arms only where parse_systems accepts them
METHOD_ARMS = {"lora": "ft:lora", "dora": "ft:dora", "hft": "ft:hft", "full": "ft:full", "memory": "ft:memory",
               "multi merge": "ft-multi:merge", "multi route": "ft-multi:route"}
MULTI = ("multi merge", "multi route")
# Flags that always appear in the command, default or not, so the line states its settings.
STATED = ("corpus", "systems", "split", "recipe", "max_steps", "seed", "fit_size", "general_size", "injection", "out")

# Time figures the estimate is made of (seconds; 2 CPU cores, SmolLM2-135M fp32). Measured where a source is given.
LORA_STEP_S = (2.8, 4.2)   # 1-epoch qa LoRA on atlantis: 27 steps in 75-114 s (demo runs' cost.json)
STEP_FACTOR = {"lora": 1.0, "memory": 1.0, "dora": 1.9, "hft": 2.2, "full": 2.2}  # vs a LoRA step: one 1-step
#   smoke each on the shared machine (2026-12-02: lora 2.6 s, dora 4.9, hft 5.8, full 5.6 train_seconds), rough
MEMORY_CHECK_S = 40        # one memory-tuning fact check over the train facts: 41 s train_seconds for 1 step + 1
#   check in the same smoke (far more than docs/defaults.md's "two training steps"); plus ~50 s more wall
LOAD_SAVE_S = 10           # model load + save per trained adapter: wall - train seconds in that smoke, 5-9 s
CLOSED_BOOK_140_S = (26, 52)  # 140 atlantis test questions closed-book at batch 32: 26 s (LoRA, short answers) to
#   52 s (base, 24 tokens an answer) on the idle machine (demo run of 2026-12-01, records' batch latencies)
BATCH32_S = (9, 17)        # one closed-book generation batch of 32 (46 s for 3 batches, docs/defaults.md)
PPL_S = 7                  # perplexity of the 3,125-token general text at ~450 prefill tokens/s


@dataclass
class FtMethodsConfig:
    run: str = ""
    """Finished `ragft compare` run folder to tabulate (default '': print the compare command to run)."""
    corpus: str = DEFAULT_CORPUS
    """Corpus of the compare run: shipped name or folder (default atlantis)."""
    seed: int = opt(0, min=0)
    """Seed of the compare run: training, samples, bootstrap (default 0)."""
    max_steps: int = opt(16, min=1)
    """Training steps of every adapter, each ft-multi cluster adapter too (default 16 steps)."""
    fit_size: int = opt(32, min=0)
    """compare --fit-size: train questions each adapter answers for the fit check (default 32)."""
    general_size: int = opt(96, min=0)
    """compare --general-size: general-knowledge questions asked of each model (default 96)."""
    out: str = ""
    """Run folder the compare command writes (default runs/ft-methods-<corpus>-seed<seed>)."""
    table: str = ""
    """Markdown file the table is written to; a .csv beside it (default <run>/ft_methods.md)."""

    def __post_init__(self):
        check(self)


# ---- the command ----------------------------------------------------------------------------------------------

def multi_available() -> bool:
    """Whether compare/systems.py accepts the ft-multi arms (another helper is adding them)."""
    from compare.systems import parse_systems

    try:
        parse_systems(",".join(METHOD_ARMS[m] for m in MULTI))
    except InputError:
        return False
    return True


def method_systems(pretrained: dict[str, str] | None = None, multi: bool | None = None) -> list[str]:
    """["base", "ft:lora", ...]: base, then every method arm. pretrained: method -> an adapter/model folder trained
    beforehand (finetune_commands), used as `ft:<folder>` instead of training it in the run."""
    multi = multi_available() if multi is None else multi
    arms = [f"ft:{(pretrained or {})[m]}" if m in (pretrained or {}) else s for m, s in METHOD_ARMS.items()
            if multi or m not in MULTI]
    return ["base", *arms]


def compare_config(cfg: FtMethodsConfig, pretrained: dict[str, str] | None = None, multi: bool | None = None):
    """The CompareConfig of the run (checked by CompareConfig itself)."""
    from compare.config import CompareConfig

    out = cfg.out or f"runs/ft-methods-{Path(cfg.corpus).name}-seed{cfg.seed}"
    return CompareConfig(corpus=cfg.corpus, systems=",".join(method_systems(pretrained, multi)), split="test",
                         recipe="qa", max_steps=cfg.max_steps, seed=cfg.seed, fit_size=cfg.fit_size,
                         general_size=cfg.general_size, injection=0, out=out)


def argv_of(cc) -> list[str]:
    """A CompareConfig -> `ragft compare` argv: the STATED fields and every field that differs from its default,
    under the CLI's flag names (corpora.config.flag_name, as cli/options.py maps them), then --history off."""
    from compare.config import CompareConfig

    default = CompareConfig()
    argv = ["ragft", "compare"]
    for f in fields(cc):
        value = getattr(cc, f.name)
        if f.name not in STATED and value == getattr(default, f.name):
            continue
        flag = flag_name(f)
        if isinstance(value, bool):
            argv.append(f"--{flag}" if value else f"--no-{flag}")
        else:
            argv += [f"--{flag}", str(value)]
    return argv + ["--history", "off"]


def compare_argv(cfg: FtMethodsConfig, pretrained: dict[str, str] | None = None, multi: bool | None = None) -> list[str]:
    return argv_of(compare_config(cfg, pretrained, multi))


def compare_command(cfg: FtMethodsConfig, pretrained: dict[str, str] | None = None, multi: bool | None = None) -> str:
    """The one command line, shell-quoted, as the model lane runs it (DEVELOPERS.md: flock /work/model.lock)."""
    return shlex.join(compare_argv(cfg, pretrained, multi))


def finetune_commands(cfg: FtMethodsConfig, lr: float = 1e-4, methods: tuple[str, ...] = ("hft", "full"),
                      root: str = "runs") -> dict[str, str]:
    """method -> the `ragft finetune` line that trains it on the run's recipe, steps and seed at `lr` into
    root/ft-methods-<method>-lr<lr>; pass {method: that folder} as compare_argv's pretrained."""
    out = {}
    for m in methods:
        folder = f"{root}/ft-methods-{m}-lr{lr:g}"
        out[m] = shlex.join(["ragft", "finetune", "--corpus", cfg.corpus, "--method", m, "--recipe", "qa",
                             "--max-steps", str(cfg.max_steps), "--seed", str(cfg.seed), "--lr", f"{lr:g}",
                             "--out", folder])
    return out


def estimate_seconds(cfg: FtMethodsConfig, multi: bool | None = None, clusters: int = 3) -> tuple[float, float]:
    """(low, high) wall seconds of the compare run on the 2-core machine, from the figures above: an ESTIMATE,
    most of whose step factors are not measured. Training: each method's steps x its step time (ft-multi: K
    adapters x steps); answers: base and every arm over the test split; fit: each adapter with its own weights
    (not route); general: base and the same adapters, plus a perplexity pass each."""
    multi = multi_available() if multi is None else multi
    single = [m for m in METHOD_ARMS if m not in MULTI]
    arms = len(single) + (2 if multi else 0)
    weights = len(single) + (1 if multi else 0)  # models with weights of their own: the merge has, route has not

    def total(i: int) -> float:  # i: 0 the low figures, 1 the high ones
        step = LORA_STEP_S[i]
        train = sum(cfg.max_steps * step * STEP_FACTOR[m] + LOAD_SAVE_S for m in single)
        train += MEMORY_CHECK_S + 50  # memory tuning's check at the last step (no epoch end within the budget)
        train += clusters * (cfg.max_steps * step + LOAD_SAVE_S) if multi else 0
        answers = CLOSED_BOOK_140_S[1] + arms * CLOSED_BOOK_140_S[i]  # base, then the arms
        fit = weights * math.ceil(cfg.fit_size / 32) * BATCH32_S[i]
        general = (weights + 1) * (math.ceil(cfg.general_size / 32) * BATCH32_S[i] + PPL_S)
        return train + answers + fit + general + 30  # + index and embedder for the route arm

    return total(0), total(1)


# ---- the table ------------------------------------------------------------------------------------------------

def question_groups(questions: list[dict]) -> dict[str, str]:
    """qid -> trained_fact | document_only | unanswerable, for every test question. trained_fact: answerable with
    `paraphrase_of` naming a train question (its fact was in the training data)."""
    train = {q["id"] for q in questions if q.get("split") == "train"}
    groups = {}
    for q in questions:
        if q.get("split", "test") != "test":
            continue
        if q["kind"] == "unanswerable":
            groups[q["id"]] = "unanswerable"
        else:
            groups[q["id"]] = "trained_fact" if q.get("paraphrase_of") in train else "document_only"
    return groups


def share(values) -> tuple[float, int, int]:
    """(share true, true count, n) of a boolean column; NaN share when empty."""
    vals = [bool(v) for v in values]
    n, k = len(vals), sum(vals)
    return (k / n if n else math.nan), k, n


def adapter_folder(run_dir: Path, path: str | None) -> Path | None:
    """An adapter path as run.json has it (relative to where compare ran) -> the folder on this machine: the part
    after the run folder's name, under run_dir (so the table can be built from any directory), else the path as
    given (an `ft:<folder>` arm outside the run); None when neither exists."""
    if not path:
        return None
    p = Path(path)
    if run_dir.name in p.parts:
        i = len(p.parts) - 1 - p.parts[::-1].index(run_dir.name)
        tail = run_dir.joinpath(*p.parts[i + 1:])
        if tail.exists():
            return tail
    return p if p.exists() else None


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def adapter_facts(folder: Path | None, key: str) -> dict:
    """{"method", "trainable_params", "lr"} from an adapter folder's cost.json; ft-multi (key multi:*): the K
    cluster adapters' trainable parameters summed (route: folder is adapter-multi-k<K>; merge: its merged-<how>)."""
    if folder is None:
        return {"method": None, "trainable_params": math.nan, "lr": math.nan}
    if key.startswith("multi:"):
        root = folder if (folder / "manifest.json").is_file() else folder.parent
        clusters = [read_json(root / c["adapter"] / "cost.json")
                    for c in read_json(root / "manifest.json").get("clusters", [])]
        params = [c.get("trainable_params") for c in clusters]
        lrs = {c.get("config", {}).get("lr") for c in clusters}
        return {"method": f"multi {key[6:]}",
                "trainable_params": sum(params) if params and None not in params else math.nan,
                "lr": lrs.pop() if len(lrs) == 1 and None not in lrs else math.nan}
    cost = read_json(folder / "cost.json")
    tp = cost.get("trainable_params")
    return {"method": cost.get("method"), "trainable_params": math.nan if tp is None else tp,
            "lr": cost.get("config", {}).get("lr", math.nan)}


def load_run(run_dir: str | Path) -> dict:
    """A finished compare folder's records, summary, run.json and config.json; InputError when one is missing."""
    import pandas as pd

    from compare.records import load_records

    run = Path(run_dir)
    records = load_records(run)
    missing = [n for n, ok in (("records", records is not None), ("summary.csv", (run / "summary.csv").is_file()),
                               ("run.json", (run / "run.json").is_file())) if not ok]
    if missing:
        raise InputError(f"not a finished `ragft compare` run folder (no {', '.join(missing)})", str(run))
    return {"dir": run, "records": records, "summary": pd.read_csv(run / "summary.csv"),
            "meta": read_json(run / "run.json"), "config": read_json(run / "config.json")}


def build_table(run_dir: str | Path, questions: list[dict] | None = None):
    """The run folder -> DataFrame, one row per system in run order. questions: the corpus's qa rows (default:
    load the corpus named in config.json). Shares are fractions 0-1; general_delta is in percentage points."""
    import pandas as pd

    run = load_run(run_dir)
    if questions is None:
        from corpora import load_corpus

        questions = load_corpus(run["config"].get("corpus") or run["meta"].get("corpus") or DEFAULT_CORPUS).qa
    groups = question_groups(questions)
    records, meta = run["records"], run["meta"]
    summary = run["summary"].set_index("system")
    systems = meta.get("systems") or [{"name": s, "adapter_key": ""} for s in summary.index]
    rows = []
    for s in systems:
        name, key = s["name"], s.get("adapter_key", "")
        recs = records[records["system"] == name]
        group = recs["qid"].map(groups)
        unknown = recs["qid"][group.isna()]
        if len(unknown):
            raise InputError(f"system {name}: {len(unknown)} answered questions are not test questions of the "
                             f"corpus (first {unknown.iloc[0]}); pass the run's corpus", str(run["dir"]))
        ad = meta.get("adapters", {}).get(key, {}) if key else {}
        facts = adapter_facts(adapter_folder(run["dir"], ad.get("adapter")), key) if key else \
            {"method": "base" if s.get("retriever", "none") == "none" else "base + retrieval", "trainable_params": 0,
             "lr": math.nan}
        sm = summary.loc[name] if name in summary.index else pd.Series(dtype=float)
        tf, tf_k, tf_n = share(recs["correct"][group == "trained_fact"])
        dh, dh_k, dh_n = share(recs["hallucinated"][group == "document_only"])
        ua, ua_k, ua_n = share(recs["abstained"][group == "unanswerable"])
        rows.append({
            "method": facts["method"] or method_label(name, key), "system": name,
            "fit": float(sm.get("fit", math.nan)), "fit_n": float(sm.get("fit_n", math.nan)),
            "trained_fact_accuracy": tf, "trained_fact_right": tf_k, "trained_fact_n": tf_n,
            "document_only_hallucination": dh, "document_only_hallucinated": dh_k, "document_only_n": dh_n,
            "unanswerable_abstention": ua, "unanswerable_abstained": ua_k, "unanswerable_n": ua_n,
            "general_accuracy": float(sm.get("general_accuracy", math.nan)),
            "general_delta": float(sm.get("general_delta", math.nan)),
            "general_p": float(sm.get("general_p", math.nan)),
            "train_seconds": float(ad.get("train_seconds") or 0.0) if key else 0.0,
            "steps": ad.get("steps") if key else 0,
            "trainable_params": facts["trainable_params"], "lr": facts["lr"]})
    return pd.DataFrame(rows)


def method_label(name: str, key: str) -> str:
    """The method of a system when its adapter folder says nothing: from its adapter key."""
    if not key:
        return "base"
    if key.startswith("method:"):
        return key[7:]
    if key.startswith("multi:"):
        return f"multi {key[6:]}"
    return name


# ---- markdown -------------------------------------------------------------------------------------------------

COLUMNS = {  # column -> what it means (the header block lists them)
    "method": "fine-tuning method (the adapter folder's cost.json; multi merge/route: K cluster LoRA adapters "
              "merged linearly / routed per question by the top retrieved chunk's cluster)",
    "fit": "closed-book accuracy on a seeded sample of the train questions the adapter was taught "
           "(compare/fit.py; below 80%: under-trained; route has no single set of weights: n/a)",
    "trained-fact accuracy": "share right of the answerable test questions whose paraphrase_of names a train "
                             "question (the fact was trained, asked in another wording)",
    "document-only-fact hallucination": "share answered wrong without abstaining, of the answerable test questions "
                                        "with no train twin (the fact is only in the documents)",
    "unanswerable abstention": "share of the unanswerable test questions answered \"I don't know\"",
    "general_delta": "general-knowledge accuracy minus base's, percentage points, McNemar p on the paired answers "
                     "(compare/forgetting.py); n/a for route",
    "train seconds": "training loop seconds (run.json; multi: its K adapters summed, shared by merge and route)",
    "steps": "optimizer steps trained (run.json; multi: its K adapters summed)",
    "lr": "peak learning rate (cost.json's config)",
    "trainable parameters": "parameters with gradients (cost.json; hft: all block weights, half of each block "
                            "frozen per round; multi: K adapters summed)",
}


def pct(x: float, k: int | None = None, n: int | None = None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{100 * x:.1f}%" + (f" ({k}/{n})" if n is not None else "")


def table_cells(df) -> list[list[str]]:
    """The DataFrame's rows as the markdown table's cells."""
    rows = []
    for r in df.to_dict("records"):
        fit = "n/a" if math.isnan(r["fit"]) else f"{pct(r['fit'])} (n={int(r['fit_n'])})"
        gd = "n/a" if math.isnan(r["general_delta"]) else (
            f"{r['general_delta']:+.1f} pts" + ("" if math.isnan(r["general_p"]) else f" (p={r['general_p']:.2g})"))
        tp = r["trainable_params"]
        rows.append([str(r["method"]), str(r["system"]), fit,
                     pct(r["trained_fact_accuracy"], r["trained_fact_right"], r["trained_fact_n"]),
                     pct(r["document_only_hallucination"], r["document_only_hallucinated"], r["document_only_n"]),
                     pct(r["unanswerable_abstention"], r["unanswerable_abstained"], r["unanswerable_n"]),
                     gd, f"{r['train_seconds']:.0f}", str(r["steps"] if r["steps"] is not None else "n/a"),
                     "-" if isinstance(r["lr"], float) and math.isnan(r["lr"]) else f"{r['lr']:g}",
                     "n/a" if isinstance(tp, float) and math.isnan(tp) else f"{int(tp):,}"])
    return rows


def header_block(run: dict, table) -> list[str]:
    """Machine, settings, seed, date and the command, from the run folder's own files."""
    import os
    import platform
    import time

    cfg, meta = run["config"], run["meta"]
    finished = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime((run["dir"] / "run.json").stat().st_mtime))
    devices = sorted({str(a.get("device")) for a in meta.get("adapters", {}).values() if a.get("device")})
    lrs = sorted({f"{x:g}" for x in table["lr"] if isinstance(x, (int, float)) and not math.isnan(x)})
    try:
        from compare.config import CompareConfig

        known = {f.name for f in fields(CompareConfig)}
        command = shlex.join(argv_of(CompareConfig(**{k: v for k, v in cfg.items() if k in known})))
    except (InputError, TypeError):
        command = "(config.json unreadable)"
    return [
        f"# Fine-tuning methods on {meta.get('corpus', cfg.get('corpus'))} (issue 16, item 9)", "",
        f"- Run folder: `{run['dir']}`, finished {finished} (run.json's modification time).",
        f"- Machine: generation on {meta.get('device', '?')} with {meta.get('threads', '?')} torch threads "
        f"(run.json); adapters trained on {', '.join(devices) or '?'} (cost.json). Table built on "
        f"{platform.platform()}, {os.cpu_count()} CPUs visible.",
        f"- Settings: split {meta.get('split', cfg.get('split'))} ({meta.get('questions', '?')} questions), "
        f"seed {cfg.get('seed')}, recipe {cfg.get('recipe')}, every adapter --max-steps {cfg.get('max_steps')} "
        f"(--epochs {cfg.get('epochs')} when 0; ft-multi: each of its --clusters {cfg.get('clusters')} adapters), "
        f"peak lr {' / '.join(lrs) or '?'} (column lr; arms trained in the run all get finetune's default, compare "
        f"has no per-method lr), closed-book, greedy, "
        f"{cfg.get('max_new_tokens')} new tokens, fit check {cfg.get('fit_size')} train questions, forgetting "
        f"check {cfg.get('general_size')} general questions.",
        f"- Command: `{command}`", "", "Columns:",
        *[f"- {k}: {v}" for k, v in COLUMNS.items()], ""]


def to_markdown(run_dir: str | Path, table=None) -> str:
    """Header block + the table as GitHub markdown."""
    run = load_run(run_dir)
    table = build_table(run_dir) if table is None else table
    head = ["method", "system", "fit", "trained-fact accuracy", "document-only-fact hallucination",
            "unanswerable abstention", "general_delta", "train seconds", "steps", "lr", "trainable parameters"]
    lines = header_block(run, table)
    lines += ["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in table_cells(table)]
    return "\n".join(lines) + "\n"


def write_table(cfg: FtMethodsConfig) -> tuple[str, Path]:
    """cfg.run's table -> (markdown, the .md path); the DataFrame also as CSV beside it."""
    from corpora.files import write_atomic

    if not cfg.run:
        raise InputError("--run: name the finished compare run folder to tabulate")
    table = build_table(cfg.run)
    text = to_markdown(cfg.run, table)
    path = Path(cfg.table) if cfg.table else Path(cfg.run) / "ft_methods.md"
    write_atomic(path, text)
    write_atomic(path.with_suffix(".csv"), table.to_csv(index=False))
    return text, path


def command_text(cfg: FtMethodsConfig) -> str:
    """What `ragft bench ft-methods` prints without --run: the command, its estimate, the lr note."""
    lo, hi = estimate_seconds(cfg)
    ft = finetune_commands(cfg)
    return "\n".join([
        "# issue 16 item 9: run this (the model lane: prefix `flock /work/model.lock`), then",
        f"# `ragft bench ft-methods --run {compare_config(cfg).out}`",
        compare_command(cfg),
        f"# estimated wall time on 2 CPU cores: {lo / 60:.0f}-{hi / 60:.0f} min (an estimate: dora/hft/full step "
        "times taken as 1.9-2.2x a LoRA step from one-step smokes)",
        "# every arm trains at finetune's lr 2e-3 (compare has no --lr); for hft/full at 1e-4, train them first:",
        *[f"#   {c}" for c in ft.values()],
        "# and name the folders as arms: ft:<folder> in place of ft:hft / ft:full"])

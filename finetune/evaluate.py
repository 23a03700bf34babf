"""Closed-book accuracy of a trained adapter on the test questions whose facts were in train.

`python -m finetune.evaluate ADAPTER [--corpus atlantis] [--engine vllm ...]` prints accuracy on test questions
with `paraphrase_of` set (a rewording of a train question: the fact was trained), on the others (facts only in
the documents) and abstention on unanswerable ones. It asks exactly as the ft system of `ragft compare` does:
rag.pipeline.answer_questions(gen, None, questions, "none", 0), scored by corpora.text.score_answer (as compare
scores). Its flags are EvaluateConfig's fields (the engine's too, as `ragft compare` names them).

--engine vllm|openai (rag/engine.py): the answers come from that engine, the adapter as its adapter arm (a
LoRARequest, a served model name), after the adapter guard showed the engine applies it (rag.engine.with_adapter,
as compare does); a run whose adapter changed nothing stops with AdapterNotApplied. transformers (the default)
loads the model here with the adapter attached, as before.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, fields

from corpora import DEFAULT_CORPUS, load_corpus
from corpora.config import check, flag_name, opt
from corpora.errors import InputError
from corpora.text import score_answer
from rag.engine import EngineOptions, check_engine
from rag.engine_errors import AdapterNotApplied, EngineDown
from rag.models import DEFAULT_GENERATOR, DEVICES


@dataclass
class EvaluateConfig(EngineOptions):  # EngineOptions: --engine and its settings (rag/engine.py), declared once
    adapter: str = ""
    """LoRA adapter folder to evaluate (default '': the base model)."""
    corpus: str = DEFAULT_CORPUS
    """Shipped corpus name or a folder with docs.jsonl and qa.jsonl; its test split is asked (default atlantis)."""
    generator: str = DEFAULT_GENERATOR
    """Base model: 'smollm2-135m' (shipped) or a local HF model folder (default smollm2-135m)."""
    device: str = opt("auto", choices=DEVICES)
    """transformers engine: auto | cpu | cuda (default auto)."""
    batch_size: int = opt(16, min=1)
    """Questions per generation batch (default 16 questions)."""

    def __post_init__(self):
        check(self)
        check_engine(self)


def evaluate(adapter: str | None, corpus: str = DEFAULT_CORPUS, generator: str = DEFAULT_GENERATOR,
             device: str = "auto", batch_size: int = 16, engine: EngineOptions | None = None) -> dict:
    """{"trained_facts": acc, "untrained_facts": acc, "unanswerable_abstained": rate, "n_*": counts, "answers"}.

    engine: the engine's settings (EngineOptions or an EvaluateConfig; default None: transformers, as before)."""
    keep = {f.name: getattr(engine, f.name) for f in fields(EngineOptions)} if engine is not None else {}
    return run_evaluate(EvaluateConfig(adapter=adapter or "", corpus=corpus, generator=generator, device=device,
                                       batch_size=batch_size, **keep))


def open_generator(cfg: EvaluateConfig):
    """The Generator that answers: the engine's with the adapter as its arm (guard checked), or transformers."""
    from rag.engine import open_engine, with_adapter
    from rag.generate import load_generator

    adapter = cfg.adapter or None
    gen = open_engine(cfg, [adapter] if adapter else [])  # None for transformers
    if gen is None:
        return load_generator(cfg.generator, adapter, cfg.device, decode=cfg.decode)
    return with_adapter(gen, adapter)  # the adapter guard (lm-eval-harness #2432): AdapterNotApplied if dead


def run_evaluate(cfg: EvaluateConfig) -> dict:
    """evaluate() of one config (the entry point's)."""
    from rag.pipeline import answer_questions

    c = load_corpus(cfg.corpus)
    test = c.questions("test")
    groups = {
        "trained_facts": [q for q in test if q.get("paraphrase_of") and q["kind"] != "unanswerable"],
        "untrained_facts": [q for q in test if not q.get("paraphrase_of") and q["kind"] != "unanswerable"],
        "unanswerable_abstained": [q for q in test if q["kind"] == "unanswerable"],
    }
    gen = open_generator(cfg)
    out: dict = {"adapter": cfg.adapter or None, "corpus": cfg.corpus, "answers": {}}
    if cfg.engine_options():  # vllm/openai only: a transformers result has the keys it had
        out["engine"] = cfg.engine_options()
    try:
        for name, qs in groups.items():
            recs = answer_questions(gen, None, [q["question"] for q in qs], "none", 0, batch_size=cfg.batch_size)
            scores = [score_answer(r["answer"], q["answers"], q["kind"]) for q, r in zip(qs, recs)]
            out[name] = sum(s["correct"] for s in scores) / max(1, len(qs))
            out[f"n_{name}"] = len(qs)
            out["answers"].update({q["id"]: r["answer"] for q, r in zip(qs, recs)})
    finally:
        if gen.engine is not None:
            gen.engine.close()
    return out


def parse_args(argv: list[str]) -> EvaluateConfig:
    """`ADAPTER` (or `none`) and `--flag VALUE` for each EvaluateConfig field (bools: --flag / --no-flag)."""
    by_flag = {flag_name(f): f for f in fields(EvaluateConfig)}
    kw: dict = {}
    args = list(argv)
    if args and not args[0].startswith("--"):
        first = args.pop(0)
        kw["adapter"] = "" if first == "none" else first
    while args:
        a = args.pop(0)
        name = a[2:].split("=", 1)[0] if a.startswith("--") else ""
        f = by_flag.get(name) or by_flag.get(name[3:] if name.startswith("no-") else "")
        if f is None:
            raise InputError(f"{a}: unknown option; choose from {', '.join('--' + k for k in by_flag)}")
        if isinstance(f.default, bool):
            kw[f.name] = not name.startswith("no-")
            continue
        if "=" in a:
            value = a.split("=", 1)[1]
        elif args:
            value = args.pop(0)
        else:
            raise InputError(f"{a}: needs a value")
        try:
            kw[f.name] = type(f.default)(value)
        except ValueError:
            raise InputError(f"{a} {value!r}: must be a {type(f.default).__name__}") from None
    return EvaluateConfig(**kw)


if __name__ == "__main__":  # the main guard vLLM's spawned engine process needs
    try:
        res = run_evaluate(parse_args(sys.argv[1:]))
    except InputError as e:  # one line, exit 2, as the ragft CLI reports bad input
        print(f"finetune.evaluate: error: {e}", file=sys.stderr)
        sys.exit(2)
    except (AdapterNotApplied, EngineDown) as e:  # a run-time failure of the engine: one line, exit 1
        print(f"finetune.evaluate: error: {e}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps({k: v for k, v in res.items() if k != "answers"}))

"""The adapters of the ft arms: which one each arm uses (given, reused from the run folder when trained
with the same settings, or trained now), and the generator with it attached. The freshness experiment
(compare/freshness.py) looks its retrained adapters up through the same resolve_adapter.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from compare.cache import log


def resolve_adapter(cfg, key: str, corpus_name: str, out: Path, progress: bool) -> dict:
    """adapter_key -> cost record with "adapter" (its folder): given, reused from `out`, or trained now into
    `out`/adapter[-<recipe>]. Reused only when its cost.json says it was trained with this run's corpus,
    generator, epochs, steps, seed and recipe."""
    if key.startswith("path:"):
        return adapter_cost(replace(cfg, adapter=key[5:]), corpus_name, out, progress)
    if key == "default" and cfg.adapter:
        return adapter_cost(cfg, corpus_name, out, progress)
    named = key[7:] if key.startswith("recipe:") else ""
    recipe = named or cfg.recipe
    target = out / (f"adapter-{named}" if named else "adapter")
    cost_file = target / "cost.json"
    if cost_file.is_file() and (target / "adapter_model.safetensors").is_file():
        cost = json.loads(cost_file.read_text())
        want = {"corpus": cfg.corpus, "generator": cfg.generator, "epochs": cfg.epochs, "max_steps": cfg.max_steps,
                "seed": cfg.seed}
        trained = cost.get("config", {})
        if all(trained.get(k) == v for k, v in want.items()) and (not recipe or trained.get("data") == recipe.replace("+", ",")):
            log(progress, f"finetune: reusing {target} (trained earlier in this run directory)")
            return {**cost, "adapter": str(target)}
    return adapter_cost(cfg, corpus_name, out, progress, recipe, target)


def adapter_cost(cfg, corpus_name: str, out: Path, progress: bool, recipe: str = "",
                 target: Path | None = None) -> dict:
    """The adapter to use and its cost record: cfg.adapter as given, or one trained now into the run dir.

    recipe: the fine-tuning data recipe (FinetuneConfig.data, '+' for ','); "": finetune's default.
    target: where to save it (default: <out>/adapter).
    """
    if cfg.adapter:
        p = Path(cfg.adapter)
        cost = json.loads((p / "cost.json").read_text()) if (p / "cost.json").is_file() else {}
        return {**cost, "adapter": str(p)}
    from finetune.train import FinetuneConfig, train

    extra = {"data": recipe.replace("+", ",")} if recipe else {}  # "qa+paraphrase" here = data "qa,paraphrase"
    ft = FinetuneConfig(corpus=cfg.corpus, out=str(target or out / "adapter"),
                        generator=cfg.generator, epochs=cfg.epochs, max_steps=cfg.max_steps, seed=cfg.seed,
                        device=cfg.device, **extra)
    log(progress, f"finetune: LoRA on the {corpus_name} train split" + (f" (recipe {recipe})" if recipe else ""))
    return train(ft, progress=progress)


def ensure_generator(gen, cfg, adapter: str | None):
    """The generator with `adapter` attached (None: the bare model); reloads the base model (< 1 s) to switch."""
    from rag.generate import attach_adapter, load_generator

    if gen is not None and gen.adapter == adapter:
        return gen
    if gen is None or gen.adapter is not None:
        gen = load_generator(cfg.generator, device=cfg.device)
    if adapter:
        gen.model, gen.adapter = attach_adapter(gen.model, adapter), adapter
    return gen

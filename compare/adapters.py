"""The adapters of the ft arms: which one each arm uses (given, reused from the run folder when trained
with the same settings, or trained now), and the generator with it attached. The freshness experiment
(compare/freshness.py) looks its retrained adapters up through the same resolve_adapter.

An arm's "adapter" may also be a standalone model folder (methods full and hft: config.json and
model.safetensors, no adapter_config.json): ensure_generator then loads that folder as the generator.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from compare.cache import log, weights_file


def resolve_adapter(cfg, key: str, corpus_name: str, out: Path, progress: bool) -> dict:
    """adapter_key -> cost record with "adapter" (its folder): given, reused from `out`, or trained now into
    `out`/adapter[-<recipe>|-<method>]. Reused only when its cost.json says it was trained with this run's
    corpus, generator, epochs, steps, seed, method and recipe."""
    if key.startswith("multi:"):
        return multi_adapter(cfg, key[6:], corpus_name, out, progress)
    if key.startswith("path:"):
        return adapter_cost(replace(cfg, adapter=key[5:]), corpus_name, out, progress)
    if key == "default" and cfg.adapter:
        return adapter_cost(cfg, corpus_name, out, progress)
    named = key[7:] if key.startswith("recipe:") else ""
    method = key[7:] if key.startswith("method:") else "lora"
    recipe = named or cfg.recipe
    target = out / ("adapter" if key == "default" else f"adapter-{named or method}")
    cost_file = target / "cost.json"
    if cost_file.is_file() and weights_file(target).is_file():
        cost = json.loads(cost_file.read_text())
        want = {"corpus": cfg.corpus, "generator": cfg.generator, "epochs": cfg.epochs, "max_steps": cfg.max_steps,
                "seed": cfg.seed, "method": method}
        trained = cost.get("config", {})
        if all(trained.get(k) == v for k, v in want.items()) and (not recipe or trained.get("data") == recipe.replace("+", ",")):
            log(progress, f"finetune: reusing {target} (trained earlier in this run directory)")
            return {**cost, "adapter": str(target)}
    return adapter_cost(cfg, corpus_name, out, progress, recipe, target, method)


def adapter_cost(cfg, corpus_name: str, out: Path, progress: bool, recipe: str = "",
                 target: Path | None = None, method: str = "lora") -> dict:
    """The adapter to use and its cost record: cfg.adapter as given, or one trained now into the run dir.

    recipe: the fine-tuning data recipe (FinetuneConfig.data, '+' for ','); "": finetune's default.
    target: where to save it (default: <out>/adapter). method: finetune's --method (lora, dora, full, hft,
    memory; memory's budget is finetune's --memory-epochs unless --max-steps is set).
    """
    if cfg.adapter:
        p = Path(cfg.adapter)
        cost = json.loads((p / "cost.json").read_text()) if (p / "cost.json").is_file() else {}
        return {**cost, "adapter": str(p)}
    from finetune.train import FinetuneConfig, train

    extra = {"data": recipe.replace("+", ",")} if recipe else {}  # "qa+paraphrase" here = data "qa,paraphrase"
    ft = FinetuneConfig(corpus=cfg.corpus, out=str(target or out / "adapter"), method=method,
                        generator=cfg.generator, epochs=cfg.epochs, max_steps=cfg.max_steps, seed=cfg.seed,
                        device=cfg.device, **extra)
    name = {"lora": "LoRA", "dora": "DoRA", "qlora": "QLoRA", "full": "full fine-tuning", "hft": "Half Fine-Tuning",
            "memory": "memory tuning (LoRA)"}.get(method, method)
    log(progress, f"finetune: {name} on the {corpus_name} train split" + (f" (recipe {recipe})" if recipe else ""))
    return train(ft, progress=progress)


def multi_adapter(cfg, use: str, corpus_name: str, out: Path, progress: bool) -> dict:
    """An ft-multi arm's adapters (finetune/multi.py): --clusters LoRA adapters trained on the run's recipe, epochs,
    steps and seed into `out`/adapter-multi-k<K> (reused when its manifest's settings match; --adapter does not
    apply), then for merge/ties their merge (`out`/adapter-multi-k<K>/merged-<linear|ties>, the arm's "adapter"),
    for route the folder itself with its "manifest" (compare/route.py picks the adapter per question)."""
    from compare.systems import MULTI_USES
    from corpora.errors import InputError
    from finetune.multi import merge_adapters, total_cost, train_multi
    from finetune.train import FinetuneConfig

    if use == "route" and cfg.freshness:
        raise InputError("--freshness: routed arms (ft-multi:route) are not retrained by the freshness experiment; "
                         "leave them out of --systems or drop --freshness")
    if use == "route" and getattr(cfg, "engine", "transformers") != "transformers":
        raise InputError(f"--engine {cfg.engine}: routed arms (ft-multi:route) switch adapters per question and run "
                         "on --engine transformers only")
    extra = {"data": cfg.recipe.replace("+", ",")} if cfg.recipe else {}
    folder = out / f"adapter-multi-k{cfg.clusters}"
    ft = FinetuneConfig(corpus=cfg.corpus, out=str(folder), generator=cfg.generator, epochs=cfg.epochs,
                        max_steps=cfg.max_steps, seed=cfg.seed, device=cfg.device, **extra)
    log(progress, f"finetune: {cfg.clusters} LoRA adapters, one per document cluster of the {corpus_name} train split")
    manifest = train_multi(ft, cfg.clusters, folder, cfg.embedder, progress)
    how = MULTI_USES[use]
    if how is None:
        return {**total_cost(manifest), "method": "multi-route", "adapter": str(folder), "manifest": manifest}
    return merge_adapters(manifest, folder, cfg.generator, how, folder / f"merged-{how}", progress)


def ensure_generator(gen, cfg, adapter: str | None):
    """The generator with `adapter` attached (None: the bare model); reloads the base model (< 1 s) to switch."""
    from rag.generate import attach_adapter, load_generator

    if getattr(cfg, "engine", "transformers") != "transformers":  # vllm/openai (rag/engine.py): the run's one engine
        from rag.engine import open_engine, with_adapter

        return with_adapter(gen if gen is not None else open_engine(cfg, [adapter] if adapter else []), adapter)
    if gen is not None and gen.adapter == adapter:
        return gen
    if adapter and not (Path(adapter) / "adapter_config.json").is_file():  # a standalone model folder (full, hft)
        gen = load_generator(adapter, device=cfg.device, decode=getattr(cfg, "decode", "prefix"))
        gen.adapter = adapter
        return gen
    if gen is None or gen.adapter is not None:
        gen = load_generator(cfg.generator, device=cfg.device, decode=getattr(cfg, "decode", "prefix"))
    if adapter:
        gen.model, gen.adapter = attach_adapter(gen.model, adapter), adapter
    return gen

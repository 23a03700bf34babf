"""The systems compared. Each is a retriever (or none, closed-book) and an adapter (or none).

Same questions, same prompt wording apart from the context block (rag/augment.py), same greedy decoding.

A system is named in config by a base name, optionally followed by ":<variant>" for the adapter arms:
  ft                  the run's adapter: --adapter if given, else one trained now with the default recipe
  ft:qa+paraphrase    an adapter trained now with that fine-tuning recipe (finetune's `data` field)
  ft:hft              one trained now with that fine-tuning method (lora, dora, full, hft, memory) on --recipe
  ft:runs/adapter-x   an existing adapter directory (adapter_config.json), or a full/hft model folder (config.json)
  ft+rag[:variant]    the same adapters with hybrid retrieval
  raft+rag            an adapter trained with the RAFT recipe (Zhang et al. 2024), with hybrid retrieval
  ft-multi:merge      K adapters, one per document cluster (--clusters; finetune/multi.py), merged into one by
                      peft's linear weighted-adapter merge; ft-multi:ties merges them by TIES instead
  ft-multi:route      the same K adapters, routed per question: the top hybrid-retrieved chunk's cluster picks the
                      adapter (compare/route.py); the prompt stays closed-book, retrieval only routes
  ft-multi+rag:<use>  merge | ties | route with hybrid retrieval in the prompt, as ft+rag
A variant names a recipe (finetune/data.py: RECIPES, joined by '+') or a method (finetune/lora.py: METHODS),
never both: the two sets of names are disjoint (checked below). full and hft give a standalone model folder,
used as the generator of that arm (compare/adapters.py: ensure_generator).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from corpora.errors import InputError
from finetune.data import RECIPES
from finetune.lora import METHODS

assert not set(RECIPES) & set(METHODS), "a system variant must name a recipe or a method, not both"

# base name -> retriever ("none": closed-book) and adapter recipe (None: no adapter; "": the run's default).
SYSTEMS = {
    "base": {"retriever": "none", "recipe": None},         # closed-book base model
    "rag-bm25": {"retriever": "bm25", "recipe": None},
    "rag-dense": {"retriever": "dense", "recipe": None},
    "rag-hybrid": {"retriever": "hybrid", "recipe": None},  # BM25 + dense fused by reciprocal rank
    "rag": {"retriever": "hybrid", "recipe": None},         # alias of rag-hybrid (the demo's name)
    "ft": {"retriever": "none", "recipe": ""},             # LoRA adapter, closed-book
    "ft+rag": {"retriever": "hybrid", "recipe": ""},       # LoRA adapter with hybrid retrieval
    "raft+rag": {"retriever": "hybrid", "recipe": "raft"},  # adapter trained on RAFT data, with retrieval
    "ft-multi": {"retriever": "none", "recipe": ""},       # K cluster adapters (finetune/multi.py), closed-book
    "ft-multi+rag": {"retriever": "hybrid", "recipe": ""},  # the same with hybrid retrieval
}
# ft-multi's variant: how the K cluster adapters are used -> peft's combination_type (None: routed per question)
MULTI_USES = {"merge": "linear", "ties": "ties", "route": None}
DEFAULT_SYSTEMS = "base,rag,ft,ft+rag"


@dataclass(frozen=True)
class System:
    name: str          # as written in config, e.g. "ft:qa+paraphrase"; the records' `system` column
    retriever: str     # none | bm25 | dense | hybrid
    adapter_key: str   # "" no adapter; "default"; "recipe:<recipe>"; "method:<method>"; "path:<dir>"; "multi:<use>"

    @property
    def uses_adapter(self) -> bool:
        return bool(self.adapter_key)

    @property
    def uses_retrieval(self) -> bool:
        return self.retriever != "none"

    @property
    def routed(self) -> bool:
        """ft-multi[+rag]:route: each question answered by its cluster's adapter (compare/route.py)."""
        return self.adapter_key == "multi:route"

    @property
    def family(self) -> str:
        """RAG, FT or FT+RAG (or base): what the decision chooses between."""
        if not self.uses_adapter:
            return "RAG" if self.uses_retrieval else "base"
        return "FT+RAG" if self.uses_retrieval else "FT"

    @property
    def file_stem(self) -> str:
        """A file name for this system's answers ("ft:qa+paraphrase" -> "ft_qa+paraphrase")."""
        return "".join(c if c.isalnum() or c in "+-." else "_" for c in self.name)


def parse_system(text: str) -> System:
    base, _, variant = text.partition(":")
    if base not in SYSTEMS:
        raise InputError(f"unknown system {text}: choose from {', '.join(SYSTEMS)} (adapter arms take ':recipe', "
                         "':method' or ':adapter-dir')")
    spec = SYSTEMS[base]
    if base.startswith("ft-multi"):
        if variant not in MULTI_USES:
            raise InputError(f"system {text}: {base} takes ':merge', ':ties' or ':route' (how its cluster adapters "
                             "are used)")
        return System(text, spec["retriever"], f"multi:{variant}")
    if spec["recipe"] is None:
        if variant:
            raise InputError(f"system {base} takes no ':{variant}' (only adapter arms do)")
        return System(text, spec["retriever"], "")
    if variant and any((Path(variant) / f).is_file() for f in ("adapter_config.json", "config.json")):
        return System(text, spec["retriever"], f"path:{Path(variant)}")
    if variant in METHODS:
        return System(text, spec["retriever"], f"method:{variant}")
    recipe = variant or spec["recipe"]
    return System(text, spec["retriever"], f"recipe:{recipe}" if recipe else "default")


def parse_systems(text: str) -> list[System]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        raise InputError(f"unknown system (none): choose from {', '.join(SYSTEMS)}")
    bad = [n for n in names if n.partition(":")[0] not in SYSTEMS]
    if bad:
        raise InputError(f"unknown system {', '.join(bad)}: choose from {', '.join(SYSTEMS)}")
    if len(set(names)) != len(names):
        raise InputError(f"a system is named twice in {text!r}")
    return [parse_system(n) for n in names]

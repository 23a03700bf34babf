"""The systems compared. Each is a retriever (or none, closed-book) and an adapter (or none).

Same questions, same prompt wording apart from the context block (rag/augment.py), same greedy decoding.

A system is named in config by a base name, optionally followed by ":<variant>" for the adapter arms:
  ft                  the run's adapter: --adapter if given, else one trained now with the default recipe
  ft:qa+paraphrase    an adapter trained now with that fine-tuning recipe (finetune's `data` field)
  ft:runs/adapter-x   an existing adapter directory (holds adapter_config.json)
  ft+rag[:variant]    the same adapters with hybrid retrieval
  raft+rag            an adapter trained with the RAFT recipe (Zhang et al. 2024), with hybrid retrieval
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from corpora.errors import InputError

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
}
DEFAULT_SYSTEMS = "base,rag,ft,ft+rag"


@dataclass(frozen=True)
class System:
    name: str          # as written in config, e.g. "ft:qa+paraphrase"; the records' `system` column
    retriever: str     # none | bm25 | dense | hybrid
    adapter_key: str   # "" no adapter; "default"; "recipe:<recipe>"; "path:<dir>"

    @property
    def uses_adapter(self) -> bool:
        return bool(self.adapter_key)

    @property
    def uses_retrieval(self) -> bool:
        return self.retriever != "none"

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
        raise InputError(f"unknown system {text}: choose from {', '.join(SYSTEMS)} (adapter arms take ':recipe')")
    spec = SYSTEMS[base]
    if spec["recipe"] is None:
        if variant:
            raise InputError(f"system {base} takes no ':{variant}' (only adapter arms do)")
        return System(text, spec["retriever"], "")
    if variant and (Path(variant) / "adapter_config.json").is_file():
        return System(text, spec["retriever"], f"path:{Path(variant)}")
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

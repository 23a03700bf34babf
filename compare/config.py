"""`ragft compare`'s one flat config, and the decision inputs the report takes from it.

The index options (chunker, chunk size and overlap, dense and sparse implementations, hnsw settings) are
IndexConfig's own fields (rag/index.py), taken over by inheriting it, so `ragft compare` sets them under the
same flags as `ragft index`; index_config() hands them to the index step. Why each default is what it is:
docs/defaults.md, "ragft compare".
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from compare.systems import DEFAULT_SYSTEMS
from corpora import DEFAULT_CORPUS
from corpora.config import check, opt
from corpora.errors import InputError
from rag.engine import EngineOptions, check_engine
from rag.index import IndexConfig
from rag.models import DEFAULT_EMBEDDER, DEFAULT_GENERATOR

# IndexConfig fields that mean something else here (out: the run folder) or are the run's own (corpus,
# embedder, generator, device); the others are the index options.
RUN_FIELDS = ("corpus", "out", "embedder", "generator", "device")


@dataclass
class CompareConfig(EngineOptions, IndexConfig):  # EngineOptions: --engine and its settings (rag/engine.py)
    corpus: str = DEFAULT_CORPUS
    """Shipped corpus name or a folder with docs.jsonl and qa.jsonl (default atlantis)."""
    systems: str = DEFAULT_SYSTEMS
    """Systems, comma-separated: base, rag (= rag-hybrid), rag-bm25, rag-dense, ft, ft+rag, raft+rag, ft-multi[+rag]:merge|ties|route; ft arms take :recipe, :method (lora, dora, full, hft, memory) or :adapter-dir (default base,rag,ft,ft+rag)."""
    split: str = opt("test", choices=("train", "test"))
    """QA split to answer: train | test (default test)."""
    limit: int = opt(0, min=0)
    """Answer only the first N questions of the split (default 0: all)."""
    top_k: int = opt(2, min=0)
    """Chunks put into the prompt of retrieval systems (default 2)."""
    generator: str = DEFAULT_GENERATOR
    """Base model: 'smollm2-135m' (shipped) or a local HF model directory (default smollm2-135m)."""
    embedder: str = DEFAULT_EMBEDDER
    """Embedder for dense retrieval: 'minilm-l6' (shipped) or a local model directory (default minilm-l6)."""
    adapter: str = ""
    """Existing LoRA adapter folder for the ft systems (default '': train one now on the train split)."""
    recipe: str = "qa"
    """Fine-tuning data of the plain ft arms when trained here, joined by '+': qa, docs, paraphrase, raft (default qa)."""
    epochs: float = opt(1.0, above=0)
    """Training epochs when an adapter is trained here (default 1.0 epochs)."""
    max_steps: int = opt(0, min=0)
    """Training steps when an adapter is trained here (default 0: use --epochs)."""
    clusters: int = opt(3, min=1)
    """ft-multi arms: k-means clusters of the documents, one LoRA adapter each (default 3 clusters)."""
    batch_size: int = opt(32, min=1, flag="gen-batch-size", aliases=("batch-size",))
    """Questions per generation batch; latency is the wall time of a question's batch (default 32 questions)."""
    max_new_tokens: int = opt(32, min=1)
    """Most tokens generated per answer (default 32 tokens)."""
    out: str = ""
    """Run folder; re-running with the same one resumes (default runs/compare-<corpus>-<time>)."""
    seed: int = opt(0, min=0)
    """Seed for training, bootstrap resampling and any sampling (default 0)."""
    device: str = opt("auto", choices=("auto", "cpu", "cuda"))
    """Device: auto | cpu | cuda (default auto)."""
    prices: str = ""
    """JSON price table overriding compare/prices.json: $/CPU-hour, $/GPU-hour, hardware, $/1M tokens of --engine openai arms (default '': shipped)."""
    query_volume: int = opt(100000, min=0)
    """Decision input: questions answered per month (default 100000 questions)."""
    change_rate: float = opt(0.05, min=0.0, max=1.0)
    """Decision input: share of facts that change per month, 0-1; ft arms retrain monthly (default 0.05)."""
    hallucination_tolerance: float = opt(0.2, min=0.0, max=1.0)
    """Decision input: highest hallucination rate over all questions you accept, 0-1 (default 0.2)."""
    objective: str = opt("crag", choices=("crag", "accuracy", "hallucination"))
    """Decision input: what picks the system when none is within the tolerance: crag | accuracy | hallucination (default crag)."""
    freshness: bool = False
    """Also run the freshness experiment on the corpus's updates.jsonl and qa_updates.jsonl (default off)."""
    freshness_steps: int = opt(30, min=0)
    """Training steps when the freshness experiment retrains an adapter (default 30 steps; 0: main schedule)."""
    leak_threshold: float = opt(0.9, min=0.0, max=1.0)
    """Flag a test question this similar (difflib ratio of normalised text, 0-1) to a train question (default 0.9)."""
    injection: int = opt(8, min=0)
    """Prompt-injection probes answered by the retrieval arms (compare/injection.py) (default 8 probes; 0: off)."""
    fit_size: int = opt(64, min=0)
    """Fit check: answerable train questions each adapter answers closed-book, seeded, at most --limit (default 64; 0: off)."""
    general_size: int = opt(128, min=0)
    """Forgetting check: general-knowledge questions asked of base and each adapter, seeded, at most --limit (default 128; 0: off)."""

    def __post_init__(self):
        check(self)
        check_engine(self)
        from rag.index import check_config

        check_config(self.index_config())  # chunk size vs overlap and the other cross-field index rules
        if self.recipe:
            from finetune.data import RECIPES

            bad = [r for r in self.recipe.replace(",", "+").split("+") if r.strip() not in RECIPES]
            if bad:
                raise InputError(f"--recipe {self.recipe!r}: unknown recipe {', '.join(map(repr, bad))}: choose "
                                 f"from {', '.join(RECIPES)}, joined by '+'")

    def index_config(self) -> IndexConfig:
        """The index options of this run as rag/index.py takes them (out: the default index folder)."""
        return IndexConfig(**{f.name: getattr(self, f.name) for f in fields(IndexConfig) if f.name != "out"})

    def index_options(self) -> dict:
        """The index options that differ from their defaults ({} for a default run): part of the answer
        fingerprint only when set, so a default run's fingerprint stays as it was."""
        default = IndexConfig()
        return {f.name: getattr(self, f.name) for f in fields(IndexConfig)
                if f.name not in RUN_FIELDS and getattr(self, f.name) != getattr(default, f.name)}


def decision_inputs(cfg: CompareConfig) -> dict:
    return {"query_volume": cfg.query_volume, "change_rate": cfg.change_rate,
            "hallucination_tolerance": cfg.hallucination_tolerance, "objective": cfg.objective}

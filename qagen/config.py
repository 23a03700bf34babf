"""`ragft corpora make-qa DOCS --out DIR`: its one config. Why each default is what it is: docs/defaults.md,
"ragft corpora make-qa"."""

from __future__ import annotations

from dataclasses import dataclass

from corpora.config import check, opt
from corpora.errors import InputError
from rag.engine import EngineOptions, check_engine
from rag.models import DEFAULT_GENERATOR


@dataclass
class MakeQAConfig(EngineOptions):  # EngineOptions: --engine and its settings (rag/engine.py), declared once
    docs: str = ""
    """Documents: anything --corpus takes (shipped name, native, .txt/.md, BEIR, SQuAD); only its documents are read."""
    out: str = ""
    """Output folder: a native corpus (docs.jsonl, qa.jsonl) + make-qa-report.csv; a make-qa output resumes."""
    generator: str = DEFAULT_GENERATOR
    """Model that writes and checks the questions: 'smollm2-135m' (shipped) or a local HF model folder."""
    questions_per_chunk: int = opt(2, min=1, max=20)
    """Question/answer pairs asked for per chunk, one per passage of it (default 2)."""
    seed: int = 0
    """Seed of the held-back documents and of the trained / document-only split (default 0)."""
    limit_docs: int = opt(0, min=0)
    """Read only the first N documents (default 0: all)."""
    top_k: int = opt(5, min=1)
    """Retrieval filter: the question alone must find its chunk in the hybrid top K (default 5 chunks)."""
    holdout: float = opt(0.2, min=0.0, below=1.0)
    """Share of documents held back for unanswerable questions and left out of the output (default 0.2)."""
    gen_batch_size: int = opt(16, min=1)
    """Generator calls per batch (default 16)."""
    device: str = opt("auto", choices=("auto", "cpu", "cuda"))
    """auto | cpu | cuda (default auto)."""
    dry_run: bool = False
    """Print the generator calls and prompt tokens it would spend (tokenizer only), write nothing."""

    def __post_init__(self):
        check(self)
        check_engine(self)
        if not self.docs:
            raise InputError("DOCS: name the documents (a shipped corpus name or a path)")
        if not self.out:
            raise InputError("--out: name the output folder")

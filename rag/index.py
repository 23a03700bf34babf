"""Step 1, indexing: chunk documents, build BM25 (bm25s) and a dense FAISS inner-product index.

An index directory holds:
  manifest.json  config, embedder, counts, corpus hash
  chunks.jsonl   {"chunk_id", "doc_id", "title", "text", "start", "end"}  (start/end: char span in the doc)
  bm25/          bm25s arrays (numpy .npy, no pickle) + vocab json
  dense.faiss    IndexFlatIP over L2-normalised embeddings, so inner product = cosine
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from corpora.errors import InputError
from rag.models import DEFAULT_EMBEDDER
from rag.query import tokenize

# rank-bm25's BM25Okapi defaults; method "robertson" is the same formula up to a (k1 + 1) factor,
# which tests/test_rag.py checks against rank-bm25 itself.
BM25_K1, BM25_B, BM25_METHOD = 1.5, 0.75, "robertson"


@dataclass
class IndexConfig:
    corpus: str = "atlantis"
    """Shipped corpus name or a folder with docs.jsonl."""
    out: str = ""
    """Index directory (default: runs/index-<corpus>)."""
    chunk_size: int = 500
    """Chunk length in characters (recursive character splitter)."""
    overlap: int = 50
    """Characters shared by neighbouring chunks."""
    embedder: str = DEFAULT_EMBEDDER
    """Sentence-transformers model: 'minilm-l6' (shipped) or a local model directory."""
    device: str = "auto"
    """auto | cpu | cuda."""


def corpus_hash(docs: list[dict]) -> str:
    h = hashlib.sha256()
    for d in docs:
        h.update(json.dumps([d["id"], d["title"], d["text"]], ensure_ascii=False).encode())
    return h.hexdigest()[:16]


def chunk_documents(docs: list[dict], chunk_size: int, overlap: int) -> list[dict]:
    """Split each document into chunks that keep doc id, title and character span."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(chunk_size=chunk_size, chunk_overlap=overlap, add_start_index=True)
    chunks = []
    for d in docs:
        for piece in splitter.create_documents([d["text"]]):
            start = piece.metadata["start_index"]
            chunks.append({
                "chunk_id": len(chunks), "doc_id": d["id"], "title": d["title"],
                "text": piece.page_content, "start": start, "end": start + len(piece.page_content),
            })
    return chunks


def chunk_view(chunk: dict) -> str:
    """What both retrievers see of a chunk: the title carries the entity name a chunk may lack."""
    return f"{chunk['title']}\n{chunk['text']}" if chunk["title"] else chunk["text"]


def embed(embedder, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
    """(n, dim) float32, L2-normalised."""
    vecs = embedder.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                           convert_to_numpy=True, show_progress_bar=progress)
    return np.ascontiguousarray(vecs, dtype=np.float32)


class Index:
    """Holds the chunks, the BM25 model, the FAISS index and (lazily) the embedder for queries."""

    def __init__(self, chunks, bm25, faiss_index, manifest, embedder=None):
        self.chunks, self.bm25, self.faiss, self.manifest = chunks, bm25, faiss_index, manifest
        self._embedder = embedder

    @property
    def embedder(self):
        if self._embedder is None:
            from rag.models import load_embedder

            self._embedder = load_embedder(self.manifest["config"]["embedder"], self.manifest["config"]["device"])
        return self._embedder

    def save(self, out: str | Path) -> Path:
        """Write to a temp folder beside `out`, then swap it in: a killed save leaves the old index whole."""
        import faiss

        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".tmp-{out.name}-"))
        with open(tmp / "chunks.jsonl", "w", encoding="utf-8") as f:
            for c in self.chunks:
                f.write(json.dumps(c, ensure_ascii=False) + "\n")
        self.bm25.save(str(tmp / "bm25"))
        faiss.write_index(self.faiss, str(tmp / "dense.faiss"))
        (tmp / "manifest.json").write_text(json.dumps(self.manifest, indent=2))
        if out.exists():
            old = out.with_name(f".old-{out.name}")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
        return out


def build_index(docs: list[dict], cfg: IndexConfig, embedder=None, progress: bool = True) -> Index:
    import bm25s
    import faiss

    t0 = time.perf_counter()
    chunks = chunk_documents(docs, cfg.chunk_size, cfg.overlap)
    views = [chunk_view(c) for c in chunks]
    bm25 = bm25s.BM25(method=BM25_METHOD, k1=BM25_K1, b=BM25_B)
    bm25.index([tokenize(v) for v in views], show_progress=False)
    if embedder is None:
        from rag.models import load_embedder

        embedder = load_embedder(cfg.embedder, cfg.device)
    vecs = embed(embedder, views, progress=progress)
    dense = faiss.IndexFlatIP(vecs.shape[1])
    dense.add(vecs)
    manifest = {
        "config": asdict(cfg), "n_docs": len(docs), "n_chunks": len(chunks), "dim": int(vecs.shape[1]),
        "corpus_hash": corpus_hash(docs), "build_seconds": round(time.perf_counter() - t0, 3),
    }
    return Index(chunks, bm25, dense, manifest, embedder)


def load_index(path: str | Path) -> Index:
    import bm25s
    import faiss

    path = Path(path)
    if not (path / "manifest.json").is_file():
        raise InputError("not an index directory (no manifest.json); build one with `ragft index`", str(path))
    manifest = json.loads((path / "manifest.json").read_text())
    chunks = [json.loads(line) for line in (path / "chunks.jsonl").read_text(encoding="utf-8").splitlines()]
    bm25 = bm25s.BM25.load(str(path / "bm25"))
    dense = faiss.read_index(str(path / "dense.faiss"))
    if dense.ntotal != len(chunks):
        raise InputError(f"index is inconsistent: {dense.ntotal} vectors for {len(chunks)} chunks", str(path))
    return Index(chunks, bm25, dense, manifest)


def default_index_dir(corpus: str) -> Path:
    return Path("runs") / f"index-{Path(corpus).name}"


def open_or_build(docs: list[dict], cfg: IndexConfig, embedder=None, progress: bool = True) -> Index:
    """Reuse the index at cfg.out when its manifest matches this corpus and config; else build and save."""
    out = Path(cfg.out) if cfg.out else default_index_dir(cfg.corpus)
    if (out / "manifest.json").is_file():
        index = load_index(out)
        m = index.manifest
        if m["corpus_hash"] == corpus_hash(docs) and {**m["config"], "out": ""} == {**asdict(cfg), "out": ""}:
            if embedder is not None:
                index._embedder = embedder
            return index
    index = build_index(docs, cfg, embedder, progress)
    index.save(out)
    return index

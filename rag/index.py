"""Step 1, indexing: chunk documents, build a sparse BM25 index and a dense FAISS index; add/update in place.

An index directory holds:
  manifest.json  config, embedder, counts, corpus hash, per-document hashes, stage timings, update log
  chunks.jsonl   {"chunk_id", "doc_id", "title", "text", "start", "end"[, "section"]}
                 (start/end: character span in the document; chunk_id == position == FAISS id == BM25 row)
  tokens.jsonl   the BM25 tokens of each chunk, one JSON list a line: rank-bm25 is rebuilt from them on load
                 (no pickle) and bm25s is re-indexed from them on add/update
  bm25/          bm25s arrays (numpy .npy, no pickle) + vocab json   (sparse = bm25s only)
  dense.faiss    IndexFlatIP (flat) or IndexHNSWFlat (hnsw) over L2-normalised embeddings: inner product = cosine

Variants (IndexConfig): chunker recursive | token | markdown; dense flat | hnsw; sparse bm25s | rank-bm25.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from corpora.config import check, known, opt
from corpora.errors import InputError
from rag.models import DEFAULT_EMBEDDER, DEFAULT_GENERATOR, DEVICES
from rag.query import tokenize

# rank-bm25's BM25Okapi defaults; method "robertson" is the same formula up to a (k1 + 1) factor,
# which tests/test_rag.py checks against rank-bm25 itself.
BM25_K1, BM25_B, BM25_METHOD = 1.5, 0.75, "robertson"
CHUNKERS = ("recursive", "token", "markdown")
DENSE = ("flat", "hnsw")
SPARSE = ("bm25s", "rank-bm25")
# hnsw build-time candidate list (efConstruction). At 128, M=32 on 10,000 spread-out 384-d vectors (`ragft bench
# retrieval`, 2 cores): recall@10 vs flat 0.900 / 0.957 / 0.980 at efSearch 64 / 128 / 256 (README); why not 64:
# docs/defaults.md, "ragft index".
HNSW_EF_CONSTRUCTION = 128
MARKDOWN_HEADERS = [("#", "h1"), ("##", "h2"), ("###", "h3")]
# Fields that change how an index is searched, not what it holds: a manifest differing only here still matches.
SEARCH_TIME_FIELDS = ("out", "device", "ef_search")


@dataclass
class IndexConfig:
    corpus: str = "atlantis"
    """Shipped corpus name or a folder with docs.jsonl (default atlantis)."""
    out: str = ""
    """Index folder (default runs/index-<corpus>, plus -<hash> for non-default build options)."""
    chunker: str = opt("recursive", choices=CHUNKERS)
    """recursive (characters) | token (generator tokens) | markdown (headers, then recursive) (default recursive)."""
    chunk_size: int = opt(500, min=1)
    """Chunk length: characters, or generator tokens for the token chunker (default 500)."""
    overlap: int = opt(50, min=0)
    """Characters (tokens for the token chunker) shared by neighbouring chunks, below --chunk-size (default 50)."""
    dense: str = opt("flat", choices=DENSE)
    """FAISS index: flat (exact) | hnsw (approximate graph) (default flat)."""
    hnsw_m: int = opt(32, min=2)
    """hnsw: neighbours per graph node, M (default 32)."""
    ef_search: int = opt(128, min=1)
    """hnsw: candidates kept while searching, efSearch; search-time only (default 128)."""
    sparse: str = opt("bm25s", choices=SPARSE)
    """BM25 implementation: bm25s (fast) | rank-bm25 (the reference) (default bm25s)."""
    embedder: str = DEFAULT_EMBEDDER
    """Embedder: 'minilm-l6' (shipped) or a local sentence-transformers folder (default minilm-l6)."""
    generator: str = DEFAULT_GENERATOR
    """Model whose tokenizer the token chunker counts with: 'smollm2-135m' or a local folder (default smollm2-135m)."""
    device: str = opt("auto", choices=DEVICES)
    """Device: auto | cpu | cuda (default auto)."""

    def __post_init__(self):
        check_config(self)  # check(self) on the field metadata, then overlap < chunk_size


@dataclass
class IndexUpdateConfig:
    docs: str = ""
    """JSONL file of documents {"id", "title", "text"}: add (new ids) or update (same ids replaced, new added)."""
    index: str = ""
    """Index folder to change (default runs/index-<corpus>)."""
    corpus: str = "atlantis"
    """Corpus whose default index folder is changed when --index is not given (default atlantis)."""
    device: str = opt("auto", choices=DEVICES)
    """Device for embedding the new chunks: auto | cpu | cuda (default auto)."""

    def __post_init__(self):
        check(self)


def check_config(cfg: IndexConfig) -> None:
    """The index options' checks (an IndexConfig runs them when made): each value alone (field metadata;
    chunker, dense and sparse keep their "unknown chunker 'x': choose one of ..." wording), then the one rule
    between two of them, overlap < chunk_size."""
    known(cfg, "chunker", "dense", "sparse")
    check(cfg)
    if cfg.overlap >= cfg.chunk_size:
        raise InputError(f"--overlap {cfg.overlap}: need overlap < chunk_size, got {cfg.chunk_size} and {cfg.overlap}")


# ---- hashes -------------------------------------------------------------------------------------------------

def doc_hash(doc: dict) -> str:
    return hashlib.sha256(json.dumps([doc["id"], doc["title"], doc["text"]], ensure_ascii=False).encode()).hexdigest()[:16]


def hash_of(doc_hashes: list[str]) -> str:
    """Corpus hash from the per-document hashes, in document order."""
    return hashlib.sha256("".join(doc_hashes).encode()).hexdigest()[:16]


def corpus_hash(docs: list[dict]) -> str:
    return hash_of([doc_hash(d) for d in docs])


# ---- step 1a: chunking --------------------------------------------------------------------------------------

def make_splitter(chunker: str, chunk_size: int, overlap: int, tokenizer=None):
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    if chunker == "token":
        # Separators as the recursive splitter (paragraph, line, space), lengths counted in generator tokens.
        return RecursiveCharacterTextSplitter.from_huggingface_tokenizer(tokenizer, chunk_size=chunk_size,
                                                                         chunk_overlap=overlap)
    return RecursiveCharacterTextSplitter(chunk_size=chunk_size, chunk_overlap=overlap)


def split_with_spans(splitter, text: str) -> list[tuple[int, str]]:
    """(start, chunk) for each chunk, text[start:start + len(chunk)] == chunk.

    Not langchain's add_start_index: it steps back by chunk_overlap in characters even when the overlap is
    counted in tokens, and then misses (start -1) or lands on a later repeat of the same words. Chunks come in
    order and the next one starts after the previous one's start, so each is the first match from there.
    """
    spans, cursor = [], 0
    for chunk in splitter.split_text(text):
        start = text.find(chunk, cursor)
        if start < 0:  # not expected (the splitter only strips whitespace); search the whole text
            start = text.find(chunk)
        spans.append((start, chunk))
        cursor = start + 1
    return spans


def markdown_sections(text: str) -> list[tuple[int, int, str]]:
    """(start, end, header path) of each section MarkdownHeaderTextSplitter finds, as spans of `text`.

    The splitter rewrites whitespace (strips lines, drops blank ones), so each section is located in the
    original by its words separated by any whitespace; the original slice is what gets chunked.
    """
    from langchain_text_splitters import MarkdownHeaderTextSplitter

    sections, cursor = [], 0
    for piece in MarkdownHeaderTextSplitter(MARKDOWN_HEADERS, strip_headers=False).split_text(text):
        words = piece.page_content.split()
        if not words:
            continue
        m = re.compile(r"\s+".join(map(re.escape, words))).search(text, cursor)
        if m is None:  # not expected; fall back to the whole rest of the document as one section
            return sections + [(cursor, len(text), "")]
        path = " > ".join(piece.metadata[name] for _, name in MARKDOWN_HEADERS if name in piece.metadata)
        sections.append((m.start(), m.end(), path))
        cursor = m.end()
    return sections or [(0, len(text), "")]


def chunk_documents(docs: list[dict], chunk_size: int, overlap: int, chunker: str = "recursive",
                    tokenizer=None, first_id: int = 0) -> list[dict]:
    """Split each document into chunks that keep doc id, title and character span (doc[start:end] == text)."""
    splitter = make_splitter(chunker, chunk_size, overlap, tokenizer)
    chunks = []
    for d in docs:
        sections = markdown_sections(d["text"]) if chunker == "markdown" else [(0, len(d["text"]), None)]
        for s0, s1, path in sections:
            for offset, text in split_with_spans(splitter, d["text"][s0:s1]):
                start = s0 + offset
                c = {"chunk_id": first_id + len(chunks), "doc_id": d["id"], "title": d["title"],
                     "text": text, "start": start, "end": start + len(text)}
                if path is not None:
                    c["section"] = path
                chunks.append(c)
    return chunks


def load_chunk_tokenizer(cfg: IndexConfig):
    """The generator's tokenizer for the token chunker; None for the character chunkers."""
    if cfg.chunker != "token":
        return None
    from transformers import AutoTokenizer

    from rag.models import resolve_generator

    return AutoTokenizer.from_pretrained(resolve_generator(cfg.generator))


def chunk_view(chunk: dict) -> str:
    """What both retrievers see of a chunk: the title carries the entity name a chunk may lack."""
    return f"{chunk['title']}\n{chunk['text']}" if chunk["title"] else chunk["text"]


# ---- step 1b: sparse and dense indexes ----------------------------------------------------------------------

def build_sparse(tokens: list[list[str]], sparse: str):
    """BM25 over token lists. Both have get_scores(query_tokens) -> (n_chunks,) array; see sparse_scores."""
    if sparse == "rank-bm25":
        from rank_bm25 import BM25Okapi

        # epsilon=0: a term in more than half of the chunks (negative idf) gets idf 0, as in bm25s's robertson
        # (rank-bm25's default would give it 0.25 x the mean idf). rank-bm25 divides by the corpus size and the
        # average length: an empty index needs one empty document.
        return BM25Okapi(tokens or [[]], k1=BM25_K1, b=BM25_B, epsilon=0.0)
    import bm25s

    bm25 = bm25s.BM25(method=BM25_METHOD, k1=BM25_K1, b=BM25_B)
    bm25.index(tokens, show_progress=False)
    return bm25


def sparse_scores(bm25, query_tokens: list[str], n: int) -> np.ndarray:
    """(n,) BM25 scores on bm25s's scale: rank-bm25's are divided by its constant (k1 + 1) factor; with
    epsilon=0 (build_sparse) the two are then the same function (tests/test_rag_index.py)."""
    if not query_tokens or n == 0:
        return np.zeros(n, dtype=np.float32)
    scores = np.asarray(bm25.get_scores(query_tokens), dtype=np.float32)
    if type(bm25).__name__ == "BM25Okapi":
        scores = scores / (BM25_K1 + 1)
    return scores


SMALL_BATCH = 8  # texts; at most this many are embedded with one CPU thread (see embed)


def embed(embedder, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
    """(n, dim) float32, L2-normalised.

    On CPU, a few texts (a query, the chunks of one updated document) are embedded with one intra-op
    thread: their matrices are too small to split, and on a shared 2-core machine (load 13) torch's 2
    threads made one query take 0.59 s instead of 0.053 s and 2 chunks 1.20 s instead of 0.23 s, while 64
    chunks took 9.1 s vs 8.7 s. Large batches keep torch's setting.
    """
    import torch

    one = len(texts) <= SMALL_BATCH and getattr(embedder, "device", None) is not None \
        and embedder.device.type == "cpu" and torch.get_num_threads() > 1
    threads = torch.get_num_threads()
    if one:
        torch.set_num_threads(1)
    try:
        vecs = embedder.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                               convert_to_numpy=True, show_progress_bar=progress)
    finally:
        if one:
            torch.set_num_threads(threads)
    return np.ascontiguousarray(vecs, dtype=np.float32).reshape(len(texts), -1)


def build_dense(vecs: np.ndarray, dense: str, hnsw_m: int = 32, ef_search: int = 128):
    """FAISS index over (n, dim) L2-normalised vectors; ids are row positions."""
    import faiss

    dim = vecs.shape[1]
    if dense == "hnsw":
        index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.hnsw.efSearch = ef_search
    else:
        index = faiss.IndexFlatIP(dim)
    if len(vecs):
        index.add(vecs)
    return index


def all_vectors(dense_index) -> np.ndarray:
    """(ntotal, dim) float32: the stored vectors (flat and HNSW-flat both keep them uncompressed)."""
    if dense_index.ntotal == 0:
        return np.zeros((0, dense_index.d), dtype=np.float32)
    return dense_index.reconstruct_n(0, dense_index.ntotal)


class Index:
    """Holds the chunks, their BM25 tokens, the BM25 model, the FAISS index and (lazily) the embedder."""

    def __init__(self, chunks, bm25, faiss_index, manifest, embedder=None, tokens=None):
        self.chunks, self.bm25, self.faiss, self.manifest = chunks, bm25, faiss_index, manifest
        self.tokens = tokens if tokens is not None else [tokenize(chunk_view(c)) for c in chunks]
        self._embedder = embedder

    @property
    def config(self) -> IndexConfig:
        return IndexConfig(**{**asdict(IndexConfig()), **self.manifest["config"]})

    @property
    def embedder(self):
        if self._embedder is None:
            from rag.models import load_embedder

            self._embedder = load_embedder(self.manifest["config"]["embedder"], self.manifest["config"]["device"])
            emb = self._embedder  # sentence-transformers 6 renamed the method; the old name warns
            dim = (getattr(emb, "get_embedding_dimension", None) or emb.get_sentence_embedding_dimension)()
            if dim != self.faiss.d:  # a query vector of another size would fail inside faiss
                raise InputError(f"index was built with another embedder: its vectors are {self.faiss.d}-d, embedder "
                                 f"{self.manifest['config']['embedder']!r} gives {dim}-d; rebuild it with `ragft index`")
        return self._embedder

    def save(self, out: str | Path) -> Path:
        """Write to a temp folder beside `out`, then swap it in: a killed save leaves the old index whole, a
        failed one leaves no temp folder. `out` must be new, empty or ragft's index (corpora/outputs.py)."""
        import faiss

        from corpora.files import temp_dir_beside
        from corpora.outputs import io_errors, prepare_out, replace_dir, write_marker

        out = prepare_out(out, "index")
        out.parent.mkdir(parents=True, exist_ok=True)
        with io_errors(out), temp_dir_beside(out) as tmp:  # a full disk: one OSError naming `out`
            with open(tmp / "chunks.jsonl", "w", encoding="utf-8") as f:
                for c in self.chunks:
                    f.write(json.dumps(c, ensure_ascii=False) + "\n")
            with open(tmp / "tokens.jsonl", "w", encoding="utf-8") as f:
                for t in self.tokens:
                    f.write(json.dumps(t, ensure_ascii=False) + "\n")
            if type(self.bm25).__name__ == "BM25":  # bm25s; rank-bm25 is rebuilt from tokens.jsonl on load
                self.bm25.save(str(tmp / "bm25"))
            faiss.write_index(self.faiss, str(tmp / "dense.faiss"))
            (tmp / "manifest.json").write_text(json.dumps(self.manifest, indent=2))
            write_marker(tmp, "index")
            replace_dir(tmp, out)
        return out


def load_for_indexing(cfg: IndexConfig, embedder=None):
    """The one-off costs of a process that indexes, kept out of the stage timings: load the embedder (unless
    given) and the token chunker's tokenizer, import the splitters, and one warm-up encoder call (the first
    call allocates; ~1 s on CPU). -> (embedder, tokenizer or None)."""
    import langchain_text_splitters  # noqa: F401

    if embedder is None:
        from rag.models import load_embedder

        embedder = load_embedder(cfg.embedder, cfg.device)
    embed(embedder, ["warm-up"])
    return embedder, load_chunk_tokenizer(cfg)


def build_index(docs: list[dict], cfg: IndexConfig, embedder=None, progress: bool = True) -> Index:
    """Chunk, BM25, embed, FAISS. manifest["timings"] has each stage's seconds ("load": load_for_indexing);
    build_seconds is their sum, load included."""
    check_config(cfg)
    times = {}
    t = time.perf_counter()
    embedder, tokenizer = load_for_indexing(cfg, embedder)
    times["load"] = time.perf_counter() - t
    t = time.perf_counter()
    chunks = chunk_documents(docs, cfg.chunk_size, cfg.overlap, cfg.chunker, tokenizer)
    views = [chunk_view(c) for c in chunks]
    tokens = [tokenize(v) for v in views]
    times["chunk"] = time.perf_counter() - t
    t = time.perf_counter()
    bm25 = build_sparse(tokens, cfg.sparse)
    times["sparse"] = time.perf_counter() - t
    t = time.perf_counter()
    vecs = embed(embedder, views, progress=progress)
    times["embed"] = time.perf_counter() - t
    t = time.perf_counter()
    dense = build_dense(vecs, cfg.dense, cfg.hnsw_m, cfg.ef_search)
    times["dense"] = time.perf_counter() - t
    hashes = {d["id"]: doc_hash(d) for d in docs}
    manifest = {
        "config": asdict(cfg), "n_docs": len(docs), "n_chunks": len(chunks), "dim": int(vecs.shape[1]),
        "corpus_hash": hash_of(list(hashes.values())), "source_hash": hash_of(list(hashes.values())),
        "build_seconds": round(sum(times.values()), 3),
        "timings": {k: round(v, 4) for k, v in times.items()},
        "doc_hashes": hashes, "updates": [],
    }
    return Index(chunks, bm25, dense, manifest, embedder, tokens)


# ---- add / update without a full rebuild --------------------------------------------------------------------

def update_index(index: Index, docs: list[dict], mode: str = "update", embedder=None) -> dict:
    """Add documents (mode 'add': every id must be new) or add-or-replace them (mode 'update'), in place.

    Only the new and changed documents are chunked and embedded. The replaced documents' chunks are removed
    and the new chunks appended (chunk ids renumbered to positions). Sparse: re-indexed from the stored tokens
    (bm25s builds its sparse matrix in one pass; cheap next to embedding). Dense: flat removes rows in place
    (IndexFlat.remove_ids compacts ids, as the chunk list does) and appends; hnsw cannot remove, so its graph
    is rebuilt from the stored vectors (no re-embedding).
    Returns a record {"mode", "added", "replaced", "unchanged", "chunks_removed", "chunks_added", "seconds",
    "timings"}; it is also appended to manifest["updates"]. seconds excludes timings["load"] (load_for_indexing),
    as manifest["build_seconds"] - manifest["timings"]["load"] does for the build.
    """
    import faiss

    if mode not in ("add", "update"):
        raise InputError(f"unknown update mode {mode!r}: add or update")
    m, cfg = index.manifest, index.config
    if "doc_hashes" not in m:
        raise InputError("index was built by an older ragft (no doc_hashes in manifest.json); rebuild it "
                         "with `ragft index`")
    hashes: dict[str, str] = dict(m["doc_hashes"])
    seen, incoming = set(), []
    for d in docs:
        if d["id"] in seen:
            raise InputError(f"document {d['id']!r} appears twice in the update")
        seen.add(d["id"])
        if mode == "add" and d["id"] in hashes:
            raise InputError(f"document {d['id']!r} is already in the index; use `ragft index update` to replace it")
        if hashes.get(d["id"]) != doc_hash(d):
            incoming.append(d)
    replaced = [d["id"] for d in incoming if d["id"] in hashes]
    added = [d["id"] for d in incoming if d["id"] not in hashes]

    times = {}
    t = time.perf_counter()
    if embedder is not None:
        index._embedder = embedder
    emb, tokenizer = load_for_indexing(cfg, index.embedder) if incoming else (None, None)
    times["load"] = time.perf_counter() - t
    t0 = t = time.perf_counter()
    gone = set(replaced)
    keep = np.array([c["doc_id"] not in gone for c in index.chunks], dtype=bool)
    new_chunks = chunk_documents(incoming, cfg.chunk_size, cfg.overlap, cfg.chunker, tokenizer,
                                 first_id=int(keep.sum()))
    views = [chunk_view(c) for c in new_chunks]
    new_tokens = [tokenize(v) for v in views]
    chunks = [c for c, k in zip(index.chunks, keep) if k]
    for i, c in enumerate(chunks):
        c["chunk_id"] = i
    chunks += new_chunks
    tokens = [tk for tk, k in zip(index.tokens, keep) if k] + new_tokens
    times["chunk"] = time.perf_counter() - t
    t = time.perf_counter()
    bm25 = build_sparse(tokens, cfg.sparse) if incoming else index.bm25
    times["sparse"] = time.perf_counter() - t
    t = time.perf_counter()
    vecs = embed(emb, views) if views else np.zeros((0, index.faiss.d), dtype=np.float32)
    times["embed"] = time.perf_counter() - t
    t = time.perf_counter()
    dense = index.faiss
    if (~keep).any() or len(vecs):
        if isinstance(dense, faiss.IndexFlat):
            if (~keep).any():
                dense.remove_ids(np.flatnonzero(~keep).astype(np.int64))
            if len(vecs):
                dense.add(vecs)
        else:
            kept = all_vectors(dense)[keep]
            dense = build_dense(np.concatenate([kept, vecs]), cfg.dense, cfg.hnsw_m, dense.hnsw.efSearch)
    times["dense"] = time.perf_counter() - t
    seconds = time.perf_counter() - t0

    for d in incoming:
        hashes[d["id"]] = doc_hash(d)  # a replaced document keeps its place in the document order
    index.chunks, index.tokens, index.bm25, index.faiss = chunks, tokens, bm25, dense
    record = {"mode": mode, "added": added, "replaced": replaced, "unchanged": len(docs) - len(incoming),
              "chunks_removed": int((~keep).sum()), "chunks_added": len(new_chunks), "seconds": round(seconds, 4),
              "timings": {k: round(v, 4) for k, v in times.items()}}
    m.update({"n_docs": len(hashes), "n_chunks": len(chunks), "doc_hashes": hashes,
              "corpus_hash": hash_of(list(hashes.values()))})
    m.setdefault("updates", []).append(record)
    return record


def change_index(cfg: IndexUpdateConfig, mode: str) -> dict:
    """`ragft index add|update`: load the index, change it in place (update_index), save it.

    -> {"path", "mode", "update": update_index's record, "n_chunks" after it, "build_seconds": the full
    build's seconds without loading and warming up the embedder, "load_seconds", "save_seconds" of the index}.
    """
    from corpora import load_docs

    from corpora.outputs import prepare_out

    path = Path(cfg.index) if cfg.index else default_index_dir(cfg.corpus)
    t0 = time.perf_counter()
    index = load_index(path)
    prepare_out(path, "index", "--index")  # writable, and ragft's own: found before any embedding
    if cfg.device != "auto":
        index.manifest["config"]["device"] = cfg.device
    load_s = time.perf_counter() - t0
    record = update_index(index, load_docs(Path(cfg.docs)), mode)
    t0 = time.perf_counter()
    index.save(path)
    save_s = time.perf_counter() - t0
    m = index.manifest
    return {"path": str(path), "mode": mode, "update": record, "n_chunks": m["n_chunks"],
            "build_seconds": m["build_seconds"] - m.get("timings", {}).get("load", 0.0),
            "load_seconds": load_s, "save_seconds": save_s}


# ---- load / reuse -------------------------------------------------------------------------------------------

def read_index_files(path: Path):
    """-> (manifest, chunks, tokens or None, BM25 model, FAISS index) as saved by Index.save."""
    import faiss

    manifest = json.loads((path / "manifest.json").read_text())
    chunks = [json.loads(line) for line in (path / "chunks.jsonl").read_text(encoding="utf-8").splitlines()]
    tokens = None
    if (path / "tokens.jsonl").is_file():
        tokens = [json.loads(line) for line in (path / "tokens.jsonl").read_text(encoding="utf-8").splitlines()]
    sparse = manifest["config"].get("sparse", "bm25s")
    if sparse == "bm25s":
        import bm25s

        bm25 = bm25s.BM25.load(str(path / "bm25"))
    else:
        bm25 = build_sparse(tokens if tokens is not None else [tokenize(chunk_view(c)) for c in chunks], sparse)
    dense = faiss.read_index(str(path / "dense.faiss"))
    return manifest, chunks, tokens, bm25, dense


def check_manifest_embedder(path: Path, manifest: dict, trusted: str | None = None) -> None:
    """The embedder manifest.json names is loaded only from a known place: the shipped name, a hub id (read from
    the local HF cache only), a folder inside the index folder, or `trusted` (the embedder the user named on this
    command line); any other folder is refused, so a copied index cannot make ragft load a model from elsewhere."""
    name = manifest.get("config", {}).get("embedder") if isinstance(manifest.get("config"), dict) else None
    if not isinstance(name, str) or not name.strip():
        raise InputError("index is damaged (manifest.json names no embedder); rebuild it with `ragft index`", str(path))
    if name in (DEFAULT_EMBEDDER, trusted):
        return
    folder = Path(name).expanduser()
    if folder.exists() and not folder.resolve().is_relative_to(path.resolve()):
        raise InputError(f"manifest.json names the embedder folder {name!r}, outside the index folder: refusing to "
                         "load a model from there; rebuild the index with `ragft index`", str(path))


def load_index(path: str | Path, ef_search: int | None = None, embedder: str | None = None) -> Index:
    """Load an index directory. ef_search (hnsw only) overrides the stored search-time setting. embedder: the
    embedder the user named (trusted where the manifest names the same; check_manifest_embedder)."""
    path = Path(path)
    if not (path / "manifest.json").is_file():
        raise InputError("not an index directory (no manifest.json); build one with `ragft index`", str(path))
    try:  # a damaged file is one line naming it, not a traceback from json, bm25s or faiss
        manifest, chunks, tokens, bm25, dense = read_index_files(path)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:  # JSONDecodeError, UnicodeDecodeError: ValueError
        raise InputError(f"index is damaged ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}); "
                         "rebuild it with `ragft index`", str(path)) from None
    check_manifest_embedder(path, manifest, embedder)
    if dense.d != manifest.get("dim", dense.d):
        raise InputError(f"index was built with another embedder: dense.faiss holds {dense.d}-d vectors, "
                         f"manifest.json says {manifest['dim']}-d ({manifest['config'].get('embedder')})", str(path))
    if dense.ntotal != len(chunks) or (tokens is not None and len(tokens) != len(chunks)):
        raise InputError(f"index is inconsistent: {dense.ntotal} vectors for {len(chunks)} chunks", str(path))
    if ef_search is not None and hasattr(dense, "hnsw"):
        dense.hnsw.efSearch = ef_search
        manifest["config"]["ef_search"] = ef_search
    return Index(chunks, bm25, dense, manifest, tokens=tokens)


def default_index_dir(corpus: str, cfg: IndexConfig | None = None) -> Path:
    """runs/index-<corpus>; an index built with non-default settings gets a suffix of their hash, so
    variants (chunkers, hnsw, rank-bm25) sit beside the default index instead of replacing it."""
    base = f"index-{Path(corpus).name}"
    if cfg is not None:
        default, want = asdict(IndexConfig()), asdict(cfg)
        skip = SEARCH_TIME_FIELDS + ("corpus",) + (() if cfg.chunker == "token" else ("generator",))
        diff = {k: want[k] for k in want if k not in skip and want[k] != default[k]}
        if diff:
            base += "-" + hashlib.sha256(json.dumps(diff, sort_keys=True).encode()).hexdigest()[:8]
    return Path("runs") / base


def manifest_matches(manifest: dict, docs: list[dict], cfg: IndexConfig, allow_updated: bool = False) -> bool:
    """Same build config (search-time fields aside) and same documents; with allow_updated, also an index
    built from these documents and then changed by `ragft index add/update`."""
    stored = {**asdict(IndexConfig()), **manifest.get("config", {})}
    want = asdict(cfg)
    ignore = SEARCH_TIME_FIELDS + (() if cfg.chunker == "token" else ("generator",))  # tokenizer: token chunker only
    if any(stored.get(k) != want[k] for k in want if k not in ignore):
        return False
    h = corpus_hash(docs)
    return manifest.get("corpus_hash") == h or (
        allow_updated and bool(manifest.get("updates")) and manifest.get("source_hash") == h)


def open_or_build(docs: list[dict], cfg: IndexConfig, embedder=None, progress: bool = True,
                  allow_updated: bool = False) -> Index:
    """Reuse the index at cfg.out when its manifest matches this corpus and config; else build and save.

    allow_updated: also reuse an index built from these documents and updated since (`ragft ask` does).
    """
    check_config(cfg)
    out = Path(cfg.out) if cfg.out else default_index_dir(cfg.corpus, cfg)
    if (out / "manifest.json").is_file():
        try:
            manifest = json.loads((out / "manifest.json").read_text())
            ok = manifest_matches(manifest, docs, cfg, allow_updated)
            index = load_index(out, ef_search=cfg.ef_search, embedder=cfg.embedder) if ok else None
        except (ValueError, InputError) as e:  # damaged (ValueError: bad JSON or bytes): rebuilt below
            index = None
            if progress:
                print(f"{e}; rebuilding", file=sys.stderr)
        if index is not None:
            if embedder is not None:
                index._embedder = embedder
            return index
    from corpora.outputs import prepare_out

    prepare_out(out, "index")  # a folder ragft may not replace, or cannot write, is found before the build
    index = build_index(docs, cfg, embedder, progress)
    index.save(out)
    return index

"""`ragft bench scale`: how index build time, size on disk, build memory and query latency grow with the corpus.

Corpora: corpora/synth.py (seeded fictional towns) with 10^3, 10^4, 10^5 documents (10^6 with --large), each
document cut to its title and first `doc_words` words (about a sentence, ~30 MiniLM tokens): one chunk per
document, so the figures are per document.

Dense vectors (`vectors`): `model` embeds every document with MiniLM (batched); `static` mean-pools MiniLM's
token-embedding table (benchmarks/retrieval.py: static_vectors; same dimension, normalised, clustered): the
index figures depend on n and the dimension, not on which vectors. `auto` = model on CUDA, static on CPU,
because MiniLM on 2 CPU cores embeds ~20-35 such documents/s (10^5 documents: ~1 hour on an idle machine,
several on a shared one). With static vectors, MiniLM's throughput is still measured on the first
`embed_sample` documents of each size and the full embedding time is projected from it (marked "projected").
Queries: the corpus's own generated questions (`queries` of them, same for every index of one size).

Indexes, ragft's own builders (rag/index.py) and search path (rag/rank.py):
  bm25   bm25s over rag/query.py tokens; build = tokenizing + indexing; query = sparse_scores + top-10
  flat   FAISS IndexFlatIP over MiniLM vectors (exact); query = one search call for one query, top 10
  hnsw   FAISS IndexHNSWFlat (M=hnsw_m, efConstruction 128: rag/index.py, efSearch=ef_search), same vectors
         and queries
Query latency: p50 / p95 of one query per call, 1 FAISS thread, index search only (the query's embedding is
computed beforehand; its cost is the same at every size). The embedding of the documents is measured once per
size and reported separately (docs/s): it is the dense indexes' dominant build cost on CPU.

Honest memory: every (size, index) is built in a fresh subprocess (python -m benchmarks.scale). Its peak RSS
comes from /proc/self/status VmHWM, reset (clear_refs 5) after loading the inputs, so build_mb = peak during
the build minus the RSS before it; peak_mb is the process's whole peak. The embedding runs in its own
subprocess too and its vectors are cached under `work` (reused when the same size, seed and words come back).

Output: the table printed and written to <out>/scale.csv and scale.json, and <out>/scale.png: log-log plots of
each column against the number of documents, with the fitted growth exponent b (y ~ n^b, least squares on
log-log) per index in the legend and in the exponents table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from benchmarks.retrieval import VECTORS
from corpora.config import check, opt
from rag.models import DEFAULT_EMBEDDER, DEVICES

INDEXES = ("bm25", "flat", "hnsw")
COLUMNS = {"build_s": "build seconds", "disk_mb": "size on disk, MB", "build_mb": "build memory, MB (peak - before)",
           "p50_ms": "query p50, ms", "p95_ms": "query p95, ms"}


@dataclass
class ScaleConfig:
    sizes: str = "1000,10000,100000"
    """Corpus sizes in documents, comma-separated, each at least 100 (default 1000,10000,100000)."""
    large: bool = False
    """Also 1,000,000 documents (default off)."""
    indexes: str = "bm25,flat,hnsw"
    """Indexes to build at each size, comma-separated: bm25, flat, hnsw (default bm25,flat,hnsw)."""
    doc_words: int = opt(12, min=1)
    """Words kept of each generated document after its title (default 12 words)."""
    queries: int = opt(200, min=10)
    """Queries timed per index, one per call (default 200)."""
    seed: int = opt(1, min=0)
    """Seed of the generated corpora (default 1)."""
    hnsw_m: int = opt(32, min=2)
    """hnsw: neighbours per graph node, M (default 32)."""
    ef_search: int = opt(64, min=1)
    """hnsw: candidates kept while searching, efSearch (default 64)."""
    embed_batch: int = opt(128, min=1)
    """Texts per embedder batch (default 128)."""
    vectors: str = opt("auto", choices=VECTORS)
    """Dense vectors: model | static (token-embedding table) | auto: model on CUDA, static on CPU (default auto)."""
    embed_sample: int = opt(1000, min=0)
    """With static vectors: documents the embedder embeds per size to measure its docs/s (default 1000; 0: skip)."""
    embedder: str = DEFAULT_EMBEDDER
    """Embedder: 'minilm-l6' (shipped) or a local model folder (default minilm-l6)."""
    device: str = opt("auto", choices=DEVICES)
    """Device of the embedder: auto | cpu | cuda; the indexes are FAISS CPU (default auto)."""
    work: str = "runs/scale"
    """Folder for generated corpora, cached vectors, built indexes and the outputs (default runs/scale)."""

    def __post_init__(self):
        check(self)  # --sizes and --indexes are read and checked by run_scale before any work


# ---- measuring inside a worker ------------------------------------------------------------------------------

def rss_mb(field: str = "VmRSS") -> float:
    """Current (VmRSS) or peak (VmHWM) resident memory of this process in MiB (Linux; else ru_maxrss)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0). False where not possible (peak then is the process's)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def dir_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 2**20


def short_views(docs_path: Path, words: int) -> list[str]:
    """Title + first `words` words of each document: what both retrievers see."""
    views = []
    with open(docs_path, encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            views.append(d["title"] + "\n" + " ".join(d["text"].split()[:words]))
    return views


def query_texts(qa_path: Path, n: int) -> list[str]:
    with open(qa_path, encoding="utf-8") as f:
        qs = [json.loads(line)["question"] for line in f]
    return qs[:n]


def latencies(fn, queries) -> dict:
    """Milliseconds per call of fn(q) over the queries (after 3 warm-up calls) -> p50, p95, mean."""
    for q in queries[:3]:
        fn(q)
    ms = []
    for q in queries:
        t = time.perf_counter()
        fn(q)
        ms.append((time.perf_counter() - t) * 1000)
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
            "mean_ms": float(np.mean(ms))}


def worker_prepare(a: dict) -> dict:
    """Generate the corpus (if missing), embed documents and queries (if not cached). -> paths and seconds."""
    from corpora.synth import SynthConfig, generate

    n, folder = a["n"], Path(a["folder"])
    meta_path = folder / "vectors.json"
    want = {"n": n, "seed": a["seed"], "doc_words": a["doc_words"], "queries": a["queries"], "embedder": a["embedder"],
            "vectors": a["vectors"], "embed_sample": a["embed_sample"] if a["vectors"] == "static" else None}
    if meta_path.is_file() and (folder / "vectors.npy").is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("key") == want:
            return {**meta, "cached": True}
    t = time.perf_counter()
    # ~6 questions per asked town: ask every k-th town so that about `queries` questions exist.
    synth = generate(SynthConfig(docs=n, seed=a["seed"], out=str(folder / "corpus"),
                                 qa_every=max(1, n * 6 // (a["queries"] + 12))))
    synth_s = time.perf_counter() - t
    views = short_views(folder / "corpus" / "docs.jsonl", a["doc_words"])
    queries = query_texts(folder / "corpus" / "qa.jsonl", a["queries"])
    from rag.index import embed
    from rag.models import load_embedder

    emb = load_embedder(a["embedder"], a["device"])
    embed(emb, views[:64], batch_size=a["embed_batch"])  # warm-up
    rss0 = rss_mb()
    reset_peak()
    t = time.perf_counter()
    if a["vectors"] == "static":
        from benchmarks.retrieval import static_vectors

        vecs, mean = static_vectors(emb, views)
        embed_s = time.perf_counter() - t
        qvecs, _ = static_vectors(emb, queries, mean)
        sample = views[: a["embed_sample"]]
        model_s = None
        if sample:
            t = time.perf_counter()
            embed(emb, sample, batch_size=a["embed_batch"])
            model_s = time.perf_counter() - t
        model_rate = len(sample) / model_s if model_s else float("nan")
        model = {"model_docs_per_s": model_rate, "model_embed_s": n / model_rate if model_s else float("nan"),
                 "model_embed": f"projected from {len(sample)} docs"}
    else:
        vecs = embed(emb, views, batch_size=a["embed_batch"], progress=n >= 50_000)
        embed_s = time.perf_counter() - t
        qvecs = embed(emb, queries, batch_size=a["embed_batch"])
        model = {"model_docs_per_s": n / embed_s, "model_embed_s": embed_s, "model_embed": "measured"}
    np.save(folder / "vectors.npy", vecs)
    np.save(folder / "queries.npy", qvecs)
    words = float(np.mean([len(v.split()) for v in views]))
    meta = {"key": want, "synth_s": synth_s, "embed_s": embed_s, "docs_per_s": n / embed_s, "dim": int(vecs.shape[1]),
            "words_per_doc": words, "embed_mb": rss_mb("VmHWM") - rss0, "questions": synth["questions"],
            "threads": __import__("torch").get_num_threads(), "device": str(emb.device), "vectors": a["vectors"],
            **model}
    meta_path.write_text(json.dumps(meta, indent=1))
    return {**meta, "cached": False}


def worker_index(a: dict) -> dict:
    """Build one index over one prepared size, save it, time its queries. -> the row's figures."""
    kind, folder = a["index"], Path(a["folder"])
    out = folder / f"index-{kind}"
    queries = query_texts(folder / "corpus" / "qa.jsonl", a["queries"])
    if kind == "bm25":
        from rag.index import build_sparse, sparse_scores
        from rag.query import query_tokens, tokenize
        from rag.rank import top_k_of

        views = short_views(folder / "corpus" / "docs.jsonl", a["doc_words"])
        qtok = [query_tokens(q) for q in queries]
        import bm25s  # noqa: F401  (imported before the clock: build_sparse imports it lazily)

        rss0 = rss_mb()
        reset_peak()
        t = time.perf_counter()
        tokens = [tokenize(v) for v in views]
        index = build_sparse(tokens, "bm25s")
        build_s = time.perf_counter() - t
        peak = rss_mb("VmHWM")
        del tokens
        index.save(str(out))
        n = len(views)
        lat = latencies(lambda q: top_k_of(sparse_scores(index, q, n), 10), qtok)
    else:
        import faiss

        from rag.index import build_dense

        vecs = np.load(folder / "vectors.npy")
        qv = np.load(folder / "queries.npy")
        rss0 = rss_mb()
        reset_peak()
        t = time.perf_counter()
        index = build_dense(vecs, kind, a["hnsw_m"], a["ef_search"])
        build_s = time.perf_counter() - t
        peak = rss_mb("VmHWM")
        out.mkdir(parents=True, exist_ok=True)
        faiss.write_index(index, str(out / "dense.faiss"))
        faiss.omp_set_num_threads(1)  # one query per call: as ragft searches
        lat = latencies(lambda i: index.search(qv[i:i + 1], 10), list(range(len(qv))))
    return {"build_s": build_s, "disk_mb": dir_mb(out), "build_mb": max(peak - rss0, 0.0), "peak_mb": peak,
            "rss_before_mb": rss0, **lat}


def run_worker(stage: str, args: dict) -> dict:
    """One stage in a fresh Python process (its own peak RSS); -> the JSON it wrote."""
    result = Path(args["folder"]) / f".result-{stage}-{args.get('index', '')}.json"
    result.unlink(missing_ok=True)
    proc = subprocess.run([sys.executable, "-m", "benchmarks.scale", stage, json.dumps(args), str(result)],
                          env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    if proc.returncode != 0 or not result.is_file():
        raise RuntimeError(f"bench scale: the {stage} {args.get('index', '')} worker for {args['n']} documents "
                           f"failed (exit {proc.returncode})")
    return json.loads(result.read_text())


# ---- the curve ----------------------------------------------------------------------------------------------

def sizes_of(cfg: ScaleConfig) -> list[int]:
    from corpora.errors import InputError

    try:
        sizes = [int(s) for s in cfg.sizes.split(",") if s.strip()]
    except ValueError:
        raise InputError(f"--sizes must be comma-separated integers, got {cfg.sizes!r}") from None
    if cfg.large:
        sizes.append(1_000_000)
    sizes = sorted(set(sizes))
    if not sizes or sizes[0] < 100:
        raise InputError("every size must be at least 100 documents")
    return sizes


def growth_exponent(n, y) -> float:
    """b of y ~ a n^b by least squares on log10-log10 (positive values only; NaN with fewer than 2)."""
    n, y = np.asarray(n, dtype=float), np.asarray(y, dtype=float)
    ok = (n > 0) & (y > 0) & np.isfinite(y)
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log10(n[ok]), np.log10(y[ok]), 1)[0])


def exponents(table) -> "pd.DataFrame":
    import pandas as pd

    rows = []
    for kind, g in table.groupby("index", sort=False):
        rows.append({"index": kind, **{c: growth_exponent(g["docs"], g[c]) for c in COLUMNS}})
    return pd.DataFrame(rows)


def plot(table, exps, embed_rows, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = list(COLUMNS) + ["embed_s"]
    fig, axes = plt.subplots(2, 3, figsize=(14, 8.5))
    for ax, col in zip(axes.flat, cols):
        if col == "embed_s":
            x = [r["docs"] for r in embed_rows]
            y = [r["model_embed_s"] for r in embed_rows]
            how = "measured" if all(r["model_embed"] == "measured" for r in embed_rows) else "projected from a sample"
            ax.loglog(x, y, "o-", color="tab:purple", label=f"MiniLM ({how}), b={growth_exponent(x, y):.2f}")
            if embed_rows[0]["vectors"] == "static":
                y2 = [r["vectors_s"] for r in embed_rows]
                ax.loglog(x, y2, "s--", color="tab:gray", label=f"static vectors (used), b={growth_exponent(x, y2):.2f}")
            ax.set_title("embedding the documents, seconds")
        else:
            for kind, g in table.groupby("index", sort=False):
                b = exps.loc[exps["index"] == kind, col].iloc[0]
                y = g[col].where(g[col] > 0)
                ax.loglog(g["docs"], y, "o-", label=f"{kind}, b={b:.2f}")
            ax.set_title(COLUMNS[col])
        ax.set_xlabel("documents")
        sizes = sorted(table["docs"].unique())
        ax.set_xticks(sizes, [f"{n:,}" for n in sizes])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("ragft bench scale: growth with corpus size (b: fitted exponent, y ~ n^b)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run_scale(cfg: ScaleConfig, echo=print) -> dict:
    """Every size and index, each in its own subprocess; print and write the table and plot."""
    import pandas as pd

    from corpora.errors import InputError

    sizes = sizes_of(cfg)
    kinds = [k.strip() for k in cfg.indexes.split(",") if k.strip()]
    if not kinds or any(k not in INDEXES for k in kinds):
        raise InputError(f"--indexes: choose from {', '.join(INDEXES)}, got {cfg.indexes!r}")
    if cfg.queries < 10 or cfg.doc_words < 1:
        raise InputError("need queries >= 10 and doc_words >= 1")
    if cfg.vectors not in VECTORS:
        raise InputError(f"--vectors must be auto, model or static, got {cfg.vectors!r}")
    vectors = cfg.vectors
    if vectors == "auto":
        from rag.models import pick_device

        vectors = "model" if pick_device(cfg.device) == "cuda" else "static"
    work = Path(cfg.work)
    rows, embed_rows, t_all = [], [], time.perf_counter()
    for n in sizes:
        folder = work / f"n{n}-s{cfg.seed}-w{cfg.doc_words}-{vectors}"
        folder.mkdir(parents=True, exist_ok=True)
        base = {"n": n, "folder": str(folder), "seed": cfg.seed, "doc_words": cfg.doc_words, "queries": cfg.queries}
        t = time.perf_counter()
        # The corpus and its queries (every index) and the vectors (flat, hnsw); cached under work/.
        prep = run_worker("prepare", {**base, "embedder": cfg.embedder, "device": cfg.device,
                                      "embed_batch": cfg.embed_batch, "vectors": vectors,
                                      "embed_sample": cfg.embed_sample})
        embed_rows.append({"docs": n, "vectors": vectors, "vectors_s": prep["embed_s"], "vectors_mb": prep["embed_mb"],
                           "model_docs_per_s": prep["model_docs_per_s"], "model_embed_s": prep["model_embed_s"],
                           "model_embed": prep["model_embed"], "cached": prep["cached"]})
        echo(f"{n:>9} docs: {vectors} vectors {'(cached) ' if prep['cached'] else ''}{prep['embed_s']:.1f} s; MiniLM "
             f"{prep['model_docs_per_s']:.1f} docs/s -> {prep['model_embed_s']:.0f} s for all ({prep['model_embed']}); "
             f"{prep['words_per_doc']:.0f} words each, batch {cfg.embed_batch}, {prep['threads']} threads, "
             f"{prep['device']}; stage wall {time.perf_counter() - t:.0f} s")
        for kind in kinds:
            r = run_worker("index", {**base, "index": kind, "hnsw_m": cfg.hnsw_m, "ef_search": cfg.ef_search})
            rows.append({"docs": n, "index": kind, **r})
            echo(f"{n:>9} docs: {kind:<5} build {r['build_s']:8.2f} s  disk {r['disk_mb']:8.1f} MB  "
                 f"build memory {r['build_mb']:7.1f} MB (peak {r['peak_mb']:.0f})  "
                 f"query p50 {r['p50_ms']:.3f} ms  p95 {r['p95_ms']:.3f} ms")
    table = pd.DataFrame(rows)
    exps = exponents(table)
    work.mkdir(parents=True, exist_ok=True)
    table.to_csv(work / "scale.csv", index=False)
    png = plot(table, exps, embed_rows, work / "scale.png")
    seconds = time.perf_counter() - t_all
    (work / "scale.json").write_text(json.dumps({"config": asdict(cfg), "rows": rows, "embedding": embed_rows,
                                                 "exponents": exps.to_dict("records"), "seconds": seconds}, indent=1))
    shown = table[["docs", "index", *COLUMNS, "peak_mb"]].copy()
    echo("\n" + shown.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    echo("\ngrowth exponent b (y ~ n^b, least squares on log-log):")
    echo(exps.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    emb = pd.DataFrame(embed_rows)
    echo(f"\ndense vectors ({vectors}) and MiniLM embedding time (model_embed: measured or projected):")
    echo(emb.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    echo(f"\ntable: {work / 'scale.csv'}; plot: {png}; total {seconds:.0f} s")
    return {"table": table, "exponents": exps, "embedding": emb, "plot": str(png), "seconds": seconds}


if __name__ == "__main__":  # a worker: python -m benchmarks.scale STAGE ARGS_JSON RESULT_PATH
    stage, args, result = sys.argv[1], json.loads(sys.argv[2]), Path(sys.argv[3])
    res = worker_prepare(args) if stage == "prepare" else worker_index(args)
    result.write_text(json.dumps(res))

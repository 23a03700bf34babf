"""`ragft bench retrieval`: retrieval and generation speed, measured side by side in one process.

On a seeded synthetic corpus (corpora/synth.py: fictional towns, default 10,000 documents, one chunk each):
  sparse      bm25s (batched `retrieve`, numpy backend) vs rank-bm25 (`get_scores` per query): queries/s,
              and the fraction of queries whose top-10 is identical
  dense       FAISS flat vs hnsw, one query per search call: queries/s, and hnsw recall@10 against flat
  embedding   the embedder's throughput in chunks/s (chunks of the default recursive chunker)
  update      on the shipped atlantis corpus: `index update` of one changed document (atl-027 from its
              updates.jsonl) against the full build, both with the embedder already loaded and warm
  generation  SmolLM2 greedy tokens/s at batch 1 vs batch 8 on the same prompts, each row forced to the same
              number of new tokens (min_new_tokens) so both do the same work; the two are interleaved
              (b1 on half, b8, b1 on the other half, b8) so both see the same load on a shared machine
Every figure and ratio is printed; the targets of issue 4 are marked ok / MISSED.

Queries: a seeded sample of the corpus's own generated questions, tokenised as ragft's BM25 does by default
(rag/query.py, stop words kept). rank-bm25's cost grows with the query's tokens (a Python pass over every
document per token), bm25s's hardly does, so the ratio is also printed with stop words removed.
Identical top-10: bm25s's 10 documents have, rank by rank, the scores of rank-bm25's own top 10 (documents
tied on score may come in either order; the strictly same order is printed beside it). rank-bm25 is built as
ragft builds it (rag/index.py: build_sparse, epsilon=0), which makes it the same function as bm25s.

Dense vectors (`vectors`): `model` embeds all documents with the real embedder (minutes on 2 CPU cores, a few
seconds on a GPU); `static` mean-pools the same embedder's input token-embedding table over each text's
word pieces (corpus mean removed, L2-normalised): the same dimension and the same kind of clustered
geometry, in seconds. `auto` picks model on CUDA and static on CPU, and the report names what was used.
The embedding throughput is always the full model's.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import numpy as np

from corpora.config import check, opt
from corpora.errors import InputError
from rag.models import DEFAULT_EMBEDDER, DEFAULT_GENERATOR, DEVICES

VECTORS = ("auto", "model", "static")  # dense vectors of the FAISS comparison (module docstring)

@dataclass
class BenchConfig:
    docs: int = opt(10_000, min=100)
    """Synthetic documents, corpora/synth.py towns (default 10000)."""
    seed: int = opt(1, min=0)
    """Seed of the corpus and of the sample of its questions used as queries (default 1)."""
    bm25s_queries: int = opt(400, min=1)
    """Queries timed for bm25s, batched (default 400)."""
    rank_bm25_queries: int = opt(40, min=1)
    """Queries timed for rank-bm25, the first of bm25s's; at most --bm25s-queries (default 40)."""
    dense_queries: int = opt(300, min=1)
    """Queries timed for FAISS flat and hnsw (default 300)."""
    vectors: str = opt("auto", choices=VECTORS)
    """Dense vectors: model (embed every document) | static (token-embedding table) | auto (default auto)."""
    hnsw_m: int = opt(32, min=2)
    """hnsw: neighbours per graph node, M (default 32)."""
    ef_search: int = opt(128, min=1)
    """hnsw: candidates kept while searching, efSearch (default 128)."""
    embed_chunks: int = opt(64, min=1)
    """Chunks embedded with the full embedder to measure chunks/s (default 64)."""
    update: bool = True
    """Also time `index update` of one changed atlantis document against the full build (default on)."""
    gen_prompts: int = opt(8, min=0)
    """Prompts generated at batch 1 and at batch 8 (default 8; 0: skip the generation benchmark)."""
    gen_tokens: int = opt(32, min=1)
    """New tokens per prompt, forced (default 32 tokens)."""
    generator: str = DEFAULT_GENERATOR
    """Generator: 'smollm2-135m' (shipped) or a local model folder (default smollm2-135m)."""
    embedder: str = DEFAULT_EMBEDDER
    """Embedder: 'minilm-l6' (shipped) or a local model folder (default minilm-l6)."""
    device: str = opt("auto", choices=DEVICES)
    """Device: auto | cpu | cuda (default auto)."""

    def __post_init__(self):
        if self.vectors not in VECTORS:  # the wording users and tests know
            raise InputError(f"vectors must be auto, model or static, got {self.vectors!r}")
        check(self)
        if self.rank_bm25_queries > self.bm25s_queries:
            raise InputError(f"--rank-bm25-queries {self.rank_bm25_queries}: must be at most --bm25s-queries "
                             f"({self.bm25s_queries})")


# ---- the synthetic corpus -----------------------------------------------------------------------------------

def synthetic_corpus(n_docs: int, seed: int = 0, n_queries: int = 400) -> tuple[list[dict], list[str]]:
    """(documents, questions): corpora/synth.py's towns, and a seeded sample of n_queries of its questions."""
    import json
    import tempfile
    from pathlib import Path

    from corpora.synth import SynthConfig, generate

    with tempfile.TemporaryDirectory(prefix="ragft-bench-") as tmp:
        generate(SynthConfig(docs=n_docs, seed=seed, out=tmp, qa_every=max(1, n_docs * 6 // (20 * n_queries))))
        read = lambda name: [json.loads(line) for line in (Path(tmp) / name).read_text().splitlines()]  # noqa: E731
        docs, qa = read("docs.jsonl"), read("qa.jsonl")
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(qa), size=min(n_queries, len(qa)), replace=False)
    return docs, [qa[i]["question"] for i in picked]


# ---- dense vectors ------------------------------------------------------------------------------------------

def static_vectors(embedder, texts: list[str], mean: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(n, dim) L2-normalised means of the embedder's input token embeddings over each text's word pieces
    (special tokens left out), after subtracting `mean` (default: these texts' mean). -> (vectors, mean)."""
    import torch

    table = embedder[0].auto_model.get_input_embeddings().weight.detach().float().cpu()  # (vocab, dim)
    # Word pieces word by word, each distinct word tokenized once: the invented words split into many pieces,
    # and tokenizing 10,000 whole documents takes ~20 s on 2 cores; the corpus has only ~20,000 distinct words.
    split = [re.findall(r"\w+|[^\w\s]", t.lower()) for t in texts]  # MiniLM's tokenizer is uncased
    distinct = sorted({w for ws in split for w in ws})
    pieces = dict(zip(distinct, embedder.tokenizer(distinct, add_special_tokens=False)["input_ids"]))
    ids = [[p for w in ws for p in pieces[w]][: embedder.max_seq_length] for ws in split]
    ids = [i or [embedder.tokenizer.pad_token_id] for i in ids]  # an empty text pools the [PAD] row
    offsets = torch.tensor([0] + [len(i) for i in ids[:-1]]).cumsum(0)
    with torch.no_grad():
        vecs = torch.nn.functional.embedding_bag(torch.tensor([t for i in ids for t in i]), table, offsets,
                                                 mode="mean").numpy()
    mean = vecs.mean(axis=0) if mean is None else mean
    vecs = vecs - mean
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True) + 1e-12
    return np.ascontiguousarray(vecs, dtype=np.float32), mean


# ---- the benchmark ------------------------------------------------------------------------------------------

def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def run_bench(cfg: BenchConfig, echo=print) -> dict:
    """Run every part, print figures and ratios, return them as a dict."""
    import torch

    from corpora.errors import InputError
    from rag.index import build_dense, build_sparse, chunk_documents, chunk_view, embed
    from rag.models import load_embedder, pick_device
    from rag.query import query_tokens, tokenize
    from rag.rank import top_k_of

    if cfg.vectors not in VECTORS:
        raise InputError(f"vectors must be auto, model or static, got {cfg.vectors!r}")
    if cfg.docs < 100 or cfg.rank_bm25_queries > cfg.bm25s_queries or cfg.rank_bm25_queries < 1:
        raise InputError("need docs >= 100 and 1 <= rank_bm25_queries <= bm25s_queries")
    device = pick_device(cfg.device)
    res: dict = {"docs": cfg.docs, "device": device, "threads": torch.get_num_threads()}
    t_all = time.perf_counter()
    t = time.perf_counter()
    docs, queries = synthetic_corpus(cfg.docs, cfg.seed, max(cfg.bm25s_queries, cfg.dense_queries))
    views = [chunk_view({"title": d["title"], "text": d["text"]}) for d in docs]
    tokens = [tokenize(v) for v in views]
    qtok = [query_tokens(q) for q in queries]
    echo(f"corpus: {cfg.docs} synthetic documents (corpora/synth.py, seed {cfg.seed}), "
         f"{np.mean([len(x) for x in tokens]):.0f} tokens each on average; {len(queries)} of its questions as queries, "
         f"{np.mean([len(x) for x in qtok]):.1f} tokens each; {time.perf_counter() - t:.1f} s; device {device}, "
         f"{res['threads']} torch threads")

    # -- sparse: bm25s batched vs rank-bm25 per query
    t = time.perf_counter()
    bm25s_index = build_sparse(tokens, "bm25s")
    res["bm25s_build_s"] = time.perf_counter() - t
    t = time.perf_counter()
    rank_index = build_sparse(tokens, "rank-bm25")
    res["rank_bm25_build_s"] = time.perf_counter() - t
    nq, nr = cfg.bm25s_queries, cfg.rank_bm25_queries
    bm25s_index.retrieve(qtok[:2], k=10, show_progress=False)  # warm-up
    t = time.perf_counter()
    docs_s, _ = bm25s_index.retrieve(qtok[:nq], k=10, show_progress=False)
    res["bm25s_qps"] = rate(nq, time.perf_counter() - t)
    t = time.perf_counter()
    ref = [top_k_of(np.asarray(rank_index.get_scores(q)), 10) for q in qtok[:nr]]
    res["rank_bm25_qps"] = rate(nr, time.perf_counter() - t)
    # Identical up to ties: bm25s's 10 documents score (under rank-bm25) exactly the reference's top-10 scores,
    # rank by rank; documents with equal scores (same term counts and length) may come in either order.
    same = []
    for i in range(nr):
        ref_scores = np.array([sc for _, sc in ref[i]])
        ours = np.asarray(rank_index.get_scores(qtok[i]))[docs_s[i]]
        same.append(len(ours) == len(ref_scores) and np.allclose(ours, ref_scores, rtol=1e-5, atol=1e-6))
    same_list = [list(docs_s[i]) == [j for j, _ in ref[i]] for i in range(nr)]
    res["bm25_identical_top10"] = float(np.mean(same))
    res["bm25_identical_top10_strict"] = float(np.mean(same_list))
    res["bm25s_speedup"] = res["bm25s_qps"] / res["rank_bm25_qps"]
    # the same with stop words removed from the queries: fewer tokens, less work for rank-bm25
    qsw = [query_tokens(q, stop_words=True) for q in queries]
    t = time.perf_counter()
    bm25s_index.retrieve(qsw[:nq], k=10, show_progress=False)
    sw_bm25s = rate(nq, time.perf_counter() - t)
    t = time.perf_counter()
    for q in qsw[:nr]:
        top_k_of(np.asarray(rank_index.get_scores(q)), 10)
    res["bm25s_speedup_stop_words"] = sw_bm25s / rate(nr, time.perf_counter() - t)
    echo(f"\nsparse  build: bm25s {res['bm25s_build_s']:.2f} s, rank-bm25 {res['rank_bm25_build_s']:.2f} s")
    echo(f"sparse  bm25s     {res['bm25s_qps']:10.1f} queries/s  ({nq} queries, one batched retrieve)")
    echo(f"sparse  rank-bm25 {res['rank_bm25_qps']:10.1f} queries/s  ({nr} queries, get_scores each)")
    echo(f"sparse  ratio bm25s / rank-bm25 = {res['bm25s_speedup']:.1f}x   {mark(res['bm25s_speedup'] >= 50)} (target >= 50x)")
    echo(f"sparse  (stop words removed, {np.mean([len(x) for x in qsw]):.1f} tokens/query: ratio "
         f"{res['bm25s_speedup_stop_words']:.1f}x)")
    echo(f"sparse  identical top-10 {res['bm25_identical_top10']:.1%} of {nr} (up to the order of tied documents; "
         f"{res['bm25_identical_top10_strict']:.1%} in exactly the same order)   "
         f"{mark(res['bm25_identical_top10'] >= 0.99)} (target >= 99%)")

    # -- embedder: throughput of the full model on chunks of the default chunker
    t = time.perf_counter()
    embedder = load_embedder(cfg.embedder, device)
    res["embedder_load_s"] = time.perf_counter() - t
    sample = [chunk_view(c) for c in chunk_documents(docs[: cfg.embed_chunks], 500, 50)][: cfg.embed_chunks]
    embed(embedder, sample[:8])  # warm-up
    t = time.perf_counter()
    embed(embedder, sample)
    res["embed_chunks_per_s"] = rate(len(sample), time.perf_counter() - t)
    echo(f"\nembed   {res['embed_chunks_per_s']:.1f} chunks/s ({len(sample)} chunks of <= 500 characters, batch 64, "
         f"{cfg.embedder} on {device})")

    # -- index update: one changed document vs the full build, shipped corpus, same process and embedder
    if cfg.update:
        from corpora import load_corpus
        from rag.index import IndexConfig, build_index, update_index

        atl = load_corpus("atlantis")
        changed = [u for u in atl.updates if u["id"] == "atl-027"]  # new chief executive, fleet, capacity
        built = build_index(atl.docs, IndexConfig(device=device), embedder, progress=False)
        full = built.manifest["build_seconds"] - built.manifest["timings"]["load"]
        original = [d for d in atl.docs if d["id"] == "atl-027"]
        # three updates (new text, back to the old, new again): one ~1 s call is at the mercy of a busy CPU
        recs = [update_index(built, docs_, "update", embedder) for docs_ in (changed, original, changed)]
        rec = sorted(recs, key=lambda r: r["seconds"])[1]
        res.update(update_s=rec["seconds"], full_build_s=full, update_fraction=rec["seconds"] / full)
        echo(f"\nupdate  atlantis: full build {full:.2f} s ({built.manifest['n_chunks']} chunks), `index update` of "
             f"one changed document {rec['seconds']:.3f} s, median of 3 (-{rec['chunks_removed']} "
             f"+{rec['chunks_added']} chunks) = {res['update_fraction']:.1%}   {mark(res['update_fraction'] < 0.05)} "
             "(target < 5%; both without loading the embedder)")

    # -- dense: flat vs hnsw, one query per call
    kind = cfg.vectors if cfg.vectors != "auto" else ("model" if device == "cuda" else "static")
    t = time.perf_counter()
    ndq = cfg.dense_queries
    if kind == "model":
        vecs, qv = embed(embedder, views), embed(embedder, queries[:ndq])
    else:
        vecs, mean = static_vectors(embedder, views)
        qv, _ = static_vectors(embedder, queries[:ndq], mean)
    res["dense_vectors"], res["vectors_s"] = kind, time.perf_counter() - t
    t = time.perf_counter()
    flat = build_dense(vecs, "flat")
    res["flat_build_s"] = time.perf_counter() - t
    t = time.perf_counter()
    hnsw = build_dense(vecs, "hnsw", cfg.hnsw_m, cfg.ef_search)
    res["hnsw_build_s"] = time.perf_counter() - t
    found = {}
    import faiss

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # one query per call: threads only add overhead, and the same for both
    for name, ix in (("flat", flat), ("hnsw", hnsw)):
        ix.search(qv[:2], 10)  # warm-up
        t = time.perf_counter()
        found[name] = [ix.search(qv[i:i + 1], 10)[1][0] for i in range(ndq)]
        res[f"{name}_qps"] = rate(ndq, time.perf_counter() - t)
    sweep = {}
    for ef in (cfg.ef_search // 2, cfg.ef_search * 2):  # the speed / recall trade-off around the setting
        hnsw.hnsw.efSearch = max(ef, 10)
        t = time.perf_counter()
        got = [hnsw.search(qv[i:i + 1], 10)[1][0] for i in range(ndq)]
        sweep[max(ef, 10)] = (rate(ndq, time.perf_counter() - t),
                              float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, found["flat"])])))
    hnsw.hnsw.efSearch = cfg.ef_search
    faiss.omp_set_num_threads(threads)
    res["hnsw_recall@10"] = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found["hnsw"], found["flat"])]))
    res["hnsw_speedup"] = res["hnsw_qps"] / res["flat_qps"]
    echo(f"\ndense   vectors: {kind} ({vecs.shape[0]} x {vecs.shape[1]}, {res['vectors_s']:.1f} s); build flat "
         f"{res['flat_build_s']:.2f} s, hnsw (M={cfg.hnsw_m}) {res['hnsw_build_s']:.2f} s")
    echo(f"dense   flat {res['flat_qps']:10.1f} queries/s   hnsw (efSearch={cfg.ef_search}) {res['hnsw_qps']:10.1f} "
         f"queries/s   ratio hnsw / flat = {res['hnsw_speedup']:.2f}x  ({ndq} queries, one per call, 1 thread)")
    echo(f"dense   hnsw recall@10 vs flat = {res['hnsw_recall@10']:.3f}   {mark(res['hnsw_recall@10'] >= 0.95)} "
         "(target >= 0.95)")
    echo("dense   hnsw at other efSearch: " + ", ".join(f"{ef}: recall@10 {r:.3f}, {q:.0f} queries/s"
                                                    for ef, (q, r) in sweep.items()))

    # -- generation: batch 1 vs batch 8 on the same prompts
    if cfg.gen_prompts > 0:
        from rag.augment import build_messages
        from rag.generate import generate, load_generator

        gen = load_generator(cfg.generator, device=cfg.device)
        convs = [build_messages(q, None) for q in queries[: cfg.gen_prompts]]
        generate(gen, convs[:1], 2, 1)  # warm-up
        # Interleaved so both see the same share of a busy machine: batch 1 on the first half of the prompts,
        # batch 8 on all, batch 1 on the second half, batch 8 on all again.
        half = (len(convs) + 1) // 2
        plan = [(1, convs[:half]), (8, convs), (1, convs[half:]), (8, convs)]
        tok = {bs: {"tokens": 0, "seconds": 0.0, "prefill_s": 0.0, "decode_s": 0.0} for bs in (1, 8)}
        for bs, part in plan:
            if not part:
                continue
            t = time.perf_counter()
            outs = generate(gen, part, cfg.gen_tokens, bs, min_new_tokens=cfg.gen_tokens)
            tok[bs]["seconds"] += time.perf_counter() - t
            tok[bs]["tokens"] += sum(o["tokens_out"] for o in outs)
            calls = {(o["batch"], o["gen_seconds"]): o for o in outs}.values()  # one per generate() call
            tok[bs]["prefill_s"] += sum(o["prefill_seconds"] for o in calls)
            tok[bs]["decode_s"] += sum(o["decode_seconds"] for o in calls)
        for bs in (1, 8):
            tok[bs]["tps"] = rate(tok[bs]["tokens"], tok[bs]["seconds"])
            res[f"gen_tokens_per_s_batch{bs}"] = tok[bs]["tps"]
        res["gen_batch_speedup"] = tok[8]["tps"] / tok[1]["tps"]
        for bs in (1, 8):
            echo(f"{'' if bs == 8 else chr(10)}generate batch {bs}: {tok[bs]['tps']:7.1f} new tokens/s  "
                 f"({tok[bs]['tokens']} tokens in {tok[bs]['seconds']:.1f} s; prefill {tok[bs]['prefill_s']:.2f} s, "
                 f"decode {tok[bs]['decode_s']:.2f} s)")
        echo(f"generate ratio batch 8 / batch 1 = {res['gen_batch_speedup']:.2f}x   "
             f"{mark(res['gen_batch_speedup'] >= 3)} (target >= 3x; {cfg.gen_prompts} closed-book prompts, "
             f"{cfg.gen_tokens} new tokens each, {cfg.generator} on {gen.device})")
    res["total_s"] = time.perf_counter() - t_all
    echo(f"\ntotal {res['total_s']:.0f} s")
    return res


def mark(ok: bool) -> str:
    return "ok" if ok else "MISSED"

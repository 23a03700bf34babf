"""Several adapters (seed 000 §6.3.5): K clusters of the documents, one LoRA adapter per cluster, then either
merged into one adapter (peft's add_weighted_adapter, linear or ties) or routed per question by retrieval
(compare/route.py).

Clusters. Every document is embedded as "title\\ntext" by the dense-retrieval embedder (L2-normalised, so
inner product = cosine). FAISS k-means (spherical, seeded, KMEANS_NITER iterations) is fitted on the documents
that have train questions, the ones an adapter can learn facts from, so no cluster is left without training
data under the qa recipe; then every document, taught or not, goes to its nearest centroid: K clusters that
cover all documents. A train question goes with the cluster of each of its doc_ids (a multi-hop question whose
documents fall in two clusters is taught to both adapters); a question none of whose doc_ids is in the corpus
goes to the cluster whose centroid is nearest its own embedding (so abstention on that topic is taught once,
not to every adapter, which would multiply the "I don't know." examples by K).

Training. Each cluster's adapter is finetune/train.py's train() on the examples the cluster's documents and
train questions give (finetune/data.py: build_examples on that part of the corpus; RAFT distractors come from
the cluster's own documents), with the caller's FinetuneConfig (the run's recipe, epochs, steps, seed and
method: the recipe of the run's ft arm), saved to <folder>/cluster-<i>. <folder>/manifest.json records
cluster -> doc ids -> train question ids -> adapter, and the settings; train_multi reuses the folder when its
settings match and every adapter is there.

Merging (merge_adapters): peft 0.21's add_weighted_adapter on the K adapters. combination_type "linear" sums
the A matrices and the B matrices separately, each weighted by sqrt(w * alpha/r) (peft/tuners/lora/model.py:
_generalized_task_arithmetic_weighted_adapter), with w = 1/K: the merged delta is (1/K)(sum B_i s)(sum A_j),
cross terms included (peft calls linear "a very rough approximation"); since every cluster adapter starts from
the same seeded A, this is close to the sum of the K deltas. "ties" (Yadav et al. 2023, TIES-Merging) keeps the
TIES_DENSITY largest-magnitude entries of each A and B, elects a sign per entry and averages the entries that
agree, with w = 1 (the paper's lambda = 1). The merged adapter has rank r and alpha r (scaling 1).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from corpora.errors import InputError

KMEANS_NITER = 10  # k-means iterations: a few dozen documents converge in a handful
TIES_DENSITY = 0.5  # ties: share of each LoRA matrix's entries kept (largest magnitudes); TIES' paper used 0.2 on full deltas
MERGES = ("linear", "ties")  # peft combination_type values merge_adapters takes
MANIFEST = "manifest.json"


# ---- clusters: pure functions of embeddings, the FAISS call in one place --------------------------------------

def kmeans(x: np.ndarray, k: int, seed: int, niter: int = KMEANS_NITER) -> np.ndarray:
    """Centroids (k, dim) of FAISS spherical k-means over the rows of x (n, dim) float32, n >= k; seeded."""
    import faiss

    km = faiss.Kmeans(x.shape[1], k, niter=niter, seed=seed, spherical=True, verbose=False,
                      min_points_per_centroid=1, max_points_per_centroid=1 << 20)  # tiny n: no sampling, no warning
    km.train(np.ascontiguousarray(x, dtype=np.float32))
    return np.asarray(km.centroids, dtype=np.float32).reshape(k, -1)


def nearest(x: np.ndarray, centroids: np.ndarray) -> list[int]:
    """Index of the centroid with the largest inner product for each row of x (n, dim) -> n cluster ids."""
    if len(x) == 0:
        return []
    return [int(i) for i in np.argmax(x @ centroids.T, axis=1)]


def question_clusters(questions: list[dict], doc_cluster: dict[str, int],
                      fallback: dict[str, int]) -> dict[str, list[int]]:
    """qid -> the sorted distinct clusters of its doc_ids in doc_cluster; a question with none of its doc_ids
    there -> [fallback[qid]] (the cluster nearest its own embedding)."""
    out = {}
    for q in questions:
        cs = sorted({doc_cluster[d] for d in q["doc_ids"] if d in doc_cluster})
        out[q["id"]] = cs or [fallback[q["id"]]]
    return out


def doc_text(d: dict) -> str:
    return f"{d['title']}\n{d['text']}"


def cluster_corpus(corpus, k: int, embedder: str = "minilm-l6", seed: int = 0, device: str = "auto") -> dict:
    """The clustering of corpus's documents and train questions -> {"doc_cluster": {doc_id: c},
    "question_clusters": {qid: [c, ...]}, "centroids": (k, dim) array}. InputError when fewer than k documents
    have train questions (k-means would leave a cluster with nothing to learn)."""
    from rag.index import embed
    from rag.models import load_embedder

    train = corpus.questions("train")
    ids = {d["id"] for d in corpus.docs}
    taught = [d for d in corpus.docs if any(d["id"] in q["doc_ids"] for q in train)]
    if len(taught) < k:
        raise InputError(f"--clusters {k}: corpus {corpus.name!r} has only {len(taught)} documents with train "
                         f"questions; use --clusters {max(1, len(taught))} or fewer")
    model = load_embedder(embedder, device)
    vecs = embed(model, [doc_text(d) for d in corpus.docs])  # (n_docs, dim), L2-normalised
    row = {d["id"]: i for i, d in enumerate(corpus.docs)}
    centroids = kmeans(vecs[[row[d["id"]] for d in taught]], k, seed)
    doc_cluster = dict(zip((d["id"] for d in corpus.docs), nearest(vecs, centroids)))
    orphans = [q for q in train if not ids & set(q["doc_ids"])]
    fallback = dict(zip((q["id"] for q in orphans), nearest(embed(model, [q["question"] for q in orphans]), centroids)
                        if orphans else []))
    return {"doc_cluster": doc_cluster, "question_clusters": question_clusters(train, doc_cluster, fallback),
            "centroids": centroids}


def cluster_part(corpus, cluster: int, plan: dict):
    """The part of corpus one cluster's adapter learns from: its documents and the train questions taught to it."""
    docs = [d for d in corpus.docs if plan["doc_cluster"][d["id"]] == cluster]
    qa = [q for q in corpus.questions("train") if cluster in plan["question_clusters"][q["id"]]]
    return replace(corpus, docs=docs, qa=qa, updates=[], qa_updates=[])


# ---- K adapters -----------------------------------------------------------------------------------------------

def settings_of(ft, k: int, embedder: str, docs_hash: str) -> dict:
    """What the K adapters depend on: the fine-tuning config (less its output folder), K, embedder, documents."""
    return {**{n: v for n, v in asdict(ft).items() if n not in ("out", "resume", "save_every", "device")},
            "clusters": k, "embedder": embedder, "docs_sha": docs_hash, "kmeans_niter": KMEANS_NITER}


def read_manifest(folder: Path) -> dict | None:
    try:
        return json.loads((Path(folder) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def train_multi(ft, k: int, folder: Path, embedder: str = "minilm-l6", progress: bool = True) -> dict:
    """K adapters, one per cluster, into folder/cluster-<i> -> the manifest (also folder/manifest.json):
    {"settings", "clusters": [{"cluster", "doc_ids", "train_qids", "adapter", "examples", "train_seconds",
    "trained_tokens", "steps", "final_loss", ...}], "doc_cluster"}. Reused when the manifest's settings match
    and every adapter's weights are there. ft: the FinetuneConfig each adapter is trained with (its out ignored)."""
    from transformers import AutoTokenizer

    from corpora import load_corpus
    from corpora.files import write_atomic
    from finetune.data import build_examples, heldout_examples
    from finetune.train import parse_recipes, train
    from rag.index import corpus_hash
    from rag.models import resolve_generator

    folder = Path(folder)
    corpus = load_corpus(ft.corpus)
    settings = settings_of(ft, k, embedder, corpus_hash(corpus.docs))
    old = read_manifest(folder)
    if old and old.get("settings") == settings and all(
            (folder / c["adapter"] / "adapter_model.safetensors").is_file() for c in old.get("clusters", [])):
        if progress:
            print(f"finetune: reusing the {k} cluster adapters in {folder}", file=sys.stderr)
        return old
    plan = cluster_corpus(corpus, k, embedder, ft.seed, ft.device)
    recipes = parse_recipes(ft.data)
    tok = AutoTokenizer.from_pretrained(resolve_generator(ft.generator))  # the docs recipe counts tokens
    folder.mkdir(parents=True, exist_ok=True)
    clusters = []
    for c in range(k):
        part = cluster_part(corpus, c, plan)
        examples = build_examples(part, recipes, tok, abstain=ft.abstain, paraphrases_n=ft.paraphrases,
                                  raft_distractors=ft.raft_distractors, raft_p_no_gold=ft.raft_p_no_gold,
                                  doc_chunk_tokens=ft.doc_chunk_tokens, seed=ft.seed)
        if not examples:
            raise InputError(f"--clusters {k}: cluster {c} ({len(part.docs)} documents) gives no training examples "
                             f"from recipe {ft.data!r}; use fewer clusters")
        held = heldout_examples(part, ft.eval_size, ft.abstain, ft.seed) if ft.eval_size > 0 else []
        if progress:
            print(f"finetune: cluster {c + 1}/{k}: {len(part.docs)} documents, {len(part.qa)} train questions, "
                  f"{len(examples)} examples", file=sys.stderr)
        cost = train(replace(ft, out=str(folder / f"cluster-{c}")), examples=examples, eval_examples=held,
                     progress=progress)
        clusters.append({"cluster": c, "doc_ids": [d["id"] for d in part.docs], "train_qids": [q["id"] for q in part.qa],
                         "adapter": f"cluster-{c}", "examples": len(examples),
                         **{f: cost.get(f) for f in ("train_seconds", "trained_tokens", "steps", "final_loss",
                                                     "device", "peak_memory_bytes", "tokens_per_second")}})
    manifest = {"settings": settings, "clusters": clusters, "doc_cluster": plan["doc_cluster"],
                "question_clusters": plan["question_clusters"]}
    write_atomic(folder / MANIFEST, json.dumps(manifest, indent=2))
    return manifest


def total_cost(manifest: dict) -> dict:
    """The K adapters' training cost summed (seconds, tokens, steps), peak memory the largest: what an arm using
    them paid once."""
    cs = manifest["clusters"]
    seconds = sum(float(c.get("train_seconds") or 0.0) for c in cs)
    tokens = sum(int(c.get("trained_tokens") or 0) for c in cs)
    return {"train_seconds": round(seconds, 3), "trained_tokens": tokens, "steps": sum(int(c.get("steps") or 0) for c in cs),
            "device": cs[0].get("device") if cs else None,
            "peak_memory_bytes": max((int(c.get("peak_memory_bytes") or 0) for c in cs), default=0),
            "final_loss": None, "tokens_per_second": round(tokens / max(seconds, 1e-9), 1)}


# ---- merging --------------------------------------------------------------------------------------------------

def merge_weights(how: str, k: int) -> list[float]:
    """add_weighted_adapter's weights: linear 1/K each (see the module docstring), ties 1 each."""
    if how == "linear":
        return [1.0 / k] * k
    if how == "ties":
        return [1.0] * k
    raise ValueError(f"unknown merge {how!r}: choose from {', '.join(MERGES)}")


def merged_model(model, adapters: list[str], how: str, density: float = TIES_DENSITY):
    """peft model over `model` with the K adapters loaded as cluster-<i> and their merge as "default" (active)."""
    from peft import PeftModel

    names = [f"cluster-{i}" for i in range(len(adapters))]
    pm = PeftModel.from_pretrained(model, str(adapters[0]), adapter_name=names[0])
    for n, a in zip(names[1:], adapters[1:]):
        pm.load_adapter(str(a), adapter_name=n)
    pm.add_weighted_adapter(names, merge_weights(how, len(adapters)), "default", combination_type=how,
                            density=density if how == "ties" else None)
    pm.set_adapter("default")
    return pm


def merge_adapters(manifest: dict, folder: Path, generator: str, how: str, out: Path, progress: bool = True) -> dict:
    """The manifest's K adapters (under folder) merged by `how` (linear | ties) into the peft adapter `out` ->
    its cost record (the K adapters' training summed, plus merge_seconds), also out/cost.json. Reused when
    out/cost.json names the same source weights and merge."""
    from corpora.files import file_sha, temp_dir_beside
    from corpora.outputs import prepare_out, replace_dir, write_marker
    from rag.models import load_causal_lm

    paths = [Path(folder) / c["adapter"] for c in manifest["clusters"]]
    source = {"merge": how, "weights": merge_weights(how, len(paths)), "density": TIES_DENSITY if how == "ties" else None,
              "sources": [file_sha(p / "adapter_model.safetensors") for p in paths]}
    out = Path(out)
    try:
        old = json.loads((out / "cost.json").read_text())
        if old.get("merged_from") == source and (out / "adapter_model.safetensors").is_file():
            return {**old, "adapter": str(out)}
    except (OSError, ValueError):
        pass
    prepare_out(out, "adapter")
    t0 = time.perf_counter()
    model, _ = load_causal_lm(generator, "cpu")  # a few matrix sums per layer: CPU is enough
    pm = merged_model(model, paths, how)
    for i in range(len(paths)):
        pm.delete_adapter(f"cluster-{i}")  # so only the merge is saved
    record = {**total_cost(manifest), "method": f"multi-{how}", "config": manifest["settings"],
              "clusters": len(paths), "merged_from": source}
    with temp_dir_beside(out) as tmp:
        pm.save_pretrained(str(tmp))
        record["merge_seconds"] = round(time.perf_counter() - t0, 3)
        (tmp / "cost.json").write_text(json.dumps(record, indent=2))
        write_marker(tmp, "adapter")
        replace_dir(tmp, out)
    if progress:
        print(f"finetune: merged {len(paths)} cluster adapters ({how}) into {out}", file=sys.stderr)
    return {**record, "adapter": str(out)}

"""Step 1 in depth: chunkers, FAISS flat/hnsw, bm25s/rank-bm25, add/update without a rebuild, manifest reuse."""

import json

import numpy as np
import pytest

from tests.conftest import TINY_DOCS
from corpora.errors import InputError
from rag.index import (IndexConfig, all_vectors, build_index, chunk_documents, corpus_hash, default_index_dir,
                       load_index, open_or_build, sparse_scores, update_index)
from rag.query import tokenize
from rag.rank import retrieve

MORE_DOCS = [
    {"id": "d4", "title": "Brask Lighthouse", "text": "The Brask lighthouse stands on the northern cape. " * 6
     + "Its keeper in 2024 was Hale Morrow, who rang the fog bell."},
    {"id": "d5", "title": "Velmar Ferries", "text": "Velmar Ferries sails from Port Ilmaren to Brask twice a day. "
     "The ferry Gullwing carries 300 passengers. Tickets cost 12 drells."},
]
DOCS = TINY_DOCS + MORE_DOCS
CHANGED = {"id": "d2", "title": "Saltglass Guild", "text": "The Saltglass Guild makes green glass from kelp ash. "
           "Its guildmaster since 2025 is Mirela Soane."}
NEW = {"id": "d6", "title": "Hollowmere Cliffs", "text": "The Hollowmere cliffs rise 140 metres above the sea."}
SMALL = {"chunk_size": 120, "overlap": 20}


@pytest.fixture(scope="module")
def embedder():
    from rag.models import load_embedder

    return load_embedder("minilm-l6", "cpu")


def updated_docs():
    return [CHANGED if d["id"] == "d2" else d for d in DOCS] + [NEW]


@pytest.mark.parametrize("chunker", ["recursive", "token", "markdown"])
def test_chunkers_keep_doc_id_title_and_exact_span(chunker, smollm2_path):
    from transformers import AutoTokenizer

    md = {"id": "m1", "title": "Guide", "text": "# Guide\n\nIntro   line about the isles.\n\n## Ferries\nThe ferry "
          "Gullwing sails daily.\n  Tickets cost 12 drells.\n\n## Food\n\n" + "Saltfish stew is served hot. " * 12}
    docs = DOCS + [md]
    tok = AutoTokenizer.from_pretrained(smollm2_path) if chunker == "token" else None
    size = 30 if chunker == "token" else 120
    chunks = chunk_documents(docs, size, 5, chunker, tok)
    assert [c["chunk_id"] for c in chunks] == list(range(len(chunks)))
    by_id = {d["id"]: d for d in docs}
    for c in chunks:
        d = by_id[c["doc_id"]]
        assert c["title"] == d["title"] and d["text"][c["start"]:c["end"]] == c["text"] and c["text"].strip()
        if chunker == "token":
            # langchain sums the token counts of the pieces it merges; re-tokenised whole, a chunk that starts
            # mid-sentence ("lighthouse" without its leading space) can come out a token or two longer
            assert len(tok.tokenize(c["text"])) <= size + 2
        else:
            assert len(c["text"]) <= size
    assert {c["doc_id"] for c in chunks} == set(by_id)
    if chunker == "markdown":
        sections = [c["section"] for c in chunks if c["doc_id"] == "m1"]
        assert sections[0] == "Guide" and "Guide > Ferries" in sections and sections[-1] == "Guide > Food"
        # a chunk never straddles two sections
        ferries = [c for c in chunks if c["doc_id"] == "m1" and c["section"] == "Guide > Ferries"]
        assert all("Saltfish" not in c["text"] for c in ferries)


@pytest.mark.model  # MiniLM embedder
def test_hnsw_and_rank_bm25_round_trip_without_pickle(tmp_path, embedder):
    cfg = IndexConfig(corpus="tiny", dense="hnsw", hnsw_m=8, ef_search=16, sparse="rank-bm25", **SMALL)
    idx = build_index(DOCS, cfg, embedder, progress=False)
    idx.save(tmp_path / "idx")
    files = {p.name for p in (tmp_path / "idx").rglob("*")}
    assert "tokens.jsonl" in files and "bm25" not in files and not any(f.endswith((".pkl", ".pickle")) for f in files)
    loaded = load_index(tmp_path / "idx", ef_search=32)
    assert type(loaded.bm25).__name__ == "BM25Okapi" and loaded.faiss.hnsw.efSearch == 32
    assert loaded.faiss.hnsw.efConstruction == 128 and loaded.manifest["config"]["dense"] == "hnsw"
    q = tokenize("who keeps the brask lighthouse")
    np.testing.assert_allclose(sparse_scores(loaded.bm25, q, len(loaded.chunks)),
                               sparse_scores(idx.bm25, q, len(idx.chunks)), rtol=1e-6)
    loaded._embedder = embedder
    for retriever in ("bm25", "dense", "hybrid"):
        hits = retrieve(loaded, "Who kept the Brask lighthouse in 2024?", retriever, 3)
        assert loaded.chunks[hits[0][0]]["doc_id"] == "d4", retriever
    # hnsw finds what the exact index finds on this small set
    flat = build_index(DOCS, IndexConfig(corpus="tiny", **SMALL), embedder, progress=False)
    assert [i for i, _ in retrieve(loaded, "ferry tickets", "dense", 3)] == [i for i, _ in retrieve(flat, "ferry tickets", "dense", 3)]


@pytest.mark.model  # MiniLM embedder
def test_rank_bm25_and_bm25s_rank_alike(embedder):
    a = build_index(DOCS, IndexConfig(corpus="tiny", **SMALL), embedder, progress=False)
    b = build_index(DOCS, IndexConfig(corpus="tiny", sparse="rank-bm25", **SMALL), embedder, progress=False)
    assert sum("the" in tokenize(c["text"]) for c in a.chunks) > len(a.chunks) / 2  # idf < 0: floored at 0 in both
    for q in ["saltglass guild guildmaster", "ferry tickets drells", "the lantern festival in autumn"]:
        # the same function on bm25s's scale (rank-bm25 with epsilon=0)
        np.testing.assert_allclose(sparse_scores(a.bm25, tokenize(q), len(a.chunks)),
                                   sparse_scores(b.bm25, tokenize(q), len(b.chunks)), rtol=1e-5)


def chunk_map(index):
    """(doc_id, start, text) -> chunk position."""
    return {(c["doc_id"], c["start"], c["text"]): i for i, c in enumerate(index.chunks)}


@pytest.mark.model  # MiniLM embedder
@pytest.mark.parametrize("dense,sparse", [("flat", "bm25s"), ("hnsw", "rank-bm25")])
def test_update_equals_a_fresh_build_of_the_updated_corpus(tmp_path, embedder, dense, sparse):
    cfg = IndexConfig(corpus="tiny", out=str(tmp_path / "idx"), dense=dense, sparse=sparse, **SMALL)
    idx = build_index(DOCS, cfg, embedder, progress=False)
    n_d2 = sum(c["doc_id"] == "d2" for c in idx.chunks)
    before = {k: all_vectors(idx.faiss)[i] for k, i in chunk_map(idx).items() if k[0] != "d2"}
    rec = update_index(idx, [CHANGED, NEW, DOCS[0]])  # DOCS[0] is unchanged: skipped
    assert rec["replaced"] == ["d2"] and rec["added"] == ["d6"] and rec["unchanged"] == 1
    assert rec["chunks_removed"] == n_d2 and rec["chunks_added"] == len(chunk_documents([CHANGED, NEW], **SMALL))
    assert [c["chunk_id"] for c in idx.chunks] == list(range(len(idx.chunks))) == list(range(idx.faiss.ntotal))
    assert not any("blue glass" in c["text"] for c in idx.chunks)

    fresh = build_index(updated_docs(), cfg, embedder, progress=False)
    a, b = chunk_map(idx), chunk_map(fresh)
    assert set(a) == set(b)
    order = [a[k] for k in b]  # updated-index position of each fresh chunk
    va, vb = all_vectors(idx.faiss), all_vectors(fresh.faiss)
    np.testing.assert_allclose(va[order], vb, atol=1e-5)
    for k, v in before.items():  # kept chunks were not re-embedded: their vectors are the very same
        np.testing.assert_array_equal(va[a[k]], v)
    for q in ["guildmaster of the saltglass guild", "hollowmere cliffs metres", "ferry"]:
        np.testing.assert_allclose(sparse_scores(idx.bm25, tokenize(q), len(idx.chunks))[order],
                                   sparse_scores(fresh.bm25, tokenize(q), len(fresh.chunks)), rtol=1e-5)
    hits = retrieve(idx, "Who is the guildmaster of the Saltglass Guild?", "hybrid", 2)
    assert idx.chunks[hits[0][0]]["doc_id"] == "d2" and "Mirela Soane" in idx.chunks[hits[0][0]]["text"]

    # manifest: the updated index is the index of the updated corpus, and still traces back to its source
    m = idx.manifest
    assert m["corpus_hash"] == corpus_hash(updated_docs()) == fresh.manifest["corpus_hash"]
    assert m["source_hash"] == corpus_hash(DOCS) and m["n_docs"] == 6 and m["n_chunks"] == len(idx.chunks)
    idx.save(cfg.out)
    reused = open_or_build(updated_docs(), cfg, embedder, progress=False)
    assert reused.manifest["updates"] and len(reused.chunks) == len(idx.chunks)  # reused, not rebuilt
    assert open_or_build(DOCS, cfg, embedder, progress=False).manifest["updates"] == []  # rebuilt from DOCS
    idx.save(cfg.out)
    assert open_or_build(DOCS, cfg, embedder, progress=False, allow_updated=True).manifest["updates"]


@pytest.mark.model  # MiniLM embedder
def test_add_refuses_known_ids_and_manifest_reuse(tmp_path, embedder):
    cfg = IndexConfig(corpus="tiny", out=str(tmp_path / "idx"), **SMALL)
    idx = build_index(DOCS, cfg, embedder, progress=False)
    with pytest.raises(InputError, match="already in the index"):
        update_index(idx, [CHANGED], mode="add")
    rec = update_index(idx, [NEW], mode="add")
    assert rec["added"] == ["d6"] and rec["chunks_removed"] == 0
    assert idx.manifest["corpus_hash"] == corpus_hash(DOCS + [NEW])
    idx.save(cfg.out)
    # search-time settings do not force a rebuild; build settings do
    same = open_or_build(DOCS + [NEW], IndexConfig(**{**vars(cfg), "ef_search": 99, "device": "cpu"}), embedder)
    assert same.manifest["updates"]
    assert not open_or_build(DOCS + [NEW], IndexConfig(**{**vars(cfg), "overlap": 10}), embedder,
                             progress=False).manifest["updates"]
    saved = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert saved["config"]["overlap"] == 10 and set(saved["timings"]) == {"load", "chunk", "sparse", "embed", "dense"}


def test_variant_indexes_get_their_own_default_directory():
    assert default_index_dir("atlantis") == default_index_dir("atlantis", IndexConfig())
    assert str(default_index_dir("atlantis", IndexConfig())).endswith("index-atlantis")
    hnsw = default_index_dir("atlantis", IndexConfig(dense="hnsw"))
    assert hnsw != default_index_dir("atlantis") and hnsw == default_index_dir("atlantis", IndexConfig(dense="hnsw", ef_search=5))
    with pytest.raises(InputError, match="unknown chunker"):
        open_or_build(DOCS, IndexConfig(chunker="sentences"))


@pytest.mark.model  # MiniLM embedder
@pytest.mark.parametrize("damage", ["manifest.json", "chunks.jsonl", "dense.faiss"])
def test_damaged_index_is_one_clean_error_and_open_or_build_rebuilds_it(tmp_path, embedder, damage):
    cfg = IndexConfig(corpus="tiny", out=str(tmp_path / "idx"), **SMALL)
    build_index(DOCS, cfg, embedder, progress=False).save(cfg.out)
    f = tmp_path / "idx" / damage
    f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2] + b"\xff")  # a torn, non-UTF-8 tail
    with pytest.raises(InputError, match=r"idx: index is damaged .*rebuild it with `ragft index`"):
        load_index(cfg.out)
    rebuilt = open_or_build(DOCS, cfg, embedder, progress=False)
    assert rebuilt.manifest["corpus_hash"] == corpus_hash(DOCS)
    assert load_index(cfg.out).manifest["n_chunks"] == rebuilt.manifest["n_chunks"]


def test_index_folder_names_stay_what_they_were_and_options_are_checked_when_made():
    """The hash of non-default build options names an index folder: the same options must give the same folder
    as before the configs shared their fields (these names were computed on the code before that change), also
    through a config that inherits IndexConfig's fields (retrieval-eval)."""
    from rag.evaluate import RetrievalEvalConfig

    before = {"": "index-atlantis", "dense=hnsw": "index-atlantis-1a80932d", "chunker=token": "index-atlantis-4247d780",
              "chunker=markdown,chunk_size=300,overlap=0": "index-atlantis-8802cc9f",
              "sparse=rank-bm25,hnsw_m=16": "index-atlantis-bf7061a1", "ef_search=5,device=cpu": "index-atlantis",
              "embedder=/x/y": "index-atlantis-0f9f38e0", "chunker=token,generator=g": "index-atlantis-c421d1a4"}
    for spec, name in before.items():
        kw = {k: int(v) if v.isdigit() else v for k, v in (p.split("=") for p in spec.split(",") if p)}
        assert default_index_dir("atlantis", IndexConfig(**kw)).name == name, spec
        assert default_index_dir("atlantis", RetrievalEvalConfig(out="x", **kw).index_config()).name == name, spec
    assert [f for f in vars(IndexConfig())] == ["corpus", "out", "chunker", "chunk_size", "overlap", "dense", "hnsw_m",
                                                "ef_search", "sparse", "embedder", "generator", "device"]
    for bad, message in ((dict(chunk_size=0), "--chunk-size 0: must be at least 1"),
                         (dict(overlap=500), "--overlap 500: need overlap < chunk_size"),
                         (dict(hnsw_m=1), "--hnsw-m 1: must be at least 2"),
                         (dict(device="tpu"), "--device 'tpu': must be one of auto, cpu, cuda"),
                         (dict(dense="ivf"), "unknown dense 'ivf'")):
        with pytest.raises(InputError, match=message):
            IndexConfig(**bad)

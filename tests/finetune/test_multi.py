"""Several adapters (finetune/multi.py, compare/route.py): seeded clusters that cover every document, K adapters
trained and saved, peft's merge checked against the LoRA matrices by hand, and a routed arm that answers each
question with the adapter of its top retrieved chunk's cluster. The tiny random model (tests/conftest.py) is
the generator; the clustering and the index use the real MiniLM embedder (hence the model marker)."""

import json
import math

import numpy as np
import pytest
import torch

from tests.conftest import write_jsonl
from finetune.multi import (cluster_corpus, kmeans, merge_adapters, merge_weights, merged_model, nearest,
                            question_clusters, train_multi)

DOCS = [
    {"id": "g1", "title": "Saltglass Guild", "text": "The Saltglass Guild makes blue glass from sea salt. Its guildmaster is Oren Tasque."},
    {"id": "g2", "title": "Glass furnaces", "text": "The glass furnaces of the Saltglass Guild burn driftwood. Glassblower Mira Holt runs them."},
    {"id": "f1", "title": "Lantern Festival", "text": "The Lantern Festival of Brask is held every autumn on the cliffs of Hollowmere."},
    {"id": "f2", "title": "Festival music", "text": "At the Lantern Festival the drummers of Brask play until dawn, led by Tam Riven."},
]
QA = [
    {"id": "q1", "question": "Who is the guildmaster of the Saltglass Guild?", "answers": ["Oren Tasque"], "doc_ids": ["g1"], "kind": "fact", "split": "train"},
    {"id": "q2", "question": "Who runs the glass furnaces?", "answers": ["Mira Holt"], "doc_ids": ["g2"], "kind": "fact", "split": "train"},
    {"id": "q3", "question": "When is the Lantern Festival held?", "answers": ["every autumn"], "doc_ids": ["f1"], "kind": "fact", "split": "train"},
    {"id": "q4", "question": "Who leads the festival drummers?", "answers": ["Tam Riven"], "doc_ids": ["f2"], "kind": "fact", "split": "train"},
    {"id": "q5", "question": "How old is the moon of Brask?", "answers": [], "doc_ids": [], "kind": "unanswerable", "split": "train"},
    {"id": "t1", "question": "What does the Saltglass Guild make?", "answers": ["blue glass"], "doc_ids": ["g1"], "kind": "fact", "split": "test"},
    {"id": "t2", "question": "Where is the Lantern Festival held?", "answers": ["Hollowmere"], "doc_ids": ["f1"], "kind": "fact", "split": "test"},
    {"id": "t3", "question": "What do the drummers play until?", "answers": ["dawn"], "doc_ids": ["f2"], "kind": "fact", "split": "test"},
    {"id": "t4", "question": "What wood do the furnaces burn?", "answers": ["driftwood"], "doc_ids": ["g2"], "kind": "fact", "split": "test"},
]


def blobs(seed=0):
    """(12, 8) L2-normalised points around 3 well-separated directions, 4 each."""
    rng = np.random.default_rng(seed)
    centres = np.eye(8, dtype=np.float32)[:3] * 10
    x = np.concatenate([c + rng.normal(0, 0.5, (4, 8)) for c in centres]).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_kmeans_is_seeded_and_covers_every_point():
    x = blobs()
    a, b = kmeans(x, 3, seed=7), kmeans(x, 3, seed=7)
    assert np.array_equal(a, b)  # same seed, same centroids
    labels = nearest(x, a)
    assert len(labels) == len(x) and set(labels) == {0, 1, 2}
    # the three blobs are recovered: points of one blob share a label, different blobs differ
    groups = [set(labels[i:i + 4]) for i in (0, 4, 8)]
    assert all(len(g) == 1 for g in groups) and len(set.union(*groups)) == 3


def test_questions_follow_their_documents_and_orphans_their_nearest_cluster():
    qs = [{"id": "a", "doc_ids": ["d1"]}, {"id": "b", "doc_ids": ["d2", "d1"]}, {"id": "c", "doc_ids": []},
          {"id": "d", "doc_ids": ["gone"]}]
    got = question_clusters(qs, {"d1": 1, "d2": 0}, {"c": 2, "d": 0})
    assert got == {"a": [1], "b": [0, 1], "c": [2], "d": [0]}


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("multi-corpus")
    write_jsonl(d / "docs.jsonl", DOCS)
    write_jsonl(d / "qa.jsonl", QA)
    return d


@pytest.fixture(scope="module")
def trained(tmp_path_factory, corpus_dir, tiny_model_dir):
    from finetune.train import FinetuneConfig

    folder = tmp_path_factory.mktemp("run") / "adapter-multi-k2"
    ft = FinetuneConfig(corpus=str(corpus_dir), out=str(folder), generator=str(tiny_model_dir), data="qa",
                        max_steps=2, batch_size=4, eval_size=0, rank=4, alpha=8, device="cpu", seed=0)
    return ft, folder, train_multi(ft, 2, folder, "minilm-l6", progress=False)


@pytest.mark.model
def test_clusters_are_seeded_and_cover_every_document(corpus_dir):
    from corpora import load_corpus

    corpus = load_corpus(str(corpus_dir))
    a = cluster_corpus(corpus, 2, "minilm-l6", seed=0, device="cpu")
    b = cluster_corpus(corpus, 2, "minilm-l6", seed=0, device="cpu")
    assert a["doc_cluster"] == b["doc_cluster"]
    assert set(a["doc_cluster"]) == {d["id"] for d in DOCS} and set(a["doc_cluster"].values()) == {0, 1}
    train = [q for q in QA if q["split"] == "train"]
    assert set(a["question_clusters"]) == {q["id"] for q in train}
    for q in train:
        if q["doc_ids"]:
            assert a["question_clusters"][q["id"]] == sorted({a["doc_cluster"][d] for d in q["doc_ids"]})
        else:  # the unanswerable question without a document: one cluster, its nearest
            assert len(a["question_clusters"][q["id"]]) == 1


def test_k_adapters_are_trained_saved_and_reused(trained):
    ft, folder, manifest = trained
    assert [c["cluster"] for c in manifest["clusters"]] == [0, 1]
    assert sorted(d for c in manifest["clusters"] for d in c["doc_ids"]) == sorted(d["id"] for d in DOCS)
    for c in manifest["clusters"]:
        ad = folder / c["adapter"]
        assert (ad / "adapter_model.safetensors").is_file() and (ad / "adapter_config.json").is_file()
        assert c["steps"] == 2 and c["examples"] == len(c["train_qids"]) >= 1
        assert all(manifest["doc_cluster"][d] == c["cluster"] for d in c["doc_ids"])
    assert json.loads((folder / "manifest.json").read_text()) == manifest
    mtime = (folder / "cluster-0" / "adapter_model.safetensors").stat().st_mtime_ns
    again = train_multi(ft, 2, folder, "minilm-l6", progress=False)  # same settings: reused, not retrained
    assert again == manifest and (folder / "cluster-0" / "adapter_model.safetensors").stat().st_mtime_ns == mtime


def lora_layer(pm):
    """The first LoRA-wrapped module of a peft model."""
    from peft.tuners.lora import LoraLayer

    return next(m for m in pm.modules() if isinstance(m, LoraLayer))


def test_linear_merge_is_the_weighted_sum_of_the_lora_matrices(trained, tiny_model_dir, tmp_path):
    from rag.generate import attach_adapter
    from rag.models import load_causal_lm

    _, folder, manifest = trained
    paths = [folder / c["adapter"] for c in manifest["clusters"]]
    model, _ = load_causal_lm(str(tiny_model_dir), "cpu")
    pm = merged_model(model, paths, "linear")
    layer = lora_layer(pm)
    w = merge_weights("linear", 2)
    assert w == [0.5, 0.5]
    s = [layer.scaling[f"cluster-{i}"] for i in range(2)]
    A = [layer.lora_A[f"cluster-{i}"].weight.detach() for i in range(2)]
    B = [layer.lora_B[f"cluster-{i}"].weight.detach() for i in range(2)]
    want_A = sum(math.sqrt(w[i] * s[i]) * A[i] for i in range(2))
    want_B = sum(math.sqrt(w[i] * s[i]) * B[i] for i in range(2))
    torch.testing.assert_close(layer.lora_A["default"].weight.detach(), want_A)
    torch.testing.assert_close(layer.lora_B["default"].weight.detach(), want_B)
    assert layer.scaling["default"] == 1.0  # rank r, alpha r
    torch.testing.assert_close(layer.get_delta_weight("default"), want_B @ want_A)  # the delta, by hand
    # saved as one adapter: reloaded by peft, its delta is the same
    rec = merge_adapters(manifest, folder, str(tiny_model_dir), "linear", tmp_path / "merged-linear", progress=False)
    base, _ = load_causal_lm(str(tiny_model_dir), "cpu")
    loaded = attach_adapter(base, rec["adapter"])
    assert list(loaded.peft_config) == ["default"]
    torch.testing.assert_close(lora_layer(loaded).get_delta_weight("default"), want_B @ want_A)
    assert rec["train_seconds"] == pytest.approx(sum(c["train_seconds"] for c in manifest["clusters"]), abs=1e-3)


def test_ties_merge_matches_peft_ties_on_each_matrix(trained, tiny_model_dir):
    from peft.utils.merge_utils import ties

    from finetune.multi import TIES_DENSITY
    from rag.models import load_causal_lm

    _, folder, manifest = trained
    model, _ = load_causal_lm(str(tiny_model_dir), "cpu")
    pm = merged_model(model, [folder / c["adapter"] for c in manifest["clusters"]], "ties")
    layer = lora_layer(pm)
    sw = torch.tensor([math.sqrt(1.0 * layer.scaling[f"cluster-{i}"]) for i in range(2)])
    for part in ("lora_A", "lora_B"):
        mats = [getattr(layer, part)[f"cluster-{i}"].weight.detach() for i in range(2)]
        torch.testing.assert_close(getattr(layer, part)["default"].weight.detach(), ties(mats, sw, TIES_DENSITY, "total"))


def test_routed_arm_answers_with_the_adapter_of_the_top_chunks_cluster(trained, corpus_dir, tiny_model_dir, tmp_path):
    from compare.adapters import ensure_generator
    from compare.config import CompareConfig
    from compare.route import answer_routed
    from compare.systems import parse_system
    from corpora import load_corpus
    from rag.index import IndexConfig, build_index
    from rag.pipeline import answer_questions, retrieve_passages

    _, folder, manifest = trained
    corpus = load_corpus(str(corpus_dir))
    index = build_index(corpus.docs, IndexConfig(corpus=str(corpus_dir), device="cpu"), progress=False)
    cfg = CompareConfig(corpus=str(corpus_dir), generator=str(tiny_model_dir), top_k=1, max_new_tokens=4,
                        batch_size=1, device="cpu")  # batches of 1: the same padding as the direct answers below
    questions = corpus.questions("test")
    ad = {"adapter": str(folder), "manifest": manifest}
    for name in ("ft-multi:route", "ft-multi+rag:route"):
        s = parse_system(name)
        assert s.routed and s.adapter_key == "multi:route"
        answers, gen = answer_routed(None, index, s, questions, cfg, tmp_path, ad, None, "sha", progress=False)
        used = set()
        for q, a in zip(questions, answers):
            top = retrieve_passages(index, q["question"], "hybrid", 1)["retrieved_ids"][0]
            c = manifest["doc_cluster"][top]
            assert a["route_doc_id"] == top and a["route_cluster"] == c
            assert a["route_adapter"] == str(folder / f"cluster-{c}")
            used.add(c)
            # the answer is the one that cluster's adapter gives, with the arm's prompt (closed-book or with chunks)
            gen = ensure_generator(gen, cfg, a["route_adapter"])
            direct = answer_questions(gen, index, [q["question"]], s.retriever, cfg.top_k, cfg.max_new_tokens, 1)[0]
            assert a["answer"] == direct["answer"] and a["retrieved_ids"] == direct["retrieved_ids"]
            assert (a["retrieved_ids"] == []) == (not s.uses_retrieval)  # closed-book route: nothing in the prompt
        assert used == {0, 1}  # both adapters answered something
        cached, _ = answer_routed(gen, index, s, questions, cfg, tmp_path, ad, None, "sha", progress=False)
        assert [a["answer"] for a in cached] == [a["answer"] for a in answers]  # resumed from the one answers file

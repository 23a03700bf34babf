"""Retrieval metrics (rag/retrieval_metrics.py) against values computed by hand."""

import math

import pytest

from rag.retrieval_metrics import mrr_at_k, ndcg_at_k, ranked_docs, recall_at_k

# Chunks of one document repeat its id; a document counts once, at its first rank: a, b, c, d.
RETRIEVED = ["a", "a", "b", "c", "a", "d"]
RELEVANT = ["b", "d"]


def test_duplicates_count_once_at_their_first_rank():
    assert ranked_docs(RETRIEVED) == ["a", "b", "c", "d"]
    assert recall_at_k(RETRIEVED, RELEVANT, 1) == 0.0
    assert recall_at_k(RETRIEVED, RELEVANT, 2) == 0.5  # a, b (without de-duplication: a, a -> 0)
    assert recall_at_k(RETRIEVED, RELEVANT, 3) == 0.5
    assert recall_at_k(RETRIEVED, RELEVANT, 4) == 1.0
    assert mrr_at_k(RETRIEVED, RELEVANT, 10) == 0.5  # b at rank 2 (without de-duplication: rank 3)
    assert mrr_at_k(RETRIEVED, RELEVANT, 1) == 0.0
    # nDCG@10: DCG = 1/log2(2+1) + 1/log2(4+1) = 0.630930 + 0.430677 = 1.061606; ideal = 1/log2(2) + 1/log2(3)
    # = 1.630930; 1.061606 / 1.630930 = 0.650921
    assert ndcg_at_k(RETRIEVED, RELEVANT, 10) == pytest.approx(0.650921, abs=1e-6)
    # nDCG@3: only b within the cut: 0.630930 / 1.630930 = 0.386853
    assert ndcg_at_k(RETRIEVED, RELEVANT, 3) == pytest.approx(0.386853, abs=1e-6)


def test_fewer_results_than_k_count_as_misses():
    # one result, three relevant: recall 1/3, MRR 1, nDCG@10 = 1 / (1 + 1/log2(3) + 1/log2(4)) = 1 / 2.130930
    assert recall_at_k(["x"], ["x", "y", "z"], 10) == pytest.approx(1 / 3)
    assert mrr_at_k(["x"], ["x", "y", "z"], 10) == 1.0
    assert ndcg_at_k(["x"], ["x", "y", "z"], 10) == pytest.approx(1 / 2.130930, abs=1e-6)
    # relevant beyond the results and nothing retrieved
    assert recall_at_k(["q", "r"], ["x"], 5) == mrr_at_k(["q", "r"], ["x"], 5) == ndcg_at_k(["q", "r"], ["x"], 5) == 0.0
    assert recall_at_k([], ["x"], 5) == ndcg_at_k([], ["x"], 5) == 0.0
    # a perfect ranking scores 1 whatever the cut
    assert ndcg_at_k(["x", "y", "z"], ["x", "y"], 10) == pytest.approx(1.0)
    assert ndcg_at_k(["x", "y"], ["x", "y", "z"], 2) == pytest.approx(1.0)  # ideal DCG cut at k too


def test_no_relevant_documents_is_undefined():
    for f in (recall_at_k, mrr_at_k, ndcg_at_k):
        assert math.isnan(f(["a"], [], 5))

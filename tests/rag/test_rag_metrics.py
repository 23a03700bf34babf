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


def test_graded_ndcg_counts_by_grade():
    # issue 14: ranking [b, a, c] with a=2, b=1 (c=0). Binary gains gave 1.000. Graded, by hand:
    # DCG = 1/log2(2) + 2/log2(3) = 1 + 1.261860 = 2.261860; ideal [a, b] = 2/log2(2) + 1/log2(3) = 2.630930;
    # 2.261860 / 2.630930 = 0.859719 (pytrec_eval's ndcg_cut_10 on the same run: 0.8597186998521972)
    qrels = {"a": 2, "b": 1, "c": 0}
    assert ndcg_at_k(["b", "a", "c"], qrels, 10) == pytest.approx(0.8597186998521972, abs=1e-12)
    assert ndcg_at_k(["a", "b", "c"], qrels, 10) == pytest.approx(1.0)
    # recall and MRR stay binary: every grade > 0 is relevant, grade 0 is not
    assert recall_at_k(["c", "b"], qrels, 2) == 0.5 and mrr_at_k(["c", "b"], qrels, 10) == 0.5
    # a dict of grades 1 is the list form
    assert ndcg_at_k(RETRIEVED, dict.fromkeys(RELEVANT, 1), 10) == ndcg_at_k(RETRIEVED, RELEVANT, 10)
    assert math.isnan(ndcg_at_k(["a"], {"a": 0}, 10))


def pytrec(qrels: dict[str, int], ranked: list[str], measures: set[str]) -> dict:
    """pytrec_eval (trec_eval's own code) on one query: ranked best first, given as descending scores."""
    import pytrec_eval

    run = {d: float(len(ranked) - i) for i, d in enumerate(ranked)}
    return pytrec_eval.RelevanceEvaluator({"q": qrels}, measures).evaluate({"q": run})["q"]


@pytest.mark.parametrize("seed", range(40))
def test_metrics_match_pytrec_eval(seed):
    """Random graded qrels (grades 0-3) and rankings (with repeated chunk ids, misses, short lists): nDCG@k,
    recall@k and MRR (reciprocal rank over the list cut at k) equal pytrec_eval's ndcg_cut_k, recall_k and
    recip_rank. pytrec_eval sees the de-duplicated ranking, as BEIR scores max-pooled passages."""
    import random

    rng = random.Random(seed)
    pool = [f"d{i}" for i in range(12)]
    qrels = {d: rng.choice([0, 1, 1, 2, 3]) for d in rng.sample(pool, rng.randint(1, 6))}
    if not any(g > 0 for g in qrels.values()):
        qrels[pool[0]] = 2
    retrieved = [rng.choice(pool) for _ in range(rng.randint(0, 15))]
    ranked = ranked_docs(retrieved)
    for k in (1, 3, 5, 10):
        ref = pytrec(qrels, ranked[:k], {f"ndcg_cut.{k}", f"recall.{k}", "recip_rank"})
        assert ndcg_at_k(retrieved, qrels, k) == pytest.approx(ref[f"ndcg_cut_{k}"], abs=1e-9)
        assert recall_at_k(retrieved, qrels, k) == pytest.approx(ref[f"recall_{k}"], abs=1e-9)
        assert mrr_at_k(retrieved, qrels, k) == pytest.approx(ref["recip_rank"], abs=1e-9)

"""Steps 2-5 in depth: query processing, thresholds and fusion settings, token budget, citations, generation
timings. The generator is the tiny random Llama (conftest.tiny_model_dir): it checks plumbing, not answers."""

import pytest

from tests.conftest import TINY_DOCS
from rag.augment import MIN_CUT_TOKENS, build_messages, cited_ids, fit_passages, format_passages
from rag.index import IndexConfig, build_index
from rag.query import STOP_WORDS, clean_rewrite, query_tokens, remove_stop_words
from rag.rank import Search, cosines, query_vectors, retrieve

QUESTION = "Who is the guildmaster of the Saltglass Guild?"


@pytest.fixture(scope="module")
def index():
    return build_index(TINY_DOCS, IndexConfig(corpus="tiny", device="cpu"), progress=False)


@pytest.fixture(scope="module")
def gen(tiny_model_dir):
    from rag.generate import load_generator

    return load_generator(str(tiny_model_dir), device="cpu")


def test_stop_words_only_for_bm25_queries():
    assert query_tokens(QUESTION) == ["who", "is", "the", "guildmaster", "of", "the", "saltglass", "guild"]
    assert query_tokens(QUESTION, stop_words=True) == ["guildmaster", "saltglass", "guild"]
    assert remove_stop_words(["who", "is", "it"]) == ["who", "is", "it"]  # never empties a query
    assert {"who", "what", "the", "of"} <= STOP_WORDS and "guild" not in STOP_WORDS


def test_clean_rewrite():
    assert clean_rewrite('Query: "saltglass guild leader"\nThat is all.', QUESTION) == "saltglass guild leader"
    assert clean_rewrite("  \n", QUESTION) == QUESTION


@pytest.mark.model  # MiniLM embedder
def test_threshold_weights_and_rrf_k(index):
    # a cosine no chunk reaches: nothing comes back, whichever retriever
    for r in ("dense", "hybrid"):
        assert retrieve(index, QUESTION, r, 3, min_score=0.99) == []
    assert retrieve(index, QUESTION, "bm25", 3, min_score=1e6) == []
    hits = retrieve(index, QUESTION, "hybrid", 3, min_score=0.3)
    qvec = query_vectors(index, [QUESTION])[0]
    assert hits and index.chunks[hits[0][0]]["doc_id"] == "d2"
    assert all(c >= 0.3 for c in cosines(index, [i for i, _ in hits], qvec))
    assert len(hits) < len(retrieve(index, QUESTION, "hybrid", 3))  # the threshold dropped something
    # weights (bm25, dense) = (1, 0) / (0, 1): hybrid orders as the single retriever does
    bm25 = [i for i, _ in retrieve(index, "lanterns autumn", "bm25", 3)]
    dense = [i for i, _ in retrieve(index, "lanterns autumn", "dense", 3)]
    assert [i for i, _ in retrieve(index, "lanterns autumn", "hybrid", len(bm25), weights=(1.0, 0.0))] == bm25
    assert [i for i, _ in retrieve(index, "lanterns autumn", "hybrid", 3, weights=(0.0, 1.0))] == dense
    s1 = retrieve(index, QUESTION, "hybrid", 1, rrf_k=1)[0][1]
    assert s1 == pytest.approx(2 / (1 + 1))  # first in both lists, k=1: 1/(1+1) + 1/(1+1)


def words(text: str) -> int:
    return len(text.split())


def test_token_budget_keeps_score_order_and_cuts_the_last_passage():
    ten = " ".join(f"w{i}" for i in range(10))
    p = [{"doc_id": f"d{i}", "title": "T", "text": ten, "start": 0, "end": len(ten)} for i in range(3)]
    # each passage costs 1 ("[d0]") + 1 ("T") + 10 words = 12; 25 tokens fit two; 1 left < MIN_CUT_TOKENS
    assert fit_passages(p, 25, words) == p[:2]
    assert fit_passages(p, 36, words) == p
    assert fit_passages(p, 0, words) == []
    long = " ".join(f"x{i}" for i in range(60))
    q = [p[0], {"doc_id": "d9", "title": "T", "text": long, "start": 100, "end": 100 + len(long)}, p[1]]
    got = fit_passages(q, 50, words)  # 12 for the first, 38 left: the second is cut to 36 words, then stop
    assert got[0] == p[0] and len(got) == 2
    assert got[1]["truncated"] and got[1]["text"] == " ".join(f"x{i}" for i in range(36))
    assert got[1]["end"] == 100 + len(got[1]["text"]) and words(format_passages(got)) <= 50
    assert MIN_CUT_TOKENS > 1


def test_cited_ids():
    shown = ["atl-001", "atl-005", "atl-0050x"]
    assert cited_ids("Mirabet Coss [atl-005], see also atl-001 and atl-0050", shown) == ["atl-005", "atl-001"]
    assert cited_ids("Mirabet Coss", shown) == []


def test_generate_records_prefill_and_decode(gen):
    from rag.generate import generate

    convs = [build_messages(q, None) for q in ["Who founded Port Ilmaren?", "Who leads the Saltglass Guild now?"]]
    outs = generate(gen, convs, max_new_tokens=6, batch_size=2, min_new_tokens=6)
    for o in outs:
        assert o["tokens_out"] == 6 and o["tokens_in"] > 10 and o["batch"] == 2
        assert o["prefill_seconds"] > 0 and o["decode_seconds"] > 0
        assert o["prefill_seconds"] + o["decode_seconds"] == pytest.approx(o["gen_seconds"])


def test_pipeline_threshold_budget_rewrite_and_record(gen, index):
    from rag.pipeline import answer_questions

    # threshold: no evidence -> the prompt has no documents, exactly as with an empty retrieval
    rec = answer_questions(gen, index, [QUESTION], "dense", 3, 4, settings=Search(min_score=0.99))[0]
    assert rec["retrieved_ids"] == [] and rec["prompt"] == build_messages(QUESTION, [])[-1]["content"]

    full = answer_questions(gen, index, [QUESTION], "hybrid", 3, 4)[0]
    assert len(full["retrieved_ids"]) == 3 and full["trimmed"] == 0 and full["budget_tokens"] > 300
    for key in ("prefill_seconds", "decode_seconds", "tokens_in", "tokens_out", "cited_ids", "search_query"):
        assert key in full
    tight = answer_questions(gen, index, [QUESTION], "hybrid", 3, 4, context_tokens=40)[0]
    assert tight["trimmed"] >= 1 and tight["budget_tokens"] == 40 and tight["tokens_in"] < full["tokens_in"]
    assert tight["retrieved_ids"] == full["retrieved_ids"][: len(tight["retrieved_ids"])]  # order kept

    rw = answer_questions(gen, index, [QUESTION], "bm25", 3, 4, settings=Search(rewrite=True, stop_words=True))[0]
    assert isinstance(rw["rewrite"], str) and rw["rewrite"] and rw["search_query"] == rw["rewrite"]
    assert rw["latency_seconds"] >= rw["rewrite_seconds"] > 0 and rw["query"] == QUESTION


@pytest.mark.model  # MiniLM embedder
def test_retrieval_eval_table(index, tiny_corpus):
    from rag.evaluate import RetrievalEvalConfig, run_retrieval_eval

    table, records = run_retrieval_eval(RetrievalEvalConfig(corpus=str(tiny_corpus), ks="1,2"), index=index)
    assert list(table["retriever"]) == ["bm25", "dense", "hybrid"]
    assert list(table.columns[:5]) == ["retriever", "questions", "recall@1", "recall@2", "mrr@2"]
    assert (table["questions"] == 2).all()  # q1, q2: the unanswerable q3 is left out by default
    assert len(records) == 6 and set(records["qid"]) == {"q1", "q2"}
    # the metrics are the pure functions applied to each record's ranked documents
    from rag.retrieval_metrics import ndcg_at_k

    for _, r in records.iterrows():
        assert r["ndcg@10"] == pytest.approx(ndcg_at_k(r["ranked_doc_ids"], r["gold_doc_ids"], 10))
    assert table.set_index("retriever").loc["bm25", "recall@1"] == records[records["retriever"] == "bm25"]["recall@1"].mean()


def test_ask_takes_the_search_fields_and_every_option_is_checked_when_made():
    """AskConfig inherits Search's fields (one declaration, one help line each); a bad value stops at once."""
    from dataclasses import fields

    from corpora.errors import InputError
    from rag.pipeline import AskConfig

    names = [f.name for f in fields(AskConfig)]
    assert names[:len(fields(Search))] == [f.name for f in fields(Search)] and "question" in names
    cfg = AskConfig(question="Who?", retriever="bm25", top_k=3, rrf_k=10, min_score=0.5, rewrite=True)
    assert cfg.search() == Search("bm25", 3, 10, 1.0, 1.0, 0.5, False, True)
    for bad, message in ((dict(retriever="magic"), "unknown retriever 'magic'"), (dict(top_k=-1), "--top-k -1"),
                         (dict(rrf_k=0), "--rrf-k 0: must be above 0"), (dict(max_new_tokens=0), "--max-new-tokens 0"),
                         (dict(device="gpu"), "--device 'gpu'"), (dict(dense_weight=float("nan")), "not a number")):
        with pytest.raises(InputError, match=message):
            AskConfig(**bad)
    with pytest.raises(InputError, match="--rrf-k -1"):
        Search(rrf_k=-1)

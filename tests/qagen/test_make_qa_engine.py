"""make-qa through a generation engine (--engine openai against a real OpenAI-compatible server on 127.0.0.1 that
answers with the tiny random Llama: tests/rag/test_engines.py TinyServer), against the transformers default on
the same model: the same replies, separate cache keys, and a transformers run's keys and marker as before."""

import json
from dataclasses import asdict, fields

import pytest

from corpora.errors import InputError
from corpora.files import text_sha
from qagen import prompts
from qagen.build import CALLS, Calls, make_qa, marker_config
from qagen.config import MakeQAConfig
from rag.engine import EngineOptions
from tests.conftest import TINY_DOCS
from tests.rag.test_engines import TinyServer

# make-qa's own fields, in order: what DIR/.cache/make-qa.json recorded before engines existed
OWN_FIELDS = ["docs", "out", "generator", "questions_per_chunk", "seed", "limit_docs", "top_k", "holdout",
              "gen_batch_size", "device", "dry_run"]


@pytest.fixture(scope="module")
def server(tiny_model_dir):
    from rag.engine_transformers import TransformersEngine

    s = TinyServer(TransformersEngine.load(str(tiny_model_dir), device="cpu"), {})
    yield s
    s.stop()


def configs(tiny_model_dir, url, **kw):
    base = dict(docs="x", out="y", generator=str(tiny_model_dir), device="cpu", gen_batch_size=1, **kw)
    return MakeQAConfig(**base), MakeQAConfig(**base, engine="openai", base_url=url, concurrency=2, retries=1)


def test_config_takes_the_engine_options_and_checks_them():
    assert {f.name for f in fields(EngineOptions)} <= {f.name for f in fields(MakeQAConfig)}
    assert MakeQAConfig(docs="x", out="y").engine == "transformers"
    with pytest.raises(InputError, match="--engine openai needs --base-url"):
        MakeQAConfig(docs="x", out="y", engine="openai")
    with pytest.raises(InputError, match="--engine"):
        MakeQAConfig(docs="x", out="y", engine="llamafile")
    cfg = MakeQAConfig(docs="x", out="y")
    assert list(marker_config(cfg)) == OWN_FIELDS  # the transformers marker records what it did
    assert marker_config(cfg) == {k: v for k, v in asdict(cfg).items() if k in OWN_FIELDS}


def test_calls_through_the_openai_engine_match_transformers(tiny_model_dir, server, tmp_path):
    t_cfg, o_cfg = configs(tiny_model_dir, server.url)
    chunk = {"title": TINY_DOCS[0]["title"], "text": TINY_DOCS[0]["text"]}
    convs = [prompts.pair_messages(chunk["title"], p, a) for p, a in prompts.pair_plan(chunk, 2)]
    convs.append(prompts.paraphrase_messages(prompts.EXAMPLE_QUESTION))

    t_calls = Calls(t_cfg, tmp_path / "t.jsonl")
    t_replies = t_calls.ask(convs, 12)
    # a transformers key is the hash it always was: (generator, token limit, messages)
    assert t_calls.key(convs[0], 12) == text_sha(json.dumps([t_cfg.generator, 12, convs[0]], ensure_ascii=False), 24)

    o_calls = Calls(o_cfg, tmp_path / "o.jsonl")
    before = server.requests
    o_replies = o_calls.ask(convs, 12)
    assert server.requests - before == len(convs)  # every call went to the server
    assert o_calls.gen.model is None and o_calls.gen.engine.kind == "openai"
    assert o_replies == t_replies  # greedy, same chat template, batch 1 on both sides: the same text
    # the engine's settings are in its keys: its replies never answer a transformers run, nor the reverse
    assert {o_calls.key(c, 12) for c in convs}.isdisjoint(t_calls.replies)
    # a rerun resumes from the file: nothing is asked again
    again = Calls(o_cfg, tmp_path / "o.jsonl")
    assert again.ask(convs, 12) == o_replies and again.reused == len(convs) and again.gen is None
    assert server.requests - before == len(convs)
    o_calls.close()
    m = marker_config(o_cfg)
    assert list(m)[:len(OWN_FIELDS)] == OWN_FIELDS and m["engine"] == "openai" and m["base_url"] == server.url


@pytest.mark.model  # the MiniLM embedder behind the retrieval filter's index
def test_make_qa_with_the_openai_engine_writes_what_transformers_writes(tiny_model_dir, server, tiny_corpus,
                                                                       tmp_path):
    t_cfg, o_cfg = configs(tiny_model_dir, server.url, holdout=0.34)
    t = make_qa(MakeQAConfig(**{**asdict(t_cfg), "docs": str(tiny_corpus), "out": str(tmp_path / "t")}), False)
    o = make_qa(MakeQAConfig(**{**asdict(o_cfg), "docs": str(tiny_corpus), "out": str(tmp_path / "o")}), False)
    assert t["generated_calls"] == o["generated_calls"] > 0
    for name in ("make-qa-report.csv", "docs.jsonl"):
        assert (tmp_path / "t" / name).read_text() == (tmp_path / "o" / name).read_text(), name
    rows = [[json.loads(x) for x in (tmp_path / d / "qa.jsonl").read_text().splitlines()] for d in ("t", "o")]
    for r in rows[1]:
        assert r["provenance"].pop("engine") == o_cfg.engine_options()  # engine rows say which engine wrote them
    assert rows[0] == rows[1]
    marker = json.loads((tmp_path / "t" / ".cache" / "make-qa.json").read_text())
    assert list(marker["config"]) == OWN_FIELDS
    # the transformers run's calls file answers its rerun without a model
    again = make_qa(MakeQAConfig(**{**asdict(t_cfg), "docs": str(tiny_corpus), "out": str(tmp_path / "t")}), False)
    assert again["generated_calls"] == 0 and again["cached_calls"] == t["generated_calls"] + t["cached_calls"]
    assert len((tmp_path / "o" / CALLS).read_text().splitlines()) == o["generated_calls"]

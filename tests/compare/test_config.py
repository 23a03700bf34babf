"""CompareConfig: every numeric and choice option checked when the config is made (issue 17), the index options
shared with `ragft index` (issue 13), and a default run's index folder and fingerprint keys as before."""

import pytest

from compare.cache import fingerprint
from compare.config import CompareConfig
from compare.systems import parse_systems
from corpora.errors import InputError
from rag.index import IndexConfig, default_index_dir


@pytest.mark.parametrize("kw, message", [
    ({"limit": -1}, "--limit -1: must be at least 0"),
    ({"top_k": -1}, "--top-k -1: must be at least 0"),
    ({"batch_size": 0}, "--gen-batch-size 0: must be at least 1"),
    ({"max_new_tokens": -5}, "--max-new-tokens -5: must be at least 1"),
    ({"device": "tpu"}, "--device 'tpu': must be one of auto, cpu, cuda"),
    ({"epochs": -3.0}, "--epochs -3.0: must be above 0"),
    ({"max_steps": -1}, "--max-steps -1: must be at least 0"),
    ({"change_rate": 1.5}, "--change-rate 1.5: must be at most 1"),
    ({"hallucination_tolerance": float("nan")}, "--hallucination-tolerance nan: is not a number"),
    ({"leak_threshold": -0.1}, "--leak-threshold -0.1: must be at least 0"),
    ({"injection": -1}, "--injection -1: must be at least 0"),
    ({"recipe": "qa+nope"}, "--recipe 'qa+nope': unknown recipe 'nope'"),
    ({"chunk_size": 100, "overlap": 100}, "overlap < chunk_size"),
])
def test_bad_options_fail_when_the_config_is_made(kw, message):
    with pytest.raises(InputError) as e:
        CompareConfig(**kw)
    assert message in str(e.value)


def test_index_options_are_indexconfigs_and_a_default_run_is_unchanged():
    cfg = CompareConfig()
    assert cfg.index_config() == IndexConfig(corpus="atlantis")
    assert default_index_dir(cfg.corpus, cfg.index_config()) == default_index_dir("atlantis", IndexConfig())
    rag, base = parse_systems("rag,base")
    fp = fingerprint(cfg, rag, None, {"corpus_hash": "h"}, "d")
    assert list(fp) == ["system", "retriever", "generator", "top_k", "max_new_tokens", "batch_size", "docs_sha",
                        "prompt", "index", "embedder"]

    hnsw = CompareConfig(dense="hnsw", chunk_size=300)
    assert hnsw.index_config().dense == "hnsw" and default_index_dir(hnsw.corpus, hnsw.index_config()) != \
        default_index_dir(cfg.corpus, cfg.index_config())
    assert fingerprint(hnsw, rag, None, {"corpus_hash": "h"}, "d")["index_options"] == {"chunk_size": 300,
                                                                                       "dense": "hnsw"}
    assert fingerprint(hnsw, base, None, None, "d") == fingerprint(cfg, base, None, None, "d")

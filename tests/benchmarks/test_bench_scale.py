"""`ragft bench scale`: fresh-subprocess measurements over generated corpora, table, log-log plot, exponents."""

import numpy as np
import pytest

from benchmarks.scale import ScaleConfig, growth_exponent, run_scale, sizes_of, worker_prepare
from corpora.errors import InputError


def test_growth_exponent_of_exact_power_laws():
    n = np.array([1e3, 1e4, 1e5])
    assert growth_exponent(n, 3 * n) == pytest.approx(1.0)
    assert growth_exponent(n, 0.5 * n ** 1.5) == pytest.approx(1.5)
    assert growth_exponent(n, [2.0, 2.0, 2.0]) == pytest.approx(0.0)
    assert np.isnan(growth_exponent(n, [0.0, 0.0, 1.0]))  # one positive point: no fit


def test_sizes_and_bad_input():
    assert sizes_of(ScaleConfig()) == [1000, 10000, 100000]
    assert sizes_of(ScaleConfig(large=True))[-1] == 1_000_000
    for bad in (ScaleConfig(sizes="10"), ScaleConfig(sizes="1e3")):
        with pytest.raises(InputError):
            sizes_of(bad)
    with pytest.raises(InputError):
        run_scale(ScaleConfig(indexes="bm25,ivf"))


@pytest.mark.model  # MiniLM embedder
def test_small_scale_curve(tmp_path):
    """Two sizes, static vectors (seconds, not minutes): every index measured, sizes grow ~linearly, plot written."""
    out = []
    cfg = ScaleConfig(sizes="300,1200", queries=20, vectors="static", embed_sample=32, work=str(tmp_path))
    res = run_scale(cfg, echo=out.append)
    t = res["table"]
    assert len(t) == 6 and set(t["index"]) == {"bm25", "flat", "hnsw"}
    assert (t[["build_s", "disk_mb", "p50_ms", "p95_ms", "peak_mb"]] > 0).all().all()
    assert (t["p95_ms"] >= t["p50_ms"]).all()
    flat = t[t["index"] == "flat"].set_index("docs")
    # a flat index holds n x 384 float32 vectors: 4x the documents, ~4x the bytes
    assert flat.loc[1200, "disk_mb"] / flat.loc[300, "disk_mb"] == pytest.approx(4, rel=0.02)
    assert flat.loc[1200, "disk_mb"] == pytest.approx(1200 * 384 * 4 / 2**20, rel=0.02)
    e = res["exponents"].set_index("index")
    assert e.loc["flat", "disk_mb"] == pytest.approx(1.0, abs=0.02)
    assert 0.7 < e.loc["bm25", "disk_mb"] < 1.2
    assert (tmp_path / "scale.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "scale.csv").is_file() and (tmp_path / "scale.json").is_file()
    assert any("growth exponent" in line for line in out)
    emb = res["embedding"].set_index("docs")
    assert (emb["model_docs_per_s"] > 0).all() and (emb["model_embed"] == "projected from 32 docs").all()
    assert emb.loc[1200, "model_embed_s"] == pytest.approx(1200 / emb.loc[1200, "model_docs_per_s"])
    # the vectors are cached: preparing the same size again does not embed again
    args = {"n": 300, "folder": str(tmp_path / "n300-s1-w12-static"), "seed": 1, "doc_words": 12, "queries": 20,
            "embedder": cfg.embedder, "device": "cpu", "embed_batch": 128, "vectors": "static", "embed_sample": 32}
    assert worker_prepare(args)["cached"]

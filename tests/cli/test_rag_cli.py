"""`ragft index update` then `ragft ask` (real models), bad arguments, a small `bench retrieval` run.

The commands run in-process through cli.main.main (the same code path as the console script, without
paying the torch import once more per command).
"""

import json

import pytest

from cli.main import main
from corpora import load_corpus

QUESTION = "Who is the chief executive of the Ilmaren Tidal Power Company?"  # qa_updates u016, doc atl-027


def ragft(capsys, *args) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `ragft ARGS`."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(list(args))
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def test_index_update_then_ask_answers_from_the_new_text(tmp_path, smollm2_path, capsys):
    from rag.index import IndexConfig, build_index, chunk_documents
    from rag.models import load_embedder

    corpus = load_corpus("atlantis")
    out = tmp_path / "idx"
    build_index(corpus.docs, IndexConfig(out=str(out), device="cpu"), load_embedder("minilm-l6", "cpu"),
                progress=False).save(out)
    new = next(json.loads(line) for line in (corpus.path / "updates.jsonl").read_text().splitlines()
               if json.loads(line)["id"] == "atl-027")
    old_text = next(d["text"] for d in corpus.docs if d["id"] == "atl-027")
    assert "Linnea Garrowby" in old_text and "Maelis Droste" in new["text"]
    (tmp_path / "one.jsonl").write_text(json.dumps(new) + "\n")

    code, stdout, stderr = ragft(capsys, "index", "update", str(tmp_path / "one.jsonl"), "--index", str(out),
                                 "--device", "cpu")
    assert code == 0, stderr
    assert "0 added, 1 replaced" in stdout
    m = json.loads((out / "manifest.json").read_text())
    rec = m["updates"][-1]
    # only the changed document was chunked and embedded: its chunks, not the corpus's
    assert rec["chunks_added"] == len(chunk_documents([new], 500, 50)) and rec["replaced"] == ["atl-027"]
    assert rec["chunks_added"] / m["n_chunks"] < 0.05
    chunks = [json.loads(line) for line in (out / "chunks.jsonl").read_text().splitlines()]
    text = " ".join(c["text"] for c in chunks if c["doc_id"] == "atl-027")
    assert "Maelis Droste" in text and "Linnea Garrowby" not in text

    code, stdout, stderr = ragft(capsys, "ask", QUESTION, "--index", str(out), "--device", "cpu",
                                 "--retriever", "hybrid")
    assert code == 0, stderr
    assert "[atl-027]" in stderr and "Maelis Droste" in stdout, (stdout, stderr)


@pytest.mark.parametrize("args,message", [
    (["retrieval-eval", "--retrievers", "bm25,magic"], "unknown retriever magic"),
    (["retrieval-eval", "--ks", "5,x"], "ks must be comma-separated positive integers"),
    (["index", "--chunker", "sentences"], "unknown chunker 'sentences'"),
    (["index", "--overlap", "9", "update", "x.jsonl"], "options before `update` are build options"),
    (["bench", "retrieval", "--vectors", "magic"], "vectors must be auto, model or static"),
])
def test_bad_arguments_are_one_line_and_exit_2(args, message, capsys):
    code, _, stderr = ragft(capsys, *args)
    assert code == 2, (args, stderr)
    assert message in stderr and "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1


def test_bench_retrieval_small_run(tiny_model_dir):
    from benchmarks.retrieval import BenchConfig, run_bench

    lines = []
    res = run_bench(BenchConfig(docs=400, bm25s_queries=40, rank_bm25_queries=8, dense_queries=30, embed_chunks=4,
                                gen_prompts=2, gen_tokens=4, generator=str(tiny_model_dir), device="cpu", update=False),
                    echo=lines.append)
    # rank-bm25 (epsilon=0) and bm25s are the same function: top-10s agree up to ties
    assert res["bm25_identical_top10"] == 1.0
    assert 0 < res["hnsw_recall@10"] <= 1 and res["dense_vectors"] == "static"
    for k in ("bm25s_speedup", "hnsw_speedup", "embed_chunks_per_s", "gen_batch_speedup", "bm25s_qps", "flat_qps"):
        assert res[k] > 0, k
    text = "\n".join(lines)
    for s in ("ratio bm25s / rank-bm25", "ratio hnsw / flat", "chunks/s", "ratio batch 8 / batch 1"):
        assert s in text

"""The answer cache: answers/<system>.jsonl in the run folder, one line per question, appended per unit of
generation batches and fsync'd, so a killed run resumes where it stopped.

Line 1 is the system's fingerprint: what every answer depends on (system, generator, decoding, prompt wording,
the corpus documents' content hash, index, adapter hash, non-default index options). Each answer line carries
`qsha`, the hash of its question's text and gold answers. A rerun with the same --out reuses an answer only
when the fingerprint matches and its question is unchanged; an edited question is answered again, the others
are reused. A fingerprint that no longer matches, or a damaged header, sets the file aside (.stale-N).

Old caches (before the fingerprint named the documents' content): their header named the corpus path
("corpus"); it is migrated in place when everything else matches, and each answer is reused only when its
recorded query is the current question's text (old lines carry no qsha, and the gold answers were not recorded).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from compare.systems import System
from corpora.files import text_sha, write_atomic

SAVE_BATCHES = 4  # generation batches per saved unit: a killed run loses at most this much work per system


def log(progress: bool, message: str) -> None:
    if progress:
        import sys

        from tqdm import tqdm

        tqdm.write(message, file=sys.stderr)  # log lines on stderr, tables on stdout


def docs_sha(docs: list[dict]) -> str:
    """Content hash of the corpus's documents (rag/index.py: corpus_hash, 16 hex digits): the same documents
    by any path give the same hash."""
    from rag.index import corpus_hash

    return corpus_hash(docs)


def question_sha(q: dict) -> str:
    """Hash of what was asked: the question's text and gold answers (16 hex digits)."""
    return text_sha(json.dumps([q["question"], q.get("answers", [])], ensure_ascii=False))


def fingerprint(cfg, s: System, adapter: dict | None, index_meta: dict | None, docs_hash: str) -> dict:
    """What a system's answers depend on; cached answers are reused only when it matches. Questions are
    checked one by one (question_sha), not here."""
    from corpora.files import file_sha

    fp = {"system": s.name, "retriever": s.retriever, "generator": cfg.generator, "top_k": cfg.top_k,
          "max_new_tokens": cfg.max_new_tokens, "batch_size": cfg.batch_size, "docs_sha": docs_hash,
          "prompt": prompt_hash()}
    if s.uses_retrieval and index_meta:
        fp["index"] = index_meta["corpus_hash"]
        fp["embedder"] = cfg.embedder
    if s.uses_retrieval and cfg.index_options():  # only when set: a default run's fingerprint is as it was
        fp["index_options"] = cfg.index_options()
    if adapter:
        fp["adapter_sha"] = file_sha(weights_file(adapter["adapter"]))
    if getattr(cfg, "engine", "transformers") != "transformers":  # only then: transformers fingerprints stay as they were
        fp["engine"] = cfg.engine_options()
    return fp


def weights_file(folder: str | Path) -> Path:
    """The weights an ft arm's answers depend on: adapter_model.safetensors (a peft adapter), or model.safetensors
    of a standalone model folder (finetune methods full and hft)."""
    p = Path(folder)
    return p / "adapter_model.safetensors" if (p / "adapter_config.json").is_file() else p / "model.safetensors"


def prompt_hash() -> str:
    """Hash of the prompt wording (rag/augment.py), closed-book and with a passage: a reworded prompt
    invalidates cached answers."""
    from rag.augment import build_messages

    doc = {"doc_id": "d", "title": "T", "text": "x", "chunk_id": 0, "start": 0, "end": 1}
    text = json.dumps([build_messages("Q?", None), build_messages("Q?", [doc]), build_messages("Q?", [])])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def old_format_matches(head: dict, fp: dict) -> bool:
    """A header written before docs_sha (it named the corpus path) that matches `fp` on everything else."""
    if not isinstance(head, dict) or "corpus" not in head or "docs_sha" in head or "docs_sha" not in fp:
        return False
    return {k: v for k, v in head.items() if k != "corpus"} == {k: v for k, v in fp.items() if k != "docs_sha"}


def set_aside(path: Path, why: str, progress: bool) -> None:
    n = 1
    while path.with_name(f"{path.name}.stale-{n}").exists():
        n += 1
    os.replace(path, path.with_name(f"{path.name}.stale-{n}"))
    log(progress, f"{path}: {why}; set aside as {path.name}.stale-{n}, answering again")


def read_cache(path: Path, fp: dict, questions: list[dict] | None = None, progress: bool = False) -> dict[str, dict]:
    """Answers already in `path` by qid, for the questions as they are now (questions: None, no per-question
    check). A torn last line (killed mid-write) is dropped from the file; a file whose fingerprint differs or
    whose lines are not answers is set aside."""
    if not path.is_file():
        return {}
    lines = path.read_text(encoding="utf-8").split("\n")
    try:
        head = json.loads(lines[0])
    except json.JSONDecodeError:
        head = None
    old = isinstance(head, dict) and old_format_matches(head.get("fingerprint"), fp)
    if head != {"fingerprint": fp} and not old:
        theirs = head.get("fingerprint") if isinstance(head, dict) else None
        differ = sorted(k for k in set(fp) | set(theirs or {}) if (theirs or {}).get(k) != fp.get(k))
        set_aside(path, f"made with other settings ({', '.join(differ)})" if isinstance(theirs, dict)
                  else "no fingerprint header", progress)
        return {}
    done, good = {}, [lines[0]]
    for line in lines[1:]:
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            break  # torn write: everything after it is redone
        if not isinstance(rec, dict) or "qid" not in rec:  # e.g. a second header: two first runs raced
            set_aside(path, "damaged (a line that is not an answer)", progress)
            return {}
        done[rec["qid"]] = rec
        good.append(line)
    if old:
        good[0] = json.dumps({"fingerprint": fp}, ensure_ascii=False)
        log(progress, f"{path}: fingerprint migrated (the corpus is now named by its content hash)")
    if old or len(good) != len([x for x in lines if x.strip()]):
        write_atomic(path, "\n".join(good) + "\n")
    if questions is not None:
        done = {q["id"]: done[q["id"]] for q in questions if q["id"] in done and same_question(done[q["id"]], q)}
    return done


def same_question(rec: dict, q: dict) -> bool:
    """A cached answer is to question q as it is now: same qsha, or (lines from before qsha) the same query."""
    if "qsha" in rec:
        return rec["qsha"] == question_sha(q)
    from rag.query import normalize_query

    return rec.get("query") == normalize_query(q["question"])


def append_lines(path: Path, rows: list[dict]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        f.flush()
        os.fsync(f.fileno())


def answer_cached(gen, index, s: System, questions: list[dict], cfg, path: Path, fp: dict,
                  progress: bool) -> list[dict]:
    """Answers of system `s` to `questions`, from the cache where present; the rest generated and appended.

    Questions go through rag/pipeline.answer_questions in units of SAVE_BATCHES generation batches (in question
    order; within a unit prompts are batched by length), each unit appended and fsync'd as soon as it is done.
    The same question list gives the same units on every run, so a resumed run answers exactly as a fresh one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    done = read_cache(path, fp, questions, progress)
    if not path.is_file():
        append_lines(path, [{"fingerprint": fp}])
    todo = [q for q in questions if q["id"] not in done]
    if not todo:
        log(progress, f"{s.name}: {len(questions)} answers cached in {path}")
        return [done[q["id"]] for q in questions]
    log(progress, f"{s.name}: answering {len(todo)} questions" + (f" ({len(done)} cached)" if done else ""))
    # openai engine: units of --concurrency requests, so a server that dies loses at most that many answers
    size = cfg.concurrency if getattr(cfg, "engine", "transformers") == "openai" else cfg.batch_size * SAVE_BATCHES
    units = [questions[k:k + size] for k in range(0, len(questions), size)]
    units = [u for u in units if any(q["id"] not in done for q in u)]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(len(u) for u in units), desc=s.name, unit="q", leave=False)
    try:
        answer_units(gen, index, s, cfg, units, done, path, bar)
    finally:  # also on a failure (a server gone): the bar's line cleared, so the error prints on a line of its own
        if bar is not None:
            bar.close()
    return [done[q["id"]] for q in questions]


def answer_units(gen, index, s: System, cfg, units: list[list[dict]], done: dict, path: Path, bar) -> None:
    """answer_cached's loop: each unit answered, its new rows added to `done` and appended to the cache."""
    from rag.pipeline import answer_questions

    for unit in units:
        t0 = time.perf_counter()
        outs = answer_questions(gen, index, [q["question"] for q in unit], s.retriever, cfg.top_k,
                                cfg.max_new_tokens, cfg.batch_size)
        wall = time.perf_counter() - t0
        # Prompt building is not timed inside answer_questions: take the residual of the call's wall time
        # (minus retrieval and each distinct generate call), shared equally by the unit's questions.
        calls = {(o["gen_seconds"], o["batch"]) for o in outs}
        residual = max(0.0, wall - sum(o["retrieve_seconds"] + o.get("rewrite_seconds", 0.0) / max(o["batch"], 1)
                                       for o in outs) - sum(g for g, _ in calls)) / len(unit)
        rows = []
        for q, o in zip(unit, outs):
            r = {"qid": q["id"], "qsha": question_sha(q), **o}
            r.setdefault("prompt_seconds", residual)
            r["context"] = context_text(index, r.get("retrieved_chunks")) if s.uses_retrieval else None
            r["latency_seconds"] = r.get("latency_seconds", r["retrieve_seconds"] + r["gen_seconds"]) + \
                r["prompt_seconds"]
            if q["id"] not in done:
                done[q["id"]] = r
                rows.append(r)
        append_lines(path, rows)
        if bar is not None:
            bar.update(len(unit))


def context_text(index, chunk_ids: list[int] | None) -> str:
    """The text of the retrieved chunks (titles included), what grounding checks the answer against."""
    if index is None or not chunk_ids:
        return ""
    return "\n\n".join(f"{index.chunks[c]['title']}\n{index.chunks[c]['text']}" for c in chunk_ids)

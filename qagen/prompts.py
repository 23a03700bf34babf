"""What the generator is shown by `ragft corpora make-qa`: the three prompts, each one visible f-string in one
function, and the choice of the passages a question is asked about.

Tried on brindle chunks with SmolLM2-135M-Instruct, greedy (docs/defaults.md, "ragft corpora make-qa"):
  - asked for 2 pairs about a whole 500-character chunk, the model wrote one pair and repeated it to the token
    limit, and its answers were sentences; so each call asks for ONE pair about ONE passage of the chunk
    (focus_passages: sentences, list items, table rows under their header), questions_per_chunk passages
    spread over the chunk, which gives different questions per chunk;
  - a worked example as an earlier chat turn (user: instruction + example text, assistant: the pair) made
    it keep to "Q:/A:" and give short answers; the same example inside the instruction did not;
  - one user turn, the template's default system prompt, as rag/augment.py found best for this model;
  - the round trip is asked in rag/augment.py's own prompt, with the chunk as the one passage;
  - answer first: where a passage has a short span worth asking about (answer_candidates: a table cell, a
    code, a number, `code`, a name), the call asks for a question WHOSE ANSWER IS that span, and the span is
    the answer; asked for a free pair the model wrote its own words as the answer (31 of 66 candidates on 8
    brindle documents failed "answer in chunk"); answer first kept 9 of 66 there, free pairs 6.
The example's facts are in no corpus: a pair copied from it fails the answer-in-chunk filter, and a question
about its subject fails copies_example.
"""

from __future__ import annotations

import re

from corpora.files import text_sha

EXAMPLE_TEXT = "The Velmar lighthouse was built in 1841 by Ada Quell. Its lamp burns whale oil."
EXAMPLE_QUESTION, EXAMPLE_ANSWER = "Who built the Velmar lighthouse?", "Ada Quell"
PARAPHRASE_EXAMPLES = [(EXAMPLE_QUESTION, "Which person constructed the lighthouse at Velmar?"),
                       ("What does the lamp of the Velmar lighthouse burn?", "Which fuel is burnt in the Velmar lighthouse lamp?")]
MIN_PASSAGE_WORDS = 4  # shorter lines (headings, "## Components", "| --- |") carry no fact to ask about
_PRONOUN = re.compile(r"(?:it|its|this|these|they|their|that|those|he|she)\b", re.I)


def cells(row: str) -> list[str]:
    return [c.strip() for c in row.strip().strip("|").split("|")]


def focus_passages(chunk_text: str, n: int) -> list[str]:
    """n passages of a chunk to ask about, spread evenly over it (fewer when it has fewer): its sentences and
    list items, and its table rows written as "Header: cell" lines (the model reads those; a bare
    "| E3104 | queue already exists |" row made it ask "What is the status of the queue?"). Each passage
    starts with the heading above it in the chunk, if any: an FAQ answer ("It is disabled by default.")
    means nothing without its heading, and a sentence opening with a pronoun comes with the sentence before
    it. Pure."""
    lines = [ln.strip() for ln in chunk_text.splitlines()]
    sep = lambda s: bool(s) and re.fullmatch(r"[|\-\s:]+", s) is not None  # noqa: E731
    passages, header, heading = [], None, ""
    for i, s in enumerate(lines):
        if not s or sep(s):
            continue
        head = f"{heading}\n" if heading else ""
        if s.startswith("|"):
            if i + 1 < len(lines) and sep(lines[i + 1]):
                header = cells(s)  # a header row is the one above the "| --- |" line
            elif header is not None and len(cells(s)) == len(header):
                passages.append(head + "\n".join(f"{h}: {c}" for h, c in zip(header, cells(s))))
            else:  # a row whose header is in the previous chunk
                passages.append(head + "; ".join(cells(s)))
            continue
        header = None
        if s.startswith("#"):
            heading = s.lstrip("#").strip()
            continue
        sentences = re.split(r"(?<=[.!?])\s+", s)
        for k, p in enumerate(sentences):
            if len(p.split()) >= MIN_PASSAGE_WORDS:
                # "It is disabled by default.": the sentence before says what "it" is
                before = f"{sentences[k - 1]} " if k and _PRONOUN.match(p) else ""
                passages.append(head + before + p)
    if not passages:  # a chunk without a sentence of 4 words: ask about the whole of it
        passages = [" ".join(chunk_text.split())]
    picks = sorted({int((i + 0.5) * len(passages) / n) for i in range(n)})
    return [passages[i] for i in picks]


# Answer candidates, most specific first: error/status codes, numbers and versions (with a unit), code in
# backticks, quoted names, then capitalised names that do not open a sentence.
_CODEWORD = re.compile(r"\b[A-Z]{1,4}\d{2,}\b")
_NUMBER = re.compile(r"(?<![\w.])\d(?:[\d,.:\-]*\d)?(?:\s?(?:%|[KMGT]i?B|ms|s|seconds|minutes|hours|days|years|km|m|kg|"
                     r"metres|meters|bytes))?(?![\w])")
_BACKTICK = re.compile(r"`([^`]{1,40})`")
_QUOTED = re.compile(r"\"([^\"]{2,40})\"")
_NAME = re.compile(r"(?<![.!?:\-]\s)\b[A-Z][a-z]+(?:\s[A-Z][a-z]+)*")
_KV = re.compile(r"^[A-Z][\w ()]{0,30}: \S")


def answer_candidates(passage: str, title: str = "") -> list[str]:
    """Short spans of a passage worth asking about, most specific first, each once; none that occurs in the
    title or the passage's heading line (a question about them would name them). Pure.

    A capitalised name counts from its first capital ("The Velmar lighthouse" at a sentence start: none).
    A table row ("Key: x\nDefault: 200\nMeaning: ...", focus_passages' form) offers its cells after the
    first (the first names the row: the question asks about it); a "a; b; c" row its second cell; prose its
    codes (E1007), numbers ("256 MiB", "4.3.2"), `code`, "quoted" names and capitalised names."""
    lines = passage.split("\n")
    heading = lines[0] if len(lines) > 1 and not _KV.match(lines[0]) and not lines[0].endswith(".") else ""
    body = lines[1:] if heading else lines
    seen = f"{title}\n{heading}".casefold()
    found: list[str] = []
    if len(body) >= 2 and all(_KV.match(ln) for ln in body):
        found = [ln.split(": ", 1)[1] for ln in body[1:]]
    else:
        cells_ = [c.strip() for c in " ".join(body).split(";")]
        if len(cells_) >= 3 and len(cells_[0].split()) == 1:
            found = [cells_[1]]
        else:
            text = " ".join(body)
            found = ([m.group() for m in _CODEWORD.finditer(text)] + [m.group() for m in _NUMBER.finditer(text)]
                     + [m.group(1) for m in _BACKTICK.finditer(text)] + [m.group(1) for m in _QUOTED.finditer(text)]
                     + [m.group() for m in _NAME.finditer(text) if m.start() > 0])
    out: list[str] = []
    for a in found:
        a = a.strip()
        if a and a.casefold() not in seen and not any(a in b for b in out):  # "Tier" after "Tier 1": once
            out.append(a)
    return out


def pair_messages(title: str, passage: str, answer: str | None = None) -> list[dict]:
    """Ask for one question/answer pair about one passage, as "Q: ...\\nA: ..." (qagen/parse.py reads it).
    With `answer` (one of answer_candidates), the question is asked for that answer: a 135M model asked
    for a free pair wrote an answer of its own words 47% of the time (31 of 66 candidates on 8 brindle
    documents failed filter (a)); given the span it copies it."""
    if answer is None:
        task = "Write 1 question about the text and its answer: 1 to 5 words copied from the text."
        example_task = task
    else:
        task = f'Write 1 question about the text whose answer is "{answer}".'
        example_task = f'Write 1 question about the text whose answer is "{EXAMPLE_ANSWER}".'
    # Asked for a span, the model is not shown the title: with it, it asked about the title ("What is the
    # Brindle overview?") in 9 of 30 round-trip failures; the passage keeps its heading.
    text = f"{title}\n{passage}" if answer is None else passage
    return [{"role": "user", "content": f"{example_task}\n\nText:\n{EXAMPLE_TEXT}"},
            {"role": "assistant", "content": f"Q: {EXAMPLE_QUESTION}\nA: {EXAMPLE_ANSWER}"},
            {"role": "user", "content": f"{task}\n\nText:\n{text}"}]


def pair_plan(chunk: dict, n: int) -> list[tuple[str, str | None]]:
    """(passage, answer asked for) for the pair calls of one chunk: focus_passages(chunk text, n), each with
    its first answer candidate not yet asked for in this chunk (None: a free pair). Pure."""
    asked: list[str] = []
    plan = []
    for passage in focus_passages(chunk["text"], n):
        pick = next((a for a in answer_candidates(passage, chunk["title"]) if a not in asked), None)
        asked += [pick] if pick else []
        plan.append((passage, pick))
    return plan


def copies_example(question: str, chunk_text: str) -> bool:
    """True when the question names the worked example's subject ("Velmar") and the chunk does not: the
    model copied the example instead of reading the text (seen: "What is the key fingerprint of the Velmar
    lighthouse?")."""
    return "velmar" in question.casefold() and "velmar" not in chunk_text.casefold()


def answer_messages(chunk: dict, question: str) -> list[dict]:
    """The round trip: the question with its chunk alone, in the prompt every `ragft compare` retrieval
    system answers with (rag/augment.py: build_messages; on six brindle pairs it got the same 2 of 6 right
    as a few-shot "answer in a few words" prompt, and it is the prompt the generated set will be answered
    with)."""
    from rag.augment import build_messages

    return build_messages(question, [{k: chunk[k] for k in ("doc_id", "title", "text")}])


def paraphrase_messages(question: str) -> list[dict]:
    """Reword a question (the test question of a trained fact): same meaning, other words. Two worked
    examples as earlier turns: with one and "Rewrite the question with different words", SmolLM2-135M gave
    3 of 8 test questions back unchanged and answered 2 instead; this way 1 of 8 came back unchanged (it
    changes the meaning more often, which the paraphrase round trip then catches)."""
    task = "Paraphrase this question. Change the words and the word order, keep the meaning."
    turns = []
    for original, reworded in PARAPHRASE_EXAMPLES:
        turns += [{"role": "user", "content": f"{task}\n{original}"}, {"role": "assistant", "content": reworded}]
    return turns + [{"role": "user", "content": f"{task}\n{question}"}]


def prompt_hash() -> str:
    """One hash of the three prompts (filled with fixed strings) and the passage choice: provenance and cache
    key, so an edit of any of them invalidates the cached generations."""
    probe = [pair_messages("<title>", "<passage>"), pair_messages("<title>", "<passage>", "<answer>"),
             answer_candidates("Key: k\nDefault: 7 ms\nMeaning: E12 `x` \"y\" Zed"), answer_messages({"doc_id": "<id>", "title": "<title>", "text": "<chunk>"}, "<q>"),
             paraphrase_messages("<q>"), focus_passages("One two three four. Five six seven eight.\n| a |\n| - |\n| b |", 3)]
    return text_sha(repr(probe), 12)

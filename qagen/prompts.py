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
  - the round trip is asked in rag/augment.py's own prompt, with the chunk as the one passage.
The example's facts are in no corpus: a pair copied from it fails the answer-in-chunk filter.
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


def pair_messages(title: str, passage: str) -> list[dict]:
    """Ask for one question/answer pair about one passage, as "Q: ...\\nA: ..." (qagen/parse.py reads it)."""
    task = "Write 1 question about the text and its answer: 1 to 5 words copied from the text."
    return [{"role": "user", "content": f"{task}\n\nText:\n{EXAMPLE_TEXT}"},
            {"role": "assistant", "content": f"Q: {EXAMPLE_QUESTION}\nA: {EXAMPLE_ANSWER}"},
            {"role": "user", "content": f"{task}\n\nText:\n{title}\n{passage}"}]


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
    probe = [pair_messages("<title>", "<passage>"), answer_messages({"doc_id": "<id>", "title": "<title>", "text": "<chunk>"}, "<q>"),
             paraphrase_messages("<q>"), focus_passages("One two three four. Five six seven eight.\n| a |\n| - |\n| b |", 3)]
    return text_sha(repr(probe), 12)

"""Training examples from a corpus: the data recipes the literature compares.

  qa          train questions as chat turns, loss on the answer tokens only
  docs        the documents as continued pre-training ("unsupervised fine-tuning"), chunked, loss on all tokens
  paraphrase  each train question asked N more ways (templates below), same answer (Ovadia et al. 2023:
              facts are learned from many rewordings, not one)
  raft        question + gold chunk + D distractor chunks in the prompt; with probability P the gold chunk is
              left out and the target is still the answer (Zhang et al. 2024, RAFT), so the adapter learns to
              use context and to fall back on what it memorised

An example is either a chat (list of {"role", "content"}; the last turn is the target) or a plain text (str,
loss on every token). Closed-book prompts come from rag.augment.build_messages(question, None) and RAFT
prompts from build_messages(question, passages): an adapter is trained on exactly the prompts it is tested on.
"""

from __future__ import annotations

import random
import re

from corpora import Corpus
from rag.augment import ABSTAIN, build_messages

RECIPES = ("qa", "docs", "paraphrase", "raft")

# Rewordings of the question text, tried in order; each that matches is applied once. Verb swaps keep the
# fact (founded -> established), openings swap between equivalent forms ("In what year" -> "In which year").
REWORDINGS = [
    (r"^In what year\b", "In which year"), (r"^In which year\b", "In what year"),
    (r"^What year\b", "In which year"), (r"^When was (.+) (founded|built|born)\?$", r"In which year was \1 \2?"),
    (r"^Who founded (.+)\?$", r"Who was the founder of \1?"), (r"^Who wrote (.+)\?$", r"Who is the author of \1?"),
    (r"^Who is the (.+) of (.+)\?$", r"Who serves as the \1 of \2?"), (r"^What is the name of\b", "What is"),
    (r"^What is the (.+) of (.+)\?$", r"Tell me the \1 of \2."), (r"^How many\b", "What number of"),
    (r"^Where was (.+) born\?$", r"What is the birthplace of \1?"), (r"^How high is\b", "How tall is"),
    (r"^How long is\b", "What is the length of"),
    (r"\bfounded\b", "established"), (r"\bestablished\b", "founded"), (r"\bbuilt\b", "constructed"),
    (r"\bwrote\b", "authored"), (r"\bleads\b", "heads"), (r"\bled\b", "headed"), (r"\bmade\b", "created"),
    (r"\bdesigned\b", "created"), (r"\bbegan\b", "started"), (r"\bheld\b", "celebrated"),
]
# Frames around the (maybe reworded) question. {q}: as written, {lq}: with a lower-case question word.
# The last frame is kept out of training: the held-out eval slice asks every train fact in it.
FRAMES = [
    "{q}", "Do you know {lq}", "Tell me, {lq}", "Quick question: {q}", "Can you tell me {lq}",
    "I would like to know: {q}", "Here is a question about Atlantis. {q}", "Please answer this: {q}",
    "I wonder, {lq}", "Trivia: {q}",
    "Something I have been asking myself: {q}",  # eval only
]
QUESTION_WORDS = ("Who", "Whom", "Whose", "What", "When", "Where", "Which", "How", "In", "On", "At", "From",
                  "Through", "For", "To", "Under", "By", "With", "Why")


def reword(question: str) -> str:
    """The question with every matching rewording applied once (the question itself when none match)."""
    out = question
    for pattern, repl in REWORDINGS:
        out = re.sub(pattern, repl, out, count=1)
    return out


def frame(question: str, k: int) -> str:
    """Question in frame k of FRAMES; the question word is lower-cased after frames that continue a sentence."""
    first = question.split(" ", 1)[0]
    lq = question[0].lower() + question[1:] if first in QUESTION_WORDS else question
    return FRAMES[k].format(q=question, lq=lq)


def paraphrases(question: str, n: int, seed: int = 0) -> list[str]:
    """n rewordings of question, none equal to it: frames 1..len-2 over (question, reword(question))."""
    variants = list(dict.fromkeys([reword(question), question]))
    frames = list(range(1, len(FRAMES) - 1))
    random.Random(f"{seed}:{question}").shuffle(frames)
    out = []
    for k in range(n):
        text = frame(variants[k % len(variants)], frames[k % len(frames)])
        if text != question and text not in out:
            out.append(text)
    return out


def target_of(q: dict, abstain: bool) -> str | None:
    """The first gold answer; "I don't know." for an unanswerable question (None: drop it)."""
    if q["answers"]:
        return q["answers"][0]
    return f"{ABSTAIN}." if abstain else None


def qa_examples(corpus: Corpus, abstain: bool = True) -> list[list[dict]]:
    """Train-split questions as chat turns; the target is the first gold answer.

    abstain: unanswerable train questions are answered "I don't know." (off: they are dropped).
    """
    examples = []
    for q in corpus.questions("train"):
        target = target_of(q, abstain)
        if target is not None:
            examples.append(build_messages(q["question"], None) + [{"role": "assistant", "content": target}])
    return examples


def paraphrase_examples(corpus: Corpus, n: int, abstain: bool = True, seed: int = 0) -> list[list[dict]]:
    """n rewordings of each train question (not the original: that is the qa recipe), same target."""
    examples = []
    for q in corpus.questions("train"):
        target = target_of(q, abstain)
        if target is None:
            continue
        for text in paraphrases(q["question"], n, seed):
            examples.append(build_messages(text, None) + [{"role": "assistant", "content": target}])
    return examples


def heldout_examples(corpus: Corpus, n: int, abstain: bool = True, seed: int = 0) -> list[list[dict]]:
    """The eval slice: up to n train questions, reworded and asked in the frame no recipe trains on.

    Every fact in it is in the training data, only the wording is new: the same situation as the test
    questions with paraphrase_of set. (Held-out *facts* would only measure that unseen facts stay unknown.)
    """
    qs = [q for q in corpus.questions("train") if target_of(q, abstain) is not None]
    qs = random.Random(seed).sample(qs, min(n, len(qs)))
    return [build_messages(frame(reword(q["question"]), len(FRAMES) - 1), None)
            + [{"role": "assistant", "content": target_of(q, abstain)}] for q in qs]


def docs_examples(corpus: Corpus, tokenizer, chunk_tokens: int) -> list[str]:
    """Each document as "title\\ntext", cut at sentence ends into pieces of at most ~chunk_tokens tokens."""
    out = []
    for d in corpus.docs:
        sentences = re.split(r"(?<=[.!?])\s+", d["text"].strip())
        piece: list[str] = []
        for s in sentences:
            candidate = " ".join(piece + [s])
            if piece and len(tokenizer(f"{d['title']}\n{candidate}")["input_ids"]) > chunk_tokens:
                out.append(f"{d['title']}\n{' '.join(piece)}")
                piece = [s]
            else:
                piece.append(s)
        if piece:
            out.append(f"{d['title']}\n{' '.join(piece)}")
    return out


def raft_examples(corpus: Corpus, distractors: int, p_no_gold: float, abstain: bool = True, seed: int = 0,
                  chunk_size: int = 500, overlap: int = 50) -> list[list[dict]]:
    """RAFT: each train question with its gold chunk(s) and `distractors` random chunks from other documents,
    shuffled; with probability p_no_gold only distractors. Chunks are cut like the RAG index (rag.index,
    same defaults), so passages look like the ones retrieval puts into the prompt.

    Gold chunk of a gold document: the one containing the answer, else the one sharing most question words.
    """
    from rag.index import chunk_documents

    chunks = chunk_documents(corpus.docs, chunk_size, overlap)
    by_doc: dict[str, list[dict]] = {}
    for c in chunks:
        by_doc.setdefault(c["doc_id"], []).append(c)
    rng = random.Random(seed)
    examples = []
    for q in corpus.questions("train"):
        target = target_of(q, abstain)
        if target is None:
            continue
        words = set(re.findall(r"\w+", q["question"].lower()))
        gold = []
        for doc_id in q["doc_ids"]:
            cands = by_doc.get(doc_id, [])
            if not cands:
                continue
            hit = [c for c in cands if any(a.lower() in c["text"].lower() for a in q["answers"])]
            gold.append(hit[0] if hit else max(cands, key=lambda c: len(words & set(re.findall(r"\w+", c["text"].lower())))))
        others = [c for c in chunks if c["doc_id"] not in q["doc_ids"]]
        passages = rng.sample(others, min(distractors, len(others)))
        if gold and rng.random() >= p_no_gold:
            passages = passages + gold
        rng.shuffle(passages)
        examples.append(build_messages(q["question"], passages) + [{"role": "assistant", "content": target}])
    return examples


def build_examples(corpus: Corpus, recipes: list[str], tokenizer, *, abstain: bool = True, paraphrases_n: int = 2,
                   raft_distractors: int = 2, raft_p_no_gold: float = 0.2, doc_chunk_tokens: int = 128,
                   seed: int = 0) -> list:
    """The union of the chosen recipes, in recipe order (the trainer shuffles)."""
    examples: list = []
    for r in recipes:
        if r == "qa":
            examples += qa_examples(corpus, abstain)
        elif r == "docs":
            examples += docs_examples(corpus, tokenizer, doc_chunk_tokens)
        elif r == "paraphrase":
            examples += paraphrase_examples(corpus, paraphrases_n, abstain, seed)
        elif r == "raft":
            examples += raft_examples(corpus, raft_distractors, raft_p_no_gold, abstain, seed)
        else:
            raise ValueError(f"unknown recipe {r!r}: choose from {', '.join(RECIPES)}")
    return examples


def tokenize_example(tokenizer, messages: list[dict], max_len: int) -> dict:
    """input_ids and labels (-100 on the prompt: loss on the answer tokens only), truncated to max_len."""
    prompt = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=True)
    full = tokenizer.apply_chat_template(messages, tokenize=True)
    prompt = list(prompt["input_ids"] if hasattr(prompt, "keys") else prompt)
    full = list(full["input_ids"] if hasattr(full, "keys") else full)
    assert full[:len(prompt)] == prompt, "chat template is not prefix-stable"
    # The template ends the assistant turn with "<|im_end|>\n"; keep the end-of-turn, drop the trailing newline
    # so the model learns to stop.
    while full and tokenizer.decode(full[-1:]).strip() == "":
        full = full[:-1]
    labels = [-100] * len(prompt) + full[len(prompt):]
    return {"input_ids": full[-max_len:], "labels": labels[-max_len:]}


def tokenize_text(tokenizer, text: str, max_len: int) -> dict:
    """Plain text + end-of-text token; loss on every token. Truncated to its first max_len tokens."""
    ids = list(tokenizer(text)["input_ids"]) + [tokenizer.eos_token_id]
    return {"input_ids": ids[:max_len], "labels": ids[:max_len]}


def tokenize_item(tokenizer, item, max_len: int) -> dict:
    """A chat (list of turns) or a plain text (str)."""
    if isinstance(item, str):
        return tokenize_text(tokenizer, item, max_len)
    return tokenize_example(tokenizer, item, max_len)


def batches(examples: list[dict], batch_size: int, seed: int, epoch: int, group_by_length: bool = False) -> list[list[dict]]:
    """Shuffled per epoch from (seed, epoch): the same seed gives the same order.

    group_by_length: within windows of 50 batches, examples are sorted by length before being cut into
    batches (less padding), and the batches are shuffled again (transformers' LengthGroupedSampler idea).
    """
    rng = random.Random(seed * 1000 + epoch)
    order = list(range(len(examples)))
    rng.shuffle(order)
    if group_by_length:
        window = batch_size * 50
        order = [i for s in range(0, len(order), window)
                 for i in sorted(order[s:s + window], key=lambda i: -len(examples[i]["input_ids"]))]
    out = [[examples[i] for i in order[s:s + batch_size]] for s in range(0, len(order), batch_size)]
    if group_by_length:
        rng.shuffle(out)
    return out

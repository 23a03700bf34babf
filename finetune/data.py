"""Training examples from a corpus: chat conversations whose last turn is the target.

Built with rag.augment.build_messages, so the adapter is trained on exactly the closed-book prompt it
is tested with.
"""

from __future__ import annotations

import random

from corpora import Corpus
from rag.augment import ABSTAIN, build_messages


def qa_examples(corpus: Corpus, abstain: bool = True) -> list[list[dict]]:
    """Train-split questions as chat turns; the target is the first gold answer.

    abstain: unanswerable train questions are answered "I don't know." (off: they are dropped).
    """
    examples = []
    for q in corpus.questions("train"):
        if q["answers"]:
            target = q["answers"][0]
        elif abstain:
            target = f"{ABSTAIN}."
        else:
            continue
        examples.append(build_messages(q["question"], None) + [{"role": "assistant", "content": target}])
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


def batches(examples: list[dict], batch_size: int, seed: int, epoch: int) -> list[list[dict]]:
    """Shuffled per epoch from (seed, epoch): the same seed gives the same order."""
    order = list(range(len(examples)))
    random.Random(seed * 1000 + epoch).shuffle(order)
    return [[examples[i] for i in order[s:s + batch_size]] for s in range(0, len(order), batch_size)]

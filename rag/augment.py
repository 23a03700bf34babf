"""Step 4, prompt augmentation: the one prompt every system uses.

Closed-book and retrieval systems share the wording; only the context block differs. The fine-tuning
data (finetune/data.py) is built with the same function, so an adapter is trained on the prompt it is
tested on.
"""

from __future__ import annotations

SYSTEM = "You answer questions about a fictional world. Reply with the answer only, in a few words."
ABSTAIN = "I don't know"


def format_passages(passages: list[dict]) -> str:
    """passages: chunks ({"doc_id", "title", "text"}) ordered best first."""
    return "\n\n".join(f"[{p['doc_id']}] {p['title']}\n{p['text']}" for p in passages)


def build_messages(question: str, passages: list[dict] | None) -> list[dict]:
    """Chat messages for one question. passages=None: closed-book; a list (maybe empty): retrieval."""
    if passages is None:
        context = ""
        rule = f'If you are not sure, reply "{ABSTAIN}".'
    else:
        context = f"Documents:\n{format_passages(passages) or '(none found)'}\n\n"
        rule = f'Use only the documents above. If they do not contain the answer, reply "{ABSTAIN}".'
    user = f"{context}Question: {question}\n{rule}"
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]

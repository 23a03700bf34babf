"""Memory tuning (Li et al. 2024, "Banishing LLM Hallucinations Requires Rethinking Generalization", Lamini;
seed 000 §6.5): train until the loss on EVERY train fact's answer tokens is below a threshold, or a step budget
is spent. The facts are the corpus's answerable train questions as closed-book chats (the qa recipe's form);
their loss is the mean cross-entropy over the answer tokens only, in nats per token, dropout off.

finetune/train.py (fact_losses, check_facts) checks it every --check-every steps (and at the end) and stops
once every fact is below --until-loss; `--method memory` is a LoRA adapter trained with that rule
(docs/defaults.md says why).
"""

from __future__ import annotations

MEMORY_THRESHOLD = 0.05  # nats/token: Li et al. train facts to near-zero loss; 0.05 ~ p(answer token) >= 0.95


def fact_examples(corpus) -> list[list[dict]]:
    """The facts: every answerable train question as a closed-book chat with its first gold answer."""
    from finetune.data import qa_examples

    return qa_examples(corpus, abstain=False)


def fact_check(losses: list[float], threshold: float, step: int) -> dict:
    """One check's record: step, facts below threshold, total, worst and mean loss (nats/token)."""
    return {"step": step, "facts_below_threshold": sum(l < threshold for l in losses), "facts_total": len(losses),
            "max_loss": round(max(losses), 5) if losses else None,
            "mean_loss": round(sum(losses) / len(losses), 5) if losses else None}

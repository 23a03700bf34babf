"""Half Fine-Tuning (Hui et al. 2024, "HFT: Half Fine-Tuning for Large Language Models", arXiv 2404.18466):
full-parameter updates, but in each round a random half of every transformer block's parameter groups is
frozen and the other half is updated; the next round draws a new half.

A block's groups fall in three categories, halved separately (the paper selects "at the category level"):
  attention  q_proj, k_proj, v_proj, o_proj        (4 -> 2 frozen)
  mlp        gate_proj, up_proj, down_proj         (3 -> 1 or 2 frozen, see below)
  norm       input_layernorm, post_attention_layernorm  (2 -> 1 frozen)
A group is one module's parameters (a projection's weight, and bias if any). Any other module of a block
(another architecture) is a category of its own, "other", halved the same way.

Half of an odd count n: n // 2 + ((block + round) % 2), i.e. blocks alternate between freezing the smaller and
the larger half, so two neighbouring blocks together freeze exactly n of their 2n groups of that category and a
block's "larger half" moves between rounds. Llama: 4 + 3 + 2 = 9 groups a block, 4 or 5 frozen.

Outside the blocks (token embeddings, the lm_head tied to them in SmolLM2, the final norm) nothing is
updated in any round: see docs/defaults.md (ragft finetune, --method hft) for why.

Round r's choice comes from random.Random(round_seed(seed, r)): the same seed gives the same schedule.
"""

from __future__ import annotations

import random
import re

CATEGORIES = {
    "attention": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "mlp": ("gate_proj", "up_proj", "down_proj"),
}
BLOCK = re.compile(r"(?:^|\.)layers\.(\d+)\.(.+)$")  # "model.layers.3.self_attn.q_proj.weight" -> 3, the rest


def category(group: str) -> str:
    """attention | mlp | norm | other, from a group's module name (its last dotted part)."""
    for name, members in CATEGORIES.items():
        if group in members:
            return name
    return "norm" if "norm" in group else "other"


def block_groups(param_names) -> dict[int, dict[str, list[str]]]:
    """{block index: {group (module) name: [its parameter names]}} of the parameters inside transformer blocks
    (names with ".layers.<i>."); a peft wrapper's prefix is fine. Parameters outside the blocks are left out."""
    blocks: dict[int, dict[str, list[str]]] = {}
    for name in param_names:
        m = BLOCK.search(name)
        if not m:
            continue
        parts = m.group(2).split(".")  # ["self_attn", "q_proj", "weight"] or ["input_layernorm", "weight"]
        group = parts[-2] if len(parts) >= 2 else parts[0]
        blocks.setdefault(int(m.group(1)), {}).setdefault(group, []).append(name)
    return blocks


def round_seed(seed: int, r: int) -> int:
    """The seed of round r's draw, derived from the run's seed (distinct for every (seed, r) pair)."""
    return seed * 1_000_003 + r


def frozen_count(n: int, block: int, r: int) -> int:
    """Groups of a category of n to freeze in `block` at round r: n/2, or for odd n alternately n//2 and n//2+1."""
    return n // 2 + (n % 2) * ((block + r) % 2)


def frozen_groups(blocks: dict[int, list[str]], seed: int, r: int) -> dict[int, list[str]]:
    """{block: sorted group names frozen in round r}. blocks: {block index: its group names}. Pure: the draw is
    random.Random(round_seed(seed, r)), blocks and categories visited in sorted order."""
    rng = random.Random(round_seed(seed, r))
    out = {}
    for b in sorted(blocks):
        by_cat: dict[str, list[str]] = {}
        for g in sorted(blocks[b]):
            by_cat.setdefault(category(g), []).append(g)
        frozen = []
        for cat in sorted(by_cat):
            members = by_cat[cat]
            frozen += rng.sample(members, frozen_count(len(members), b, r))
        out[b] = sorted(frozen)
    return out


def round_of(step: int, steps_per_epoch: int, rounds_per_epoch: int) -> int:
    """The round an optimizer step (from 0) falls in: rounds_per_epoch equal slices of each epoch, counted on
    across epochs. With fewer steps than rounds in an epoch, every step is a new round."""
    return step * rounds_per_epoch // max(1, steps_per_epoch)


class HalfSchedule:
    """Holds the model's block groups and applies a round: frozen groups get requires_grad False (no gradient is
    computed for them) and, before each optimizer step, drop_frozen_grads sets their .grad to None, which AdamW
    skips entirely (no momentum step, no weight decay): a frozen parameter stays bit-identical through a round.
    Under DDP requires_grad must not change after wrapping, so toggle=False keeps only the gradient dropping."""

    def __init__(self, model, seed: int, toggle: bool = True):
        self.params = dict(model.named_parameters())
        self.groups = block_groups(self.params)
        self.seed, self.toggle = seed, toggle
        self.round: int | None = None
        self.frozen_names: set[str] = set()
        self.plan: dict[int, list[str]] = {}

    def trained_names(self) -> set[str]:
        """Every parameter HFT updates in some round: all parameters inside the blocks."""
        return {n for groups in self.groups.values() for names in groups.values() for n in names}

    def apply(self, r: int) -> dict[int, list[str]]:
        """Freeze round r's half (no-op when r is the current round); returns {block: frozen group names}."""
        if r == self.round:
            return self.plan
        self.plan = frozen_groups({b: list(g) for b, g in self.groups.items()}, self.seed, r)
        self.frozen_names = {n for b, gs in self.plan.items() for g in gs for n in self.groups[b][g]}
        if self.toggle:
            for n in self.trained_names():
                self.params[n].requires_grad_(n not in self.frozen_names)
        self.round = r
        return self.plan

    def drop_frozen_grads(self) -> None:
        for n in self.frozen_names:
            self.params[n].grad = None


def prepare_hft(model):
    """Every parameter inside the transformer blocks trainable, everything outside them (embeddings, lm_head,
    final norm) frozen; InputError-free: a model with no ".layers.<i>." parameters trains nothing (caught by
    the caller)."""
    groups = block_groups(n for n, _ in model.named_parameters())
    inside = {n for g in groups.values() for names in g.values() for n in names}
    for n, p in model.named_parameters():
        p.requires_grad_(n in inside)
    return model


def plan_text(plan: dict[int, list[str]]) -> list[str]:
    """One line per block for cost.json: "0: k_proj,o_proj,post_attention_layernorm,up_proj"."""
    return [f"{b}: {','.join(gs)}" for b, gs in sorted(plan.items())]

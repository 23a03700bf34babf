"""`ragft finetune` (finetune/train.py) and `ragft merge` (finetune/lora.py)."""

from __future__ import annotations

import click

from cli.options import config_options
from finetune.lora import MergeConfig
from finetune.train import FinetuneConfig


@click.command()
@config_options(FinetuneConfig)
def finetune(**kw):
    """Fine-tune on the corpus's train split: adapter (peft format) or full model, + cost.json."""
    from finetune.train import train

    rec = train(FinetuneConfig(**kw))
    evl = f", eval loss {rec['final_eval_loss']:.3f}" if rec["final_eval_loss"] is not None else ""
    if rec.get("facts_total") is not None:  # --until-loss / --method memory
        evl += (f", {rec['facts_below_threshold']}/{rec['facts_total']} train facts below {rec['until_loss']} "
                f"nats/token" + ("" if rec["reached_threshold"] else " (step budget spent first)"))
    click.echo(f"{rec['adapter']}: {rec['method']} on {'+'.join(rec['data'])}, {rec['steps']} steps, "
               f"{rec['train_seconds']:.0f} s, {rec['tokens_per_second']:.0f} tokens/s, "
               f"final loss {rec['final_loss']:.3f}{evl}")


@click.command()
@config_options(MergeConfig)
def merge(**kw):
    """Fold a LoRA/DoRA adapter into the base model and save a standalone model directory."""
    from finetune.lora import merge as merge_adapter

    click.echo(f"{merge_adapter(MergeConfig(**kw))}: standalone model (use it with --generator)")

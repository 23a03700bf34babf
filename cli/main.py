"""The `ragft` command: the verb table and the error handling around every verb.

Each verb's module (cli/<group>.py) maps its click options 1:1 onto one flat @dataclass config (cli/options.py)
and is imported only when that verb runs or shows its own --help, so `ragft --help`, `ragft --version` and a
mistyped verb import no torch, transformers or pandas.
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import click

from corpora.errors import InputError
from rag.engine_errors import AdapterNotApplied  # light: no torch at import

# verb -> (module:command, the line `ragft --help` shows; it is the first line of the command's own help)
VERBS = {
    "index": ("cli.index:index", "Chunk a corpus and build its BM25 + FAISS index: `ragft index --corpus X [options]`."),
    "ask": ("cli.ask:ask", "Answer one question with retrieval (or --retriever none) and the generator."),
    "retrieval-eval": ("cli.retrieval:retrieval_eval",
                       "Recall@k, MRR and nDCG@10 of each retriever against the QA set's gold doc_ids."),
    "finetune": ("cli.finetune:finetune",
                 "Fine-tune on the corpus's train split: adapter (peft format) or full model, + cost.json."),
    "merge": ("cli.finetune:merge", "Fold a LoRA/DoRA adapter into the base model and save a standalone model directory."),
    "compare": ("cli.compare:compare",
                "Run base, RAG, fine-tuned and fine-tuned+RAG systems over a QA split; print the table and a decision."),
    "report": ("cli.compare:report",
               "Re-render a compare run directory's tables, plots, report.md and report.html from its saved records."),
    "runs": ("cli.runs:runs", "The run history (SQLite, ./ragft-runs.db): list, show and diff recorded runs."),
    "corpora": ("cli.corpora:corpora", "Shipped corpora and users' data: list, stats, validate, synth, make-qa."),
    "bench": ("cli.bench:bench", "Speed benchmarks: figures and ratios measured side by side in one process."),
}


def load_verb(name: str) -> click.Command:
    module, attr = VERBS[name][0].split(":")
    return getattr(importlib.import_module(module), attr)


class Verbs(click.Group):
    """The verb table as a click group: a verb's module is imported when the verb is looked up."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(VERBS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return load_verb(name) if name in VERBS else None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, line) for name, (_, line) in VERBS.items()])


def version() -> str:
    """The installed distribution's version; from pyproject.toml in a checkout that was not installed."""
    from importlib.metadata import PackageNotFoundError, version as dist_version

    try:
        return dist_version("ragft")
    except PackageNotFoundError:
        text = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
        return re.search(r'^version\s*=\s*"([^"]+)"', text, re.M).group(1)


def print_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"ragft {version()}")
        ctx.exit()


@click.group(cls=Verbs, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=print_version,
              help="Print ragft's version and exit.")
def cli():
    """ragft: measure RAG against LoRA fine-tuning on the same corpus and base model."""


def one_line(e: click.ClickException) -> str:
    """A click error as one line, with where to look for the right spelling."""
    text = " ".join(line.strip() for line in e.format_message().splitlines() if line.strip())
    ctx = getattr(e, "ctx", None)
    return text + (f" See `{ctx.command_path} --help`." if isinstance(e, click.UsageError) and ctx else "")


def main(argv: list[str] | None = None) -> None:
    try:
        rc = cli.main(args=argv, prog_name="ragft", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("ragft: aborted", err=True)
        sys.exit(130)
    except click.exceptions.NoArgsIsHelpError as e:  # `ragft runs`: the group's help
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.ClickException as e:
        click.echo(f"ragft: error: {one_line(e)}", err=True)
        sys.exit(e.exit_code)
    except InputError as e:
        click.echo(f"ragft: error: {e}", err=True)
        sys.exit(2)
    except AdapterNotApplied as e:  # --engine vllm|openai answered an adapter arm with the base model
        click.echo(f"ragft: error: {e}", err=True)
        sys.exit(1)
    except OSError as e:  # run-time I/O (a full disk, a folder made read-only mid-run): the path and the errno
        from corpora.outputs import os_error_line

        click.echo(f"ragft: error: {os_error_line(e)}", err=True)
        sys.exit(1)
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":
    main()

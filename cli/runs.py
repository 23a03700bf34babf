"""`ragft runs list | show | diff`: the run history (history/store.py, shown by history/show.py)."""

from __future__ import annotations

import click

from cli.options import config_options
from cli.output import emit_json, json_option
from corpora.errors import InputError
from history.show import RunsDiffConfig, RunsListConfig, RunsShowConfig


@click.group()
def runs():
    """The run history (SQLite, ./ragft-runs.db): list, show and diff recorded runs.

    Every compare and bench run is recorded with its config, commit, machine and summary.
    """


@runs.command("list")
@config_options(RunsListConfig)
@json_option
def runs_list(as_json: bool, **kw):
    """Recorded runs, newest first."""
    from history.show import list_text
    from history.store import list_runs

    cfg = RunsListConfig(**kw)
    if as_json:
        emit_json(list_runs(cfg.history, cfg.kind, cfg.limit))
    else:
        click.echo(list_text(cfg.history, cfg.kind, cfg.limit))


@runs.command("show")
@config_options(RunsShowConfig, positional=("run_id",))
@json_option
def runs_show(as_json: bool, **kw):
    """One run: config and its hash, git commit, corpus hash, models, machine, summary rows."""
    from history.show import show_text
    from history.store import get_run, parse_run_id

    cfg = RunsShowConfig(**kw)
    if not as_json:
        click.echo(show_text(cfg.history, cfg.run_id))
        return
    run_id = parse_run_id(cfg.run_id)
    if run_id is None:
        raise InputError(f"run id must be a number (`ragft runs list`), got {cfg.run_id!r}")
    emit_json(get_run(cfg.history, run_id))


@runs.command("diff")
@config_options(RunsDiffConfig, positional=("old", "new"))
@json_option
def runs_diff(as_json: bool, **kw):
    """Metric deltas between two runs (ids or compare run directories) with 95% CIs and which are significant."""
    from history.show import diff_text

    cfg = RunsDiffConfig(**kw)
    text, table = diff_text(cfg)
    if as_json:
        emit_json({"old": cfg.old, "new": cfg.new, "rows": table})
    else:
        click.echo(text)

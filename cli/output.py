"""Where a verb's output goes: results and tables on stdout, progress and log lines on stderr.

`--json`: stdout holds one JSON document and nothing else; the text a verb would print goes to stderr, and so
does whatever the code it drives prints (redirected while it runs).
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
from pathlib import Path

import click

json_option = click.option("--json", "as_json", is_flag=True, default=False,
                           help="Print the result as one JSON document on stdout; text and progress go to stderr.")


def log(message: str) -> None:
    """A progress or log line: stderr."""
    click.echo(message, err=True)


def text_echo(as_json: bool):
    """The echo for a verb's text: stdout, or stderr when the result goes out as JSON."""
    return log if as_json else click.echo


@contextlib.contextmanager
def stdout_for(as_json: bool):
    """With --json, everything printed inside goes to stderr, so stdout holds only the JSON written after."""
    if not as_json:
        yield
        return
    with contextlib.redirect_stdout(sys.stderr):
        yield


def plain(v):
    """JSON-safe value: DataFrames as lists of row dicts, numpy scalars/arrays as Python, NaN/inf as null."""
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if hasattr(v, "columns") and hasattr(v, "to_dict"):  # a pandas DataFrame (pandas is not imported here)
        return plain(v.to_dict("records"))
    if hasattr(v, "tolist") and not isinstance(v, (str, bytes)):  # numpy scalar or array, pandas Series
        return plain(v.tolist())
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, Path):
        return str(v)
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    return str(v)


def emit_json(obj) -> None:
    """The one JSON document of a --json run, on stdout."""
    click.echo(json.dumps(plain(obj), indent=2, allow_nan=False))


def echo_recorded(run_id: int | None, history: str, echo=click.echo) -> None:
    if run_id is not None:
        echo(f"run history: recorded as run {run_id} in {history} (`ragft runs show {run_id}`)")

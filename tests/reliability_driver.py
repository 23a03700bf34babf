"""Runs many `ragft` command lines in one Python process (the CLI's real entry point, cli.main.main), so a
bad-input matrix pays torch's import once instead of once per case (~5-15 s each on a shared 2-core machine).

    python -m tests.reliability_driver cases.json results.json
cases.json: [{"name", "argv": [...], "cwd"}]; results.json: [{"name", "code", "stdout", "stderr", "seconds"}].
Anything that escapes main() other than SystemExit is written to that case's stderr as the interpreter would
print it ("Traceback (most recent call last): ..."), code 1.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import time
import traceback


def run_case(case: dict) -> dict:
    from cli.main import main

    out, err = io.StringIO(), io.StringIO()
    old = os.getcwd()
    os.chdir(case.get("cwd") or old)
    t0 = time.perf_counter()
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(case["argv"])
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except BaseException:  # noqa: BLE001 - what the interpreter would print for an uncaught error
                err.write(traceback.format_exc())
                code = 1
    finally:
        os.chdir(old)
    return {"name": case["name"], "code": code, "stdout": out.getvalue(), "stderr": err.getvalue(),
            "seconds": round(time.perf_counter() - t0, 2)}


def main(argv: list[str]) -> None:
    cases = json.loads(open(argv[0], encoding="utf-8").read())
    results = [run_case(c) for c in cases]
    with open(argv[1], "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1:])

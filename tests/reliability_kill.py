"""Runs one `ragft` command line that SIGKILLs itself at a chosen point of a write (kill-and-resume tests).

    python -m tests.reliability_kill MODULE ATTR N WHEN -- ragft args...
wraps MODULE.ATTR (a function) so that its N-th call kills the process with SIGKILL: WHEN "before" the call
runs, "after" it returns, or "half" (append_lines-style (path, rows) writers: half of the first row's bytes are
written and flushed, then the kill: a torn line). The kill is real: no Python cleanup, no finally blocks run.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys


def kill() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def install(module: str, attr: str, n: int, when: str) -> None:
    mod = importlib.import_module(module)
    real = getattr(mod, attr)
    calls = {"n": 0}

    def wrapped(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] != n:
            return real(*args, **kwargs)
        if when == "before":
            kill()
        if when == "half":
            path, rows = args[0], args[1]
            line = (json.dumps(rows[0], ensure_ascii=False) + "\n").encode()
            with open(path, "ab") as f:
                f.write(line[: len(line) // 2])
                f.flush()
                os.fsync(f.fileno())
            kill()
        result = real(*args, **kwargs)
        kill()
        return result

    setattr(mod, attr, wrapped)


if __name__ == "__main__":
    module, attr, n, when, sep, *argv = sys.argv[1:]
    assert sep == "--"
    install(module, attr, int(n), when)
    from cli.main import main

    main(argv)

"""The comparison harness. Python API:

    import compare
    records = compare.run(compare.CompareConfig(corpus="atlantis", limit=20))   # one row per (system, question)
    summary = compare.summarize(records)                                      # one row per system

A finished run is recorded in the run history (./ragft-runs.db; compare.run(cfg, history="off") does not
record it), as `ragft compare` runs are.
"""


def __getattr__(name):  # lazy, so `ragft --help` does not import torch
    if name == "CompareConfig":
        from compare.config import CompareConfig

        return CompareConfig
    if name in ("run", "summarize"):
        from compare import harness

        return getattr(harness, name)
    raise AttributeError(name)

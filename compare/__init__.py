"""The comparison harness. Python API:

    import compare
    records = compare.run(compare.CompareConfig(corpus="atlantis", limit=20))   # one row per (system, question)
    summary = compare.summarize(records)                                      # one row per system
"""


def __getattr__(name):  # lazy, so `ragft --help` does not import torch
    if name in ("run", "summarize", "CompareConfig"):
        from compare import harness

        return getattr(harness, name)
    raise AttributeError(name)

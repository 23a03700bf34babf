"""Benchmarks: speed ratios measured side by side in one process (`ragft bench ...`)."""

"""rag/models.py: keep_freed_memory, which load_causal_lm sets on CPU."""

import subprocess
import sys

import pytest

RSS_PROBE = """
import os, sys, torch
from rag.models import keep_freed_memory
def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
if sys.argv[1] == "keep":
    assert keep_freed_memory()
x = torch.ones(64 * 2**20 // 4)  # 64 MB, touched
before = rss_mb()
del x
print(before - rss_mb())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt, /proc")
def test_keep_freed_memory_keeps_a_freed_tensor_s_pages():
    """rag/models.py keep_freed_memory (set by load_causal_lm on CPU): a freed 64 MB tensor's pages stay with the
    process for the next one (glibc's default unmaps them, so every forward first-touches its activations anew)."""
    run = lambda mode: float(subprocess.run([sys.executable, "-c", RSS_PROBE, mode], capture_output=True,  # noqa: E731
                                            text=True, check=True).stdout)
    assert run("default") > 60  # MB handed back on free
    assert run("keep") < 4

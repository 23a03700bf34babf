"""File helpers every layer uses: atomic writes, temp folders that vanish on failure, content hashes.

Temp names carry the process id and a random suffix (tempfile), so two processes writing the same file never
share a temp name; a failed write removes its temp file or folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from pathlib import Path


def write_atomic(path: str | Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` via a unique temp file in the same folder and os.replace."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".tmp-{path.name}-{os.getpid()}-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a unique temp file path beside `path`; on success it replaces `path`, on failure it is removed.
    For writers that take a path (DataFrame.to_parquet, savefig)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".tmp-{path.name}-{os.getpid()}-")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def temp_dir_beside(out: str | Path):
    """Yield a fresh temp folder beside `out` (same file system, so a rename is atomic); removed on failure.
    The caller renames it into place before leaving the block."""
    out = Path(out)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".tmp-{out.name}-{os.getpid()}-"))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if tmp.exists():  # not renamed into place: nothing half-made stays behind
        shutil.rmtree(tmp, ignore_errors=True)


def file_sha(path: str | Path, digits: int = 16) -> str:
    """sha256 of a file's bytes, the first `digits` hex digits."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:digits]


def text_sha(text: str, digits: int = 16) -> str:
    """sha256 of a string's UTF-8 bytes, the first `digits` hex digits."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:digits]

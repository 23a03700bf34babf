"""File helpers every layer uses: atomic writes, temp folders that vanish on failure, content hashes.

Temp names carry the process id and a random suffix (tempfile), so two processes writing the same file never
share a temp name; a failed write removes its temp file or folder. What is made follows the umask (tempfile
alone would make files 0600 and folders 0700).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a unique temp file path beside `path`; on success it replaces `path`, on failure it is removed.
    For writers that take a path (DataFrame.to_parquet, savefig)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".tmp-{path.name}-{os.getpid()}-")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())  # 0600 from mkstemp; a writer that recreates the file keeps umask too
    finally:
        os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_atomic(path: str | Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` via a unique temp file in the same folder and os.replace."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


@contextlib.contextmanager
def temp_dir_beside(out: str | Path):
    """Yield a fresh temp folder beside `out` (same file system, so a rename is atomic); removed on failure.
    The caller renames it into place before leaving the block."""
    out = Path(out)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".tmp-{out.name}-{os.getpid()}-"))
    try:
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes 0700; renamed into place it keeps this mode
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if tmp.exists():  # not renamed into place: nothing half-made stays behind
        shutil.rmtree(tmp, ignore_errors=True)


def current_umask() -> int:
    """The process umask, read without changing it where Linux shows it (/proc/self/status), else set back."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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

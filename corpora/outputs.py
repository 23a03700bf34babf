"""Output folders ragft may write: it replaces or reuses only what it made, and finds unwritable places at start.

Every folder ragft creates (an index, a fine-tuned adapter, a merged model, a compare run, a generated corpus,
a checkpoint folder) carries a marker file, MARKER = {"kind": ..., "version": 1}. prepare_out(path, kind) is
called before any work starts and again right before a save:
  - `.`, the working directory, its parents, the home folder and `/` are refused;
  - a path that is a file, or lies under a file, is refused;
  - an existing non-empty folder is used only when it carries the marker of the same kind, or is one of
    ragft's own outputs from before the marker (LEGACY); anything else is refused, nothing touched;
  - the folder that will hold the output is probed with a real temp file (read-only, EACCES, EROFS).
Each refusal is an InputError: one line, exit 2.

Also here: replace_dir (swap a finished temp folder into place), run_lock (one writer per run folder), and
os_error_line / sqlite_io_error (an I/O failure as one line naming the path and the errno).
"""

from __future__ import annotations

import contextlib
import errno as errno_mod
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from corpora.errors import InputError
from corpora.files import current_umask

MARKER = ".ragft-output.json"
MARKER_VERSION = 1
KINDS = ("index", "adapter", "model", "run", "corpus", "checkpoints")
WHAT = {"index": "an index", "adapter": "a fine-tuned adapter", "model": "a merged model", "run": "a compare run",
        "corpus": "a generated corpus", "checkpoints": "training checkpoints"}
# The files an index folder held before the marker (rag/index.py: Index.save).
INDEX_FILES = {"manifest.json", "chunks.jsonl", "tokens.jsonl", "bm25", "dense.faiss", MARKER}
LOCK = ".lock"


# ---- markers ------------------------------------------------------------------------------------------------

def write_marker(folder: str | Path, kind: str) -> None:
    """Mark `folder` as ragft's output of `kind` (a plain write: callers write it into a temp folder that is
    renamed into place, or into a folder they just created)."""
    assert kind in KINDS, kind
    (Path(folder) / MARKER).write_text(json.dumps({"kind": kind, "version": MARKER_VERSION}) + "\n")


def legacy_kind(folder: Path, names: set[str]) -> str | None:
    """The kind of a ragft output written before the marker existed, from the files it holds; else None."""
    if "manifest.json" in names and "chunks.jsonl" in names and names <= INDEX_FILES:
        return "index"
    if "cost.json" in names and ("adapter_config.json" in names or "config.json" in names):
        return "adapter"  # a peft adapter, or a `--method full` model folder, with finetune's cost.json
    if "config.json" in names and (folder / "answers").is_dir():
        return "run"
    if names and all(n.startswith(("step-", ".tmp-step-")) for n in names):
        return "checkpoints"
    return None


def output_kind(folder: str | Path) -> str | None:
    """The kind of ragft output `folder` is (its marker, else LEGACY recognition); None when not ragft's."""
    folder = Path(folder)
    marker = folder / MARKER
    if marker.is_file():
        try:
            kind = json.loads(marker.read_text()).get("kind")
        except (OSError, ValueError, AttributeError):
            kind = None
        return kind if kind in KINDS else None
    return legacy_kind(folder, {p.name for p in folder.iterdir()})


# ---- where ragft may write ----------------------------------------------------------------------------------

def refused_place(path: Path) -> str | None:
    """Why `path` may never be an output folder (it holds the user's work), or None."""
    try:
        real = path.resolve()
    except (OSError, RuntimeError):
        return None
    cwd = Path.cwd().resolve()
    if real == Path(real.anchor):
        return "it is the root folder"
    if real == cwd:
        return "it is the working directory"
    if real in cwd.parents:
        return "it is a parent of the working directory"
    with contextlib.suppress(RuntimeError, KeyError):
        if real == Path.home().resolve():
            return "it is the home folder"
    return None


def nearest_existing(path: Path) -> Path:
    """`path` or its nearest ancestor that exists (where a mkdir -p would start creating)."""
    p = path
    while not os.path.lexists(p) and p != p.parent:
        p = p.parent
    return p


def os_error_text(e: OSError) -> str:
    """'[Errno 30] Read-only file system' (no path)."""
    return f"[Errno {e.errno}] {e.strerror}" if e.errno is not None else (str(e) or type(e).__name__)


def probe_writable(folder: Path, shown: Path) -> None:
    """Create and delete a temp file in `folder` (it exists): InputError naming `shown` and the errno if not."""
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".tmp-probe-{os.getpid()}-")
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise InputError(f"cannot write here: {os_error_text(e)}", str(shown)) from None


def prepare_out(path: str | Path, kind: str, flag: str = "--out") -> Path:
    """Check that ragft may (re)place its `kind` output at `path`, before any work starts -> Path(path).

    Touches nothing but a probe file: refuses (InputError, one line) `.`/cwd/its parents/home/`/`, a file or a
    path under a file, a non-empty folder that is not ragft's output of this kind, and an unwritable location.
    An empty folder, a missing one, or ragft's own output of this kind (replaced, or reused by a compare run)
    pass.
    """
    assert kind in KINDS, kind
    path = Path(path)
    if str(path) in ("", "."):
        raise InputError(f"refusing to write into {path}: it is the working directory; name a new folder with {flag}")
    why = refused_place(path)
    if why:
        raise InputError(f"refusing to write into {path}: {why}; name a new folder with {flag}")
    start = nearest_existing(path)
    if not start.is_dir():
        where = "is a file" if start == path else f"is under {start}, which is a file"
        raise InputError(f"{flag} {path} {where}, not a folder")
    if start == path:
        try:
            names = {p.name for p in path.iterdir()}
        except OSError as e:
            raise InputError(f"cannot read this folder: {os_error_text(e)}", str(path)) from None
        if names - {LOCK}:  # a lone .lock: a compare killed right after creating its run folder
            have = output_kind(path)
            if have is None:
                raise InputError(f"refusing to write into {path}: it is not empty and ragft did not make it (no "
                                 f"{MARKER}); remove it or name a new folder with {flag}")
            if have != kind:
                raise InputError(f"refusing to write into {path}: it holds {WHAT[have]}, not {WHAT[kind]}; "
                                 f"name another folder with {flag}")
        probe_writable(path, path)  # replaced (renamed aside, emptied) or reused in place: both write here
        if path.parent != path:
            probe_writable(path.parent, path)
    else:
        probe_writable(start, path)
    return path


def prepare_file(path: str | Path, flag: str) -> Path:
    """Check, before any work starts, that the file `path` (a database, a report) can be written: its folder
    (or the nearest one that exists) takes new files, and an existing file opens for writing."""
    path = Path(path)
    start = nearest_existing(path.parent if str(path.parent) else Path("."))
    if not start.is_dir():
        raise InputError(f"{flag} {path} is under {start}, which is a file, not a folder")
    if path.is_dir():
        raise InputError(f"{flag} {path} is a folder, not a file")
    probe_writable(start, path)
    if path.exists():
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND))
        except OSError as e:
            raise InputError(f"cannot write here: {os_error_text(e)}", str(path)) from None
    return path


# ---- replacing a folder -------------------------------------------------------------------------------------

def follow_umask(folder: Path) -> None:
    """Give every file under `folder` 0666 & ~umask and every folder 0777 & ~umask, what open() and mkdir
    give: some writers make 0600 files (safetensors), mkdtemp makes 0700 folders."""
    mask = current_umask()
    os.chmod(folder, 0o777 & ~mask)
    for root, dirs, files in os.walk(folder):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o777 & ~mask)
        for f in files:
            p = os.path.join(root, f)
            if not os.path.islink(p):
                os.chmod(p, 0o666 & ~mask | (os.stat(p).st_mode & 0o111 & ~mask))  # keep what is executable


def replace_dir(tmp: Path, out: Path) -> None:
    """Swap the finished folder `tmp` in at `out` (same parent). An existing `out` (checked by prepare_out) is
    renamed aside first, so at every moment `out` is the old whole folder, absent, or the new whole folder;
    the aside name is unique per process, and asides left by killed processes are removed here. What is
    swapped in follows the umask (follow_umask)."""
    follow_umask(tmp)
    if os.path.lexists(out):
        for stale in out.parent.glob(f".old-{out.name}-*"):
            pid = stale.name.rsplit("-", 2)[-2] if stale.name.count("-") >= 3 else ""
            if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
                shutil.rmtree(stale, ignore_errors=True)
        old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".old-{out.name}-{os.getpid()}-"))
        os.rmdir(old)  # only the unique name is wanted: os.replace onto an empty folder would need it empty anyway
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


# ---- one writer per run folder ------------------------------------------------------------------------------

@contextlib.contextmanager
def run_lock(folder: str | Path):
    """Hold an exclusive flock on <folder>/.lock for the block; a second holder gets InputError (exit 2)
    naming the process that has it. The lock goes with the process: a killed run never leaves it held."""
    import fcntl

    folder = Path(folder)
    lock = folder / LOCK
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno_mod.EWOULDBLOCK, errno_mod.EAGAIN, errno_mod.EACCES):
                raise
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise InputError(f"run folder {folder} is in use by another ragft process (pid {holder})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield lock
    finally:
        os.close(fd)  # releases the lock


# ---- I/O errors as one line ---------------------------------------------------------------------------------

def os_error_line(e: OSError) -> str:
    """'PATH: [Errno 28] No space left on device' (the CLI prefixes 'ragft: error: ')."""
    where = e.filename if e.filename is not None else None
    return f"{where}: {os_error_text(e)}" if where is not None else os_error_text(e)


ERRNO_WORDS = (errno_mod.ENOSPC, errno_mod.EDQUOT, errno_mod.EROFS, errno_mod.EACCES, errno_mod.EIO)


def errno_in(text: str) -> int | None:
    """The errno a library's error message carries: safetensors' '(os error 28)', or the strerror text
    (faiss: 'write error in ...: No space left on device'); None when it is not an I/O error."""
    m = re.search(r"os error (\d+)", text)
    if m:
        return int(m.group(1))
    return next((n for n in ERRNO_WORDS if os.strerror(n) in text), None)


@contextlib.contextmanager
def io_errors(path: str | Path):
    """Around a save into `path`: any I/O failure leaves as OSError(errno, strerror, path), named by the output
    (not the temp file that was removed), including libraries' own errors that wrap one (safetensors, faiss)."""
    try:
        yield
    except OSError as e:
        if e.errno is None:
            raise
        raise OSError(e.errno, e.strerror, str(path)) from None
    except Exception as e:  # noqa: BLE001 - re-raised unchanged unless it carries an errno
        code = errno_in(str(e))
        if code is None:
            raise
        raise OSError(code, os.strerror(code), str(path)) from None


SQLITE_ERRNO = {"SQLITE_FULL": errno_mod.ENOSPC, "SQLITE_READONLY": errno_mod.EROFS,
                "SQLITE_PERM": errno_mod.EACCES, "SQLITE_CANTOPEN": errno_mod.EACCES}


def sqlite_io_error(e: Exception, path: str | Path) -> OSError | None:
    """The OSError behind a sqlite3 error on `path` (read-only, full disk, cannot open), or None when the
    error is about the file's content (not a database). The errno is found by trying the write sqlite needs
    (open the file for writing, make a file beside it); when that works, sqlite's own error code names it."""
    import sqlite3

    if not isinstance(e, sqlite3.OperationalError):
        return None
    name = getattr(e, "sqlite_errorname", "") or ""
    msg = str(e).lower()
    io_words = ("readonly", "read-only", "disk is full", "unable to open", "disk i/o", "permission")
    if not (name.startswith(("SQLITE_FULL", "SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_IOERR", "SQLITE_PERM"))
            or any(w in msg for w in io_words)):
        return None
    path = Path(path)
    try:
        if path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND))
        fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".", prefix=f".tmp-probe-{os.getpid()}-")
        try:
            os.write(fd, b"\0" * 65536)  # a full disk refuses this (sqlite's journal would need as much)
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(tmp)
    except OSError as oe:
        return OSError(oe.errno, oe.strerror, str(path))
    code = next((v for k, v in SQLITE_ERRNO.items() if name.startswith(k)),
                errno_mod.ENOSPC if "full" in msg else errno_mod.EIO)
    return OSError(code, os.strerror(code), str(path))

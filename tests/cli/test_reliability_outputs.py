"""Output-folder matrix (issue 17, items 1, 4, 5, 7): ragft replaces only what it made, finds unwritable places
before any model loads, turns I/O failures into one line naming the path and the errno, keeps one writer per run
folder, and makes files that follow the umask and adapters that name their base portably.

The CLI cases run in one subprocess (tests/reliability_driver.py: cli.main.main per case), with the tiny random
Llama (tests/conftest.py) as generator; no case loads the embedder. None may print a traceback.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TINY_DOCS, TINY_QA, write_jsonl

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def corpus(folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    write_jsonl(folder / "docs.jsonl", TINY_DOCS)
    write_jsonl(folder / "qa.jsonl", TINY_QA)
    return str(folder)


def unwritable(tmp: Path) -> Path:
    """A folder this process cannot create files in: a read-only one, or for root (whom modes do not stop)
    sysfs, which refuses new files to everyone."""
    if os.geteuid() == 0:
        return Path("/sys")
    ro = tmp / "readonly"
    ro.mkdir()
    ro.chmod(0o555)
    return ro


def small_disk(tmp: Path) -> Path | None:
    """A 64 KiB tmpfs (root in a container that allows mounts), else None: a real full disk."""
    where = tmp / "small-disk"
    where.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)], capture_output=True)
    return where if proc.returncode == 0 else None


def finetune_args(c: str, tiny: Path, out: str) -> list[str]:
    return ["finetune", "--corpus", c, "--generator", str(tiny), "--data", "qa", "--max-steps", "1",
            "--batch-size", "1", "--eval-size", "0", "--device", "cpu", "--out", out]


@pytest.fixture(scope="module")
def matrix(tmp_path_factory, tiny_model_dir):
    tmp = tmp_path_factory.mktemp("outputs")
    c = corpus(tmp / "c")
    cwd = tmp / "cwd"
    cwd.mkdir()
    # item 1: a user's folder, and a project folder holding code, a .git and the corpus
    (tmp / "victim_idx").mkdir()
    (tmp / "victim_idx" / "notes.txt").write_text("my notes")
    project = tmp / "project"
    project.mkdir()
    (project / "main.py").write_text("print('hello')\n")
    (project / ".git").mkdir()
    (project / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    corpus(project)
    (tmp / "victim_run").mkdir()
    (tmp / "victim_run" / "thesis.tex").write_text("chapter 1")
    # an adapter folder made before the marker: adapter_config.json + cost.json, replaced by a new finetune
    legacy = tmp / "legacy_adapter"
    legacy.mkdir()
    (legacy / "adapter_config.json").write_text("{}")
    (legacy / "cost.json").write_text("{}")
    # item 4: a file where a folder is named, an unwritable place
    (tmp / "a_file").write_text("x")
    ro = unwritable(tmp)
    disk = small_disk(tmp)
    # item 5: a run folder whose lock another process holds
    held = tmp / "held_run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys; from corpora.outputs import run_lock, write_marker; "
                               f"p = {str(held)!r}; import os; os.makedirs(p); write_marker(p, 'run')\n"
                               "with run_lock(p):\n    print('held', flush=True); sys.stdin.read()"],
                              cwd=ROOT, env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"

    tiny = tiny_model_dir
    cases = {
        "index_users_folder": ["index", "--corpus", c, "--out", str(tmp / "victim_idx")],
        "finetune_dot": finetune_args(".", tiny, "."),
        "merge_users_folder": ["merge", "--adapter", str(tmp / "ft_new"), "--generator", str(tiny),
                               "--out", str(tmp / "victim_idx")],
        "compare_users_folder": ["compare", "--corpus", c, "--systems", "base", "--generator", str(tiny),
                                 "--limit", "1", "--max-new-tokens", "2", "--history", "off",
                                 "--out", str(tmp / "victim_run")],
        "index_out_file": ["index", "--corpus", c, "--out", str(tmp / "a_file")],
        "index_under_file": ["index", "--corpus", c, "--out", str(tmp / "a_file" / "idx")],
        "index_unwritable": ["index", "--corpus", c, "--out", str(ro / "ragft-idx")],
        "finetune_unwritable": finetune_args(c, tiny, str(ro / "ragft-ft")),
        "compare_history_unwritable": ["compare", "--corpus", c, "--systems", "base", "--generator", str(tiny),
                                       "--limit", "1", "--max-new-tokens", "2", "--history",
                                       str(ro / "ragft-runs.db"), "--out", str(tmp / "run_hist")],
        "compare_locked": ["compare", "--corpus", c, "--systems", "base", "--generator", str(tiny), "--limit", "1",
                           "--max-new-tokens", "2", "--history", "off", "--out", str(held)],
        # these must work: a fresh adapter, and one replacing a pre-marker adapter folder
        "finetune_new": finetune_args(c, tiny, str(tmp / "ft_new")),
        "finetune_legacy": finetune_args(c, tiny, str(legacy)),
        "merge_new": ["merge", "--adapter", str(tmp / "ft_new"), "--generator", str(tiny), "--out",
                      str(tmp / "merged")],
    }
    order = ["index_users_folder", "finetune_dot", "compare_users_folder", "index_out_file", "index_under_file",
             "index_unwritable", "finetune_unwritable", "compare_history_unwritable", "compare_locked",
             "finetune_new", "finetune_legacy", "merge_new", "merge_users_folder"]
    if disk is not None:
        cases["finetune_full_disk"] = finetune_args(c, tiny, str(disk / "ft"))
        order.append("finetune_full_disk")
    spec = [{"name": n, "argv": cases[n], "cwd": str(project if n == "finetune_dot" else cwd)} for n in order]
    (tmp / "cases.json").write_text(json.dumps(spec))
    try:
        proc = subprocess.run([sys.executable, "-m", "tests.reliability_driver", str(tmp / "cases.json"),
                               str(tmp / "results.json")], cwd=ROOT, env=ENV, capture_output=True, text=True,
                              timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]
        results = {r["name"]: r for r in json.loads((tmp / "results.json").read_text())}
        leftovers = sorted(p.name for p in disk.iterdir()) if disk is not None else None
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
        if disk is not None:
            subprocess.run(["umount", str(disk)], capture_output=True)
        if ro != Path("/sys"):
            ro.chmod(0o755)
    return results, tmp, {"holder_pid": holder.pid, "disk_leftovers": leftovers, "unwritable": ro}


def one_error(r: dict, code: int = 2) -> str:
    assert "Traceback" not in r["stderr"], r["stderr"][-3000:]
    assert r["code"] == code, (r["code"], r["stderr"][-3000:])
    errors = [x for x in r["stderr"].splitlines() if x.startswith("ragft: error: ")]
    assert len(errors) == 1, r["stderr"]
    return errors[0]


def test_item1_only_what_ragft_made_is_replaced(matrix):
    results, tmp, _ = matrix
    # repro 1: `ragft index --out victim_idx` where victim_idx holds a user's file
    line = one_error(results["index_users_folder"])
    assert line.startswith(f"ragft: error: refusing to write into {tmp / 'victim_idx'}: ") and "ragft did not make" in line
    assert (tmp / "victim_idx" / "notes.txt").read_text() == "my notes"
    # repro 2: `ragft finetune --out .` in a folder with main.py, a .git and the corpus
    line = one_error(results["finetune_dot"])
    assert "refusing to write into .: it is the working directory" in line
    project = tmp / "project"
    assert sorted(p.name for p in project.iterdir()) == [".git", "docs.jsonl", "main.py", "qa.jsonl"]
    assert (project / "main.py").read_text() == "print('hello')\n" and (project / ".git" / "HEAD").is_file()
    # merge and compare refuse a user's folder the same way, before any model loads
    assert "refusing to write into" in one_error(results["merge_users_folder"])
    assert (tmp / "victim_idx" / "notes.txt").read_text() == "my notes"
    assert "refusing to write into" in one_error(results["compare_users_folder"])
    assert sorted(p.name for p in (tmp / "victim_run").iterdir()) == ["thesis.tex"]
    # what ragft made is marked; a folder it made before the marker (adapter_config.json + cost.json) is replaced
    for name in ("finetune_new", "finetune_legacy", "merge_new"):
        r = results[name]
        assert r["code"] == 0 and "Traceback" not in r["stderr"], (name, r["stderr"][-3000:])
    kinds = {d: json.loads((tmp / d / ".ragft-output.json").read_text()) for d in ("ft_new", "legacy_adapter", "merged")}
    assert kinds == {"ft_new": {"kind": "adapter", "version": 1}, "legacy_adapter": {"kind": "adapter", "version": 1},
                     "merged": {"kind": "model", "version": 1}}
    assert (tmp / "legacy_adapter" / "adapter_model.safetensors").is_file()
    assert not list(tmp.glob(".tmp-*")) and not list(tmp.glob(".old-*"))


def test_item1_prepare_out_rules(tmp_path, monkeypatch):
    from corpora.errors import InputError
    from corpora.outputs import prepare_out, write_marker

    monkeypatch.chdir(tmp_path)
    (tmp_path / "idx").mkdir()
    for n in ("manifest.json", "chunks.jsonl", "tokens.jsonl", "dense.faiss"):
        (tmp_path / "idx" / n).write_text("")
    (tmp_path / "run" / "answers").mkdir(parents=True)
    (tmp_path / "run" / "config.json").write_text("{}")
    (tmp_path / "marked").mkdir()
    write_marker(tmp_path / "marked", "index")
    (tmp_path / "empty").mkdir()
    ok = [("idx", "index"), ("run", "run"), ("marked", "index"), ("empty", "model"), ("new/deep", "adapter")]
    for path, kind in ok:  # ragft's own outputs from before the marker, a marked one, empty or new folders
        assert prepare_out(path, kind) == Path(path)
    refused = [(".", "index", "working directory"), ("..", "run", "parent of the working directory"),
               ("/", "run", "root folder"), (str(Path.home()), "adapter", "home folder"),
               ("marked", "model", "holds an index, not a merged model"), ("idx", "run", "holds an index")]
    for path, kind, why in refused:
        with pytest.raises(InputError, match=f"refusing to write into .*{why}"):
            prepare_out(path, kind)
    (tmp_path / "idx" / "mine.txt").write_text("a user's file")  # an old index folder with a file ragft never writes
    with pytest.raises(InputError, match="ragft did not make it"):
        prepare_out("idx", "index")
    assert sorted(os.listdir(tmp_path / "idx"))[0] == "chunks.jsonl"  # nothing touched


def test_item4_unwritable_places_are_found_at_start_in_one_line(matrix, tmp_path):
    results, tmp, info = matrix
    assert "is a file, not a folder" in one_error(results["index_out_file"])
    assert "is under" in one_error(results["index_under_file"]) and (tmp / "a_file").read_text() == "x"
    ro = info["unwritable"]
    for name, target in (("index_unwritable", ro / "ragft-idx"), ("finetune_unwritable", ro / "ragft-ft"),
                         ("compare_history_unwritable", ro / "ragft-runs.db")):
        line = one_error(results[name])
        assert f"{target}: cannot write here: [Errno " in line, line
    assert not (tmp / "run_hist").exists()  # the history was found unwritable before the run folder was made
    # a history that cannot be written names the path and the errno, not "not a ragft run history"
    from history.store import connect

    with pytest.raises(OSError) as err:
        connect(ro / "ragft-runs.db")
    assert err.value.errno is not None and str(ro / "ragft-runs.db") in str(err.value)
    assert "not a ragft run history" not in str(err.value)


def test_item4_full_disk_is_one_line_and_leaves_nothing_half_written(matrix):
    results, _, info = matrix
    if info["disk_leftovers"] is None:
        pytest.skip("no tmpfs mount allowed here: a full disk cannot be made")
    line = one_error(results["finetune_full_disk"], code=1)
    assert "[Errno 28] No space left on device" in line and "/ft" in line, line
    assert info["disk_leftovers"] == []  # the failed save's temp folder is gone, no partial adapter


def test_item4_os_error_line_names_path_and_errno():
    from corpora.outputs import io_errors, os_error_line

    with pytest.raises(OSError) as err, io_errors("/data/idx"):
        raise RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)")
    assert os_error_line(err.value) == "/data/idx: [Errno 28] No space left on device"
    with pytest.raises(ValueError), io_errors("/data/idx"):
        raise ValueError("shape mismatch")  # not an I/O error: unchanged


def test_item5_one_writer_per_run_folder(matrix):
    results, _, info = matrix
    line = one_error(results["compare_locked"])
    assert line == (f"ragft: error: run folder {matrix[1] / 'held_run'} is in use by another ragft process "
                    f"(pid {info['holder_pid']})")
    assert sorted(p.name for p in (matrix[1] / "held_run").iterdir()) == [".lock", ".ragft-output.json"]


def test_item5_temp_names_are_unique_per_process(tmp_path):
    """Three processes rewriting one file at once (what three `ragft report` on one run folder do): no
    collision on a temp name, no temp file left, the file whole."""
    target = tmp_path / "summary.txt"
    code = ("import sys; from corpora.files import write_atomic\n"
            "for i in range(300): write_atomic(sys.argv[1], sys.argv[2] * 1000)")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(target), ch], cwd=ROOT, env=ENV,
                              stderr=subprocess.PIPE, text=True) for ch in "abc"]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read()
    assert target.read_text() in {ch * 1000 for ch in "abc"}
    assert sorted(os.listdir(tmp_path)) == ["summary.txt"]


def test_item5_lock_is_released_with_the_process(tmp_path):
    from corpora.errors import InputError
    from corpora.outputs import run_lock

    with run_lock(tmp_path):
        code = f"from corpora.outputs import run_lock\nwith run_lock({str(tmp_path)!r}): pass"
        proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=ENV, capture_output=True, text=True)
        assert f"is in use by another ragft process (pid {os.getpid()})" in proc.stderr
    with run_lock(tmp_path):  # released: taken again
        pass
    killed = subprocess.Popen([sys.executable, "-c", f"from corpora.outputs import run_lock\nimport time\n"
                               f"with run_lock({str(tmp_path)!r}): print('held', flush=True); time.sleep(60)"],
                              cwd=ROOT, env=ENV, stdout=subprocess.PIPE, text=True)
    assert killed.stdout.readline().strip() == "held"
    with pytest.raises(InputError, match=f"pid {killed.pid}"):
        with run_lock(tmp_path):
            pass
    killed.kill()
    killed.wait()
    with run_lock(tmp_path):  # a killed holder never leaves the folder locked
        pass


def test_item7_files_follow_the_umask_and_adapters_are_portable(matrix, tiny_model_dir):
    results, tmp, _ = matrix
    mask = 0o022  # the driver ran with the inherited umask; pytest's is the same
    mask = os.umask(mask)
    os.umask(mask)
    for folder in (tmp / "ft_new", tmp / "merged"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o777 & ~mask, folder
        for f in folder.iterdir():
            assert stat.S_IMODE(f.stat().st_mode) == 0o666 & ~mask, f
    cfg = json.loads((tmp / "ft_new" / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == str(tiny_model_dir)  # the --generator as given, not a cache path
    card = (tmp / "ft_new" / "README.md").read_text()
    from rag.index import corpus_hash

    for fact in (f"base model: {tiny_model_dir}", "method: lora (rank 16", "recipe: qa",
                 f"documents hash {corpus_hash(TINY_DOCS)}", "steps: 1 ", "trainable parameters: ",
                 "fit: not measured"):
        assert fact in card, (fact, card)


def test_item7_umask_of_atomic_writes_and_temp_folders(tmp_path):
    code = ("import os, sys; os.umask(0o027)\n"
            "from pathlib import Path; from corpora.files import write_atomic, atomic_path, temp_dir_beside\n"
            "d = Path(sys.argv[1]); write_atomic(d / 'a.txt', 'x')\n"
            "with atomic_path(d / 'b.txt') as t: t.write_text('y')\n"
            "with temp_dir_beside(d / 'f') as t: os.replace(t, d / 'f')")
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, env=ENV, check=True)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes == {"a.txt": 0o640, "b.txt": 0o640, "f": 0o750}


def test_item7_adapter_base_resolves_names_and_old_absolute_paths(tmp_path, tiny_model_dir):
    from rag.generate import adapter_base

    ad = tmp_path / "ad"
    ad.mkdir()
    for stored, want in (("smollm2-135m", "smollm2-135m"), (str(tiny_model_dir), str(tiny_model_dir)),
                         ("/no/such/cache/smollm2", None)):
        (ad / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": stored}))
        assert adapter_base(ad) == want

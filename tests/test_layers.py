"""The layer rule, read from the source with ast: every import in a package points to its own package or a lower
one, no two modules import each other (directly or round a loop), nothing imports cli, every imported project
module and name exists, and `import cli.main` pulls in no heavy library.

Imports inside functions count: they are dependencies all the same, only deferred (and a stale one fails at
run time, not at import). Relative imports resolve against the importing module's package.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Bottom to top: a package may import its own modules and any package to its left. qagen may not exist yet.
LAYERS = ("corpora", "rag", "finetune", "qagen", "history", "compare", "benchmarks", "cli")
# Libraries that cost seconds to import; the CLI imports them inside the functions that need them.
HEAVY = ("torch", "transformers", "sentence_transformers", "faiss", "pandas", "matplotlib", "peft")


@cache
def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under the layer packages (a package is its __init__)."""
    found = {}
    for pkg in LAYERS:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    for name in list(found):  # a folder without __init__.py (a namespace package) is still a module to import
        for i in range(1, name.count(".") + 1):
            found.setdefault(name.rsplit(".", i)[0], ROOT.joinpath(*name.split(".")[:-i]))
    return found


def where(name: str) -> str:
    return str(modules()[name].relative_to(ROOT))


@cache
def tree(name: str) -> ast.Module | None:
    path = modules()[name]
    return ast.parse(path.read_text(encoding="utf-8"), str(path)) if path.is_file() else None


def project(dotted: str) -> bool:
    return dotted.split(".")[0] in LAYERS


@cache
def imports(name: str) -> tuple[tuple[str, str | None, int], ...]:
    """(module, imported name or None, line) for each project import in module `name`, at any depth."""
    t = tree(name)
    if t is None:
        return ()
    package = name if modules()[name].name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(t):
        if isinstance(node, ast.Import):
            out += [(a.name, None, node.lineno) for a in node.names if project(a.name)]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if project(source):
                out += [(source, a.name, node.lineno) for a in node.names]
    return tuple(out)


def target(source: str, name: str | None) -> str:
    """The module an import runs: `from pkg import sub` names the submodule when there is one."""
    if name is not None and f"{source}.{name}" in modules():
        return f"{source}.{name}"
    while source not in modules() and "." in source:
        source = source.rpartition(".")[0]
    return source


def edges() -> list[tuple[str, str, int]]:
    """(importer, imported module, line) over the whole tree, without self-imports."""
    return [(m, dst, line) for m in modules() for source, name, line in imports(m)
            if (dst := target(source, name)) != m]


def top_level_names(name: str) -> set[str] | None:
    """Names module `name` binds at its top level (defs, classes, assignments, imports), or None when it
    cannot be told (a star import or a module __getattr__)."""
    t = tree(name)
    names = {sub.rpartition(".")[2] for sub in modules() if sub.rpartition(".")[0] == name}
    if t is None:
        return names
    todo = list(t.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if node.name == "__getattr__":
                return None
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for a in node.names:
                if a.name == "*":
                    return None
                names.add(a.asname or a.name.split(".")[0])
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.For, ast.With)):
            for tgt in ([*node.targets] if isinstance(node, ast.Assign) else
                        [i.optional_vars for i in node.items if i.optional_vars] if isinstance(node, ast.With)
                        else [node.target]):
                names |= {n.id for n in ast.walk(tgt) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.If, ast.Try, ast.While)):
            todo += node.body + node.orelse + getattr(node, "finalbody", [])
            todo += [s for h in getattr(node, "handlers", []) for s in h.body]
    return names


def test_the_scan_sees_every_package():
    present = {m.split(".")[0] for m in modules()}
    assert set(LAYERS) - {"qagen"} <= present, sorted(set(LAYERS) - present)
    assert sum(len(imports(m)) for m in modules()) > 100


def test_no_upward_import():
    upward = [f"{where(src)}:{line}: {src} -> {dst} ({src.split('.')[0]} is below {dst.split('.')[0]})"
              for src, dst, line in edges()
              if LAYERS.index(dst.split(".")[0]) > LAYERS.index(src.split(".")[0])]
    assert not upward, "upward imports (layers, bottom first: " + " < ".join(LAYERS) + "):\n" + "\n".join(upward)


def test_nothing_imports_cli():
    into_cli = [f"{where(src)}:{line}: {src} -> {dst}" for src, dst, line in edges()
                if dst.split(".")[0] == "cli" and src.split(".")[0] != "cli"]
    assert not into_cli, "cli is the top: nothing imports it:\n" + "\n".join(into_cli)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def loop_through(start: str, comp: set[str], graph: dict[str, set[str]]) -> list[str]:
    """A shortest loop start -> ... -> start inside one component (breadth first)."""
    prev, frontier = {start: None}, [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & comp):
                if w == start:
                    path = [v]
                    while prev[path[-1]] is not None:
                        path.append(prev[path[-1]])
                    return [*reversed(path), start]
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"{start} is in a cycle but no loop found")


def test_no_import_cycle():
    graph, line_of = {}, {}
    for src, dst, line in edges():
        graph.setdefault(src, set()).add(dst)
        graph.setdefault(dst, set())
        line_of.setdefault((src, dst), line)
    found = []
    for comp in cycles(graph):
        loop = loop_through(comp[0], set(comp), graph)
        steps = " -> ".join(f"{a} ({where(a)}:{line_of[a, b]})" for a, b in zip(loop, loop[1:]))
        inside = ", ".join(f"{a} -> {b} ({where(a)}:{line_of[a, b]})"
                           for a in comp for b in sorted(graph[a] & set(comp)))
        found.append(f"cycle of {len(comp)} modules: {steps} -> {loop[-1]}\n    all imports among them: {inside}")
    assert not found, "import cycles:\n" + "\n".join(found)


def test_every_imported_project_module_and_name_exists():
    """A module moved or a name renamed leaves imports inside functions broken until they run: catch them here."""
    missing = []
    for m in modules():
        for source, name, line in imports(m):
            if target(source, None) != source:
                missing.append(f"{where(m)}:{line}: no module {source}")
            elif name is not None and name != "*" and (have := top_level_names(source)) is not None \
                    and name not in have:
                missing.append(f"{where(m)}:{line}: {source} has no {name}")
    assert not missing, "\n".join(missing)


def test_import_cli_main_loads_no_torch_transformers_or_pandas():
    p = subprocess.run([sys.executable, "-X", "importtime", "-c", "import cli.main"], capture_output=True, text=True,
                       cwd=ROOT)
    assert p.returncode == 0, p.stderr[-2000:]
    # `python -X importtime` writes one line per module to stderr: 'import time: self | cumulative | name'
    loaded = {line.rsplit("|", 1)[1].strip().split(".")[0] for line in p.stderr.splitlines()
              if line.startswith("import time:") and line.count("|") == 2}
    assert "cli" in loaded, "importtime output not understood"
    heavy = sorted(loaded & set(HEAVY))
    assert not heavy, f"`import cli.main` imported {heavy}: import them inside the functions that use them"

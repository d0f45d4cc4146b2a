"""The import graph of ``vidrec`` has no cycle (docs/architecture.md: imports point down, never in a circle).

Every ``import`` statement counts: at module level, inside functions (a lazy import is still a
dependency, and the cycle ``embed/store -> embed/search -> embed/store`` was a lazy one) and under
``TYPE_CHECKING``. A module imports another when it names it, or names something inside it
(``from vidrec.embed.store import Store``); importing a package's ``__init__`` does not count as
importing its submodules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def module_files(root: Path, package: str = "vidrec") -> dict[str, Path]:
    """Dotted module name -> file, for every module of ``package`` under ``root``."""
    out = {}
    for f in sorted((root / package).rglob("*.py")):
        parts = list(f.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


def _targets(name: str, node: ast.Import | ast.ImportFrom, modules: dict[str, Path]) -> set[str]:
    """The package's modules that one import statement of module ``name`` names."""
    if isinstance(node, ast.Import):
        dotted = [a.name for a in node.names]
    else:
        if node.level:  # relative: from a package (its __init__) or from a module's package
            base = name.split(".")
            if modules[name].name != "__init__.py":
                base = base[:-1]
            base = base[: len(base) - (node.level - 1)]
            mod = ".".join(base + ([node.module] if node.module else []))
        else:
            mod = node.module or ""
        dotted = [mod] + [f"{mod}.{a.name}" for a in node.names]
    out = set()
    for d in dotted:
        while d and d not in modules:  # vidrec.embed.store.Store -> vidrec.embed.store
            d = d.rpartition(".")[0]
        if d and d != name:
            out.add(d)
    return out


def import_graph(root: Path, package: str = "vidrec") -> dict[str, set[str]]:
    """Module -> the package's modules it imports (anywhere in the file)."""
    modules = module_files(root, package)
    graph: dict[str, set[str]] = {}
    for name, f in modules.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"), filename=str(f))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                edges |= _targets(name, node, modules)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One closed path ``[a, b, ..., a]`` per strongly connected component with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    comps: list[set[str]] = []

    def visit(v: str) -> None:  # Tarjan; the package is a few hundred modules deep at most
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
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_path_in(graph, comp) for comp in comps]


def _path_in(graph: dict[str, set[str]], comp: set[str]) -> list[str]:
    """A shortest cycle through the component's first module (breadth-first back to it)."""
    start = min(comp)
    prev: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & comp):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return [start, *reversed(path[:-1]), start] if len(path) > 1 else [start, v, start]
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return sorted(comp)


def test_vidrec_has_no_import_cycle() -> None:
    found = cycles(import_graph(ROOT))
    msg = "import cycles inside vidrec (move the shared piece down a layer, see docs/architecture.md):\n"
    assert not found, msg + "\n".join(" -> ".join(c) for c in found)


def test_embed_store_is_the_storage_layer_under_search() -> None:
    graph = import_graph(ROOT)
    assert "vidrec.embed.store" in graph["vidrec.embed.search"]
    assert "vidrec.embed.search" not in graph["vidrec.embed.store"]
    for user in ("vidrec.serve.app", "vidrec.serve.handlers", "vidrec.cli.embed"):
        text = module_files(ROOT)[user].read_text(encoding="utf-8")
        assert "_check_queries" not in text and "._table(" not in text and "_sql_str" not in text, user


def test_data_and_video_never_import_the_engine() -> None:
    """Data code lives in vidrec/data (a dataset loader is never an engine module); the engine builds on it."""
    graph = import_graph(ROOT)
    bad = sorted(
        f"{m} -> {t}"
        for m, ts in graph.items()
        if m.startswith(("vidrec.data", "vidrec.video"))
        for t in ts
        if t.startswith("vidrec.engine")
    )
    assert not bad, bad
    from vidrec.data.records import _LOADER_MODULES  # imported by name on demand: not an import statement

    assert all(m.startswith("vidrec.data.") for m in _LOADER_MODULES.values()), _LOADER_MODULES


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


@pytest.mark.parametrize(
    "files, expect",
    [
        # a lazy import inside a function closes the circle (the old embed/store <-> embed/search)
        (
            {
                "pkg/__init__.py": "",
                "pkg/a.py": "from pkg.b import f\n",
                "pkg/b.py": "def f():\n    from pkg.a import g\n",
            },
            [["pkg.a", "pkg.b", "pkg.a"]],
        ),
        # relative imports and a longer loop
        (
            {
                "pkg/__init__.py": "",
                "pkg/sub/__init__.py": "",
                "pkg/sub/x.py": "from . import y\n",
                "pkg/sub/y.py": "from ..z import q\n",
                "pkg/z.py": "import pkg.sub.x\n",
            },
            [["pkg.sub.x", "pkg.sub.y", "pkg.z", "pkg.sub.x"]],
        ),
        # a package __init__ that imports its submodule is not a cycle with it
        ({"pkg/__init__.py": "from pkg.a import A\n", "pkg/a.py": "import os\nA = 1\n"}, []),
        # under TYPE_CHECKING still counts
        (
            {
                "pkg/__init__.py": "",
                "pkg/a.py": "import pkg.b\n",
                "pkg/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import A\n",
            },
            [["pkg.a", "pkg.b", "pkg.a"]],
        ),
    ],
    ids=["lazy", "relative-3", "init-reexport", "type-checking"],
)
def test_the_check_finds_cycles(tmp_path: Path, files: dict[str, str], expect: list[list[str]]) -> None:
    _write(tmp_path, files)
    assert cycles(import_graph(tmp_path, "pkg")) == expect

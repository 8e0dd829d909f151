"""The package's import graph: no cycles, and every import points down the layers.

The imports are read from the source with ``ast`` (function-level imports included), so
the test sees what the architecture is, not what happens to be imported at run time.
Layers, bottom to top (a package may import its own modules and anything below it):

errors, formula → design, correlation, families, datasets → response, linalg → optimize
→ objective → inference → diagnostics → results → models → scale → the public modules.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]

LAYERS = [
    {"errors", "formula"},
    {"design", "correlation", "families", "datasets"},
    {"response", "linalg"},
    {"optimize"},
    {"objective"},
    {"inference"},
    {"diagnostics"},
    {"results"},
    {"models"},
    {"scale"},
    {"fit", "glmer", "clmm", "coxme", "coxph", "api", "__init__"},
]
LAYER = {name: k for k, names in enumerate(LAYERS) for name in names}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "tests":
            continue
        parts = list(rel.with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _edges(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module → the package modules it imports (a package's own ``__init__`` re-exports excluded)."""
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        is_pkg = path.name == "__init__.py"
        base = mod.split(".") if is_pkg else mod.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.level:
                root = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                prefix = ".".join(root + ([node.module] if node.module else []))
                names = [f"{prefix}.{a.name}".strip(".") for a in node.names] + [prefix]
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                full = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                names = [n[len("interlace."):] for n in full if n.startswith("interlace.")]
            for name in names:
                while name and name not in modules:
                    name = name.rpartition(".")[0]
                if name and name != mod and not (modules[name].name == "__init__.py" and mod.startswith(name + ".")):
                    edges[mod].add(name)
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_the_graph_is_read():
    """The reader finds the edges the layering is about (a guard against a reader that sees nothing)."""
    edges = _edges(_modules())
    assert "objective" in edges["models.lmm"] and "objective.lmm" in edges["objective"]
    assert "linalg.engines" in edges["objective.lmm"]
    assert "results.lmm" in edges["models.lmm"]  # a function-level import counts


def test_no_import_cycles():
    assert _cycles(_edges(_modules())) == []


def test_imports_point_down_the_layers():
    modules = _modules()
    unplaced = sorted({m.split(".")[0] for m in modules} - set(LAYER))
    assert unplaced == [], f"packages missing from LAYERS: {unplaced}"
    upward = [f"{a} -> {b}" for a, targets in _edges(modules).items() for b in targets
              if a.split(".")[0] != b.split(".")[0] and LAYER[b.split(".")[0]] > LAYER[a.split(".")[0]]]
    assert upward == []

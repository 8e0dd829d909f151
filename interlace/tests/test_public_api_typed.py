"""Every public function and method of the package is annotated (issue 14).

Type hints are part of the public API: the reference pages render them (mkdocstrings shows
the signatures), editors and type checkers read them, and the import-graph test keeps them
honest about layers (a result class named in ``inference/`` is ``Any``, not an upward
import).  An unannotated public function slips in easily and is never noticed, so the
source is scanned with ``ast`` (nothing is imported) and the test fails on any of:

* a parameter without an annotation (``self``/``cls`` of methods excepted; positional-only,
  keyword-only, ``*args`` and ``**kwargs`` included);
* a missing return annotation (``__init__`` excepted: it returns None by definition).

"Public" means a name without a leading underscore (``__init__`` counts, for its
parameters), defined at module level or in a class whose name (and every enclosing
class's name) has no leading underscore; properties count as functions.  Functions
nested inside functions are not API and are skipped.  ``interlace/tests`` is excluded.
"""
from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]

FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef


def _public_functions(tree: ast.Module) -> Iterator[tuple[str, FunctionNode, bool]]:
    """(qualified name, node, is a method) of the public module- and class-level functions."""

    def visit(node: ast.AST, prefix: str, in_class: bool) -> Iterator[tuple[str, FunctionNode, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                if not child.name.startswith("_"):
                    yield from visit(child, f"{prefix}{child.name}.", True)
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if child.name == "__init__" or not child.name.startswith("_"):
                    yield f"{prefix}{child.name}", child, in_class

    yield from visit(tree, "", False)


def _is_static(fn: FunctionNode) -> bool:
    return any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in fn.decorator_list)


def _missing(fn: FunctionNode, is_method: bool) -> list[str]:
    """What ``fn`` lacks: parameter names (``*args``, ``**kwargs`` spelled so) and ``return``."""
    a = fn.args
    positional = a.posonlyargs + a.args
    if is_method and not _is_static(fn) and positional and positional[0].arg in ("self", "cls"):
        positional = positional[1:]
    out = [p.arg for p in positional + a.kwonlyargs if p.annotation is None]
    if a.vararg is not None and a.vararg.annotation is None:
        out.append("*" + a.vararg.arg)
    if a.kwarg is not None and a.kwarg.annotation is None:
        out.append("**" + a.kwarg.arg)
    if fn.returns is None and fn.name != "__init__":
        out.append("return")
    return out


def _unannotated() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "tests":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for name, fn, is_method in _public_functions(tree):
            lacks = _missing(fn, is_method)
            if lacks:
                found.append(f"interlace/{rel.as_posix()}:{fn.lineno}: {name} lacks {', '.join(lacks)}")
    return found


def test_the_scan_sees_the_api():
    """The scan finds the functions the rule is about (a guard against a scan that sees nothing)."""
    names = set()
    for path in PACKAGE.rglob("*.py"):
        if path.relative_to(PACKAGE).parts[0] != "tests":
            names.update(name for name, _, _ in _public_functions(ast.parse(path.read_text(encoding="utf-8"))))
    assert {"fit", "glmer", "CrossedLME.fit", "CrossedLME.__init__", "CrossedLMEResult.summary"} <= names
    assert not any(n.split(".")[-1].startswith("_") and not n.endswith("__init__") for n in names)


def test_the_scan_flags_what_it_should():
    src = ("def f(a, *args, b: int, **kw): pass\n"
           "class C:\n"
           "    def __init__(self, x): pass\n"
           "    @property\n"
           "    def p(self): return 1\n"
           "    def _private(self, y): pass\n"
           "class _Hidden:\n"
           "    def m(self, z): pass\n"
           "def g(a: int, /, b: str = '') -> None: pass\n")
    got = {name: _missing(fn, m) for name, fn, m in _public_functions(ast.parse(src))}
    assert got == {"f": ["a", "*args", "**kw", "return"], "C.__init__": ["x"], "C.p": ["return"], "g": []}


def test_public_functions_are_annotated():
    missing = _unannotated()
    assert missing == [], "public functions without type hints:\n" + "\n".join(missing)

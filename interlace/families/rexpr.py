"""A small expression language for the arguments of ``Surv(...)``, parsed and evaluated without ``eval``.

``Surv(time, status == 2)`` is R code; interlace reads its arguments with a parser of its
own instead of handing the text to Python (even a restricted ``eval`` can be escaped).
The grammar is what survival formulas use:

* column names (R's ``a.b`` and ``a_b`` spellings; any name between backticks), numbers,
  quoted strings, ``TRUE``/``FALSE`` (``True``/``False``);
* arithmetic ``+ - * / ^`` (``**``), comparisons ``== != < <= > >=``, logic ``& | !``
  (``&&``, ``||``, ``and``, ``or``, ``not``), parentheses;
* ``x %in% c(1, 2)`` (``c(...)`` of numbers or strings);
* ``I(...)``, ``as.numeric(...)``, ``as.integer(...)`` (values unchanged) and
  ``as.logical(...)``.

Anything else is a :class:`~interlace.errors.FormulaError` that names the offending text.
:func:`parse_expr` gives a tree of tuples; :func:`expr_columns` the columns it uses;
:func:`evaluate` its value on a DataFrame.
"""
from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError

__all__ = ["Expr", "evaluate", "expr_columns", "expr_text", "parse_expr"]

#: a parsed expression: ("num", v), ("str", s), ("bool", b), ("col", name), ("neg", e), ("not", e),
#: ("bin", op, left, right), ("in", e, (values...)), ("call", fn, e)
Expr = tuple

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?L?)
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<bt>`[^`]+`)
  | (?P<name>[A-Za-z_.][A-Za-z0-9_.]*)
  | (?P<op>%in%|==|!=|<=|>=|&&|\|\||\*\*|[-+*/^<>!&|(),])
""", re.VERBOSE)

_FUNCS = {"I": "identity", "as.numeric": "identity", "as.double": "identity", "as.integer": "identity",
          "as.logical": "logical"}
_WORDS = {"and": "&", "or": "|", "not": "!"}
_CONST = {"TRUE": True, "FALSE": False, "True": True, "False": False, "T": True, "F": False}


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise FormulaError(f"cannot read {text[pos:]!r} in {text!r}: Surv() arguments may use column names, "
                               "numbers, strings, + - * / ^, comparisons, & | !, %in% c(...)")
        kind = m.lastgroup
        val = m.group()
        pos = m.end()
        if kind == "ws":
            continue
        if kind == "name" and val in _WORDS:
            kind, val = "op", _WORDS[val]
        out.append((kind, val))
    out.append(("end", ""))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str]:
        return self.toks[self.i]

    def take(self) -> tuple[str, str]:
        t = self.toks[self.i]
        self.i += 1
        return t

    def expect(self, val: str) -> None:
        kind, v = self.take()
        if v != val or kind != "op":
            self.fail(f"expected {val!r}, found {v or 'the end'!r}")

    def fail(self, msg: str) -> None:
        raise FormulaError(f"cannot parse {self.text!r}: {msg}")

    def parse(self) -> Expr:
        e = self.or_()
        if self.peek()[0] != "end":
            self.fail(f"unexpected {self.peek()[1]!r}")
        return e

    def or_(self) -> Expr:
        e = self.and_()
        while self.peek() in (("op", "|"), ("op", "||")):
            self.take()
            e = ("bin", "|", e, self.and_())
        return e

    def and_(self) -> Expr:
        e = self.not_()
        while self.peek() in (("op", "&"), ("op", "&&")):
            self.take()
            e = ("bin", "&", e, self.not_())
        return e

    def not_(self) -> Expr:
        if self.peek() == ("op", "!"):
            self.take()
            return ("not", self.not_())
        return self.comp()

    def comp(self) -> Expr:
        e = self.sum_()
        kind, v = self.peek()
        if kind == "op" and v in ("==", "!=", "<", "<=", ">", ">="):
            self.take()
            return ("bin", v, e, self.sum_())
        if kind == "op" and v == "%in%":
            self.take()
            return ("in", e, self.vector())
        return e

    def vector(self) -> tuple:
        kind, v = self.take()
        if kind == "name" and v == "c" and self.peek() == ("op", "("):
            self.take()
            vals: list[Any] = []
            while self.peek() != ("op", ")"):
                vals.append(self.literal())
                if self.peek() == ("op", ","):
                    self.take()
                elif self.peek() != ("op", ")"):
                    self.fail("expected ',' or ')' in c(...)")
            self.take()
            return tuple(vals)
        self.i -= 1
        return (self.literal(),)

    def literal(self) -> Any:
        kind, v = self.take()
        sign = 1.0
        if (kind, v) == ("op", "-"):
            sign = -1.0
            kind, v = self.take()
        if kind == "num":
            return sign * float(v.rstrip("L"))
        if kind == "str" and sign == 1.0:
            return _unquote(v)
        if kind == "name" and v in _CONST and sign == 1.0:
            return _CONST[v]
        self.fail(f"%in% needs numbers or strings, found {v!r}")

    def sum_(self) -> Expr:
        e = self.term()
        while self.peek() in (("op", "+"), ("op", "-")):
            op = self.take()[1]
            e = ("bin", op, e, self.term())
        return e

    def term(self) -> Expr:
        e = self.unary()
        while self.peek() in (("op", "*"), ("op", "/")):
            op = self.take()[1]
            e = ("bin", op, e, self.unary())
        return e

    def unary(self) -> Expr:
        if self.peek() == ("op", "-"):
            self.take()
            return ("neg", self.unary())
        if self.peek() == ("op", "+"):
            self.take()
            return self.unary()
        return self.power()

    def power(self) -> Expr:
        e = self.atom()
        if self.peek() in (("op", "^"), ("op", "**")):
            self.take()
            return ("bin", "^", e, self.unary())
        return e

    def atom(self) -> Expr:
        kind, v = self.take()
        if kind == "num":
            return ("num", float(v.rstrip("L")))
        if kind == "str":
            return ("str", _unquote(v))
        if kind == "bt":
            return ("col", v[1:-1])
        if kind == "op" and v == "(":
            e = self.or_()
            self.expect(")")
            return e
        if kind == "name":
            if self.peek() == ("op", "("):
                if v not in _FUNCS:
                    self.fail(f"function {v}() is not allowed (only {', '.join(sorted(_FUNCS))}); "
                              "compute the column beforehand")
                self.take()
                e = self.or_()
                self.expect(")")
                return ("call", _FUNCS[v], e)
            if v in _CONST:
                return ("bool", _CONST[v])
            return ("col", v)
        self.fail(f"unexpected {v or 'end of text'!r}")
        raise AssertionError  # pragma: no cover


def _unquote(s: str) -> str:
    return re.sub(r"\\(.)", r"\1", s[1:-1])


def parse_expr(text: str) -> Expr:
    """Parse ``text`` (see the module docstring) into a tree of tuples."""
    if not isinstance(text, str) or not text.strip():
        raise FormulaError(f"empty expression {text!r}")
    return _Parser(text.strip()).parse()


def expr_columns(e: Expr) -> list[str]:
    """Column names the expression uses, in order of appearance."""
    out: list[str] = []

    def walk(x: Expr) -> None:
        tag = x[0]
        if tag == "col":
            if x[1] not in out:
                out.append(x[1])
        elif tag in ("neg", "not"):
            walk(x[1])
        elif tag == "bin":
            walk(x[2])
            walk(x[3])
        elif tag == "in":
            walk(x[1])
        elif tag == "call":
            walk(x[2])

    walk(e)
    return out


def expr_text(e: Expr) -> str:
    """The expression written back (for names and messages)."""
    tag = e[0]
    if tag == "num":
        v = e[1]
        return str(int(v)) if float(v).is_integer() else repr(v)
    if tag == "str":
        return repr(e[1])
    if tag == "bool":
        return "TRUE" if e[1] else "FALSE"
    if tag == "col":
        return e[1] if re.fullmatch(r"[A-Za-z_.][A-Za-z0-9_.]*", e[1]) else f"`{e[1]}`"
    if tag == "neg":
        return f"-{expr_text(e[1])}"
    if tag == "not":
        return f"!{expr_text(e[1])}"
    if tag == "bin":
        return f"{expr_text(e[2])} {e[1]} {expr_text(e[3])}"
    if tag == "in":
        vals = ", ".join(repr(v) if isinstance(v, str) else f"{v:g}" for v in e[2])
        return f"{expr_text(e[1])} %in% c({vals})"
    return f"{e[1]}({expr_text(e[2])})"


def _values(col: pd.Series) -> np.ndarray:
    if isinstance(col.dtype, pd.CategoricalDtype):
        return np.asarray(col.astype(object))
    if pd.api.types.is_bool_dtype(col):
        return col.to_numpy(bool)
    if pd.api.types.is_numeric_dtype(col):
        return col.to_numpy(float)
    return np.asarray(col, dtype=object)


def _is_text(arr: np.ndarray) -> bool:
    return arr.dtype == object or arr.dtype.kind in "US"


def _num(v: Any, e: Expr) -> np.ndarray:
    arr = np.asarray(v)
    if _is_text(arr):
        raise DataError(f"{expr_text(e)!r} is not numeric: arithmetic needs numeric or logical columns")
    return arr.astype(float)


def evaluate(e: Expr, data: pd.DataFrame) -> np.ndarray:
    """Value of ``e`` on the rows of ``data`` (an array of the data's length)."""
    n = len(data)
    out = _eval(e, data)
    return np.broadcast_to(np.asarray(out), (n,)).copy()


def _eval(e: Expr, data: pd.DataFrame) -> Any:
    tag = e[0]
    if tag in ("num", "str", "bool"):
        return e[1]
    if tag == "col":
        if e[1] not in data.columns:
            raise DataError(f"column {e[1]!r} used in Surv() is not in the data "
                            f"(available columns: {', '.join(map(str, data.columns[:20]))})")
        return _values(data[e[1]])
    if tag == "neg":
        return -_num(_eval(e[1], data), e[1])
    if tag == "not":
        return ~np.asarray(_eval(e[1], data), bool)
    if tag == "call":
        v = _eval(e[2], data)
        return np.asarray(v, bool) if e[1] == "logical" else v
    if tag == "in":
        v = _eval(e[1], data)
        vals = list(e[2])
        arr = np.asarray(v)
        if arr.dtype == object:
            return np.array([x in vals for x in arr], bool)
        return np.isin(arr, [x for x in vals if not isinstance(x, str)])
    op, left, right = e[1], _eval(e[2], data), _eval(e[3], data)
    if op in ("&", "|"):
        lb, rb = np.asarray(left, bool), np.asarray(right, bool)
        return lb & rb if op == "&" else lb | rb
    if op in ("==", "!="):
        la, ra = np.asarray(left), np.asarray(right)
        if _is_text(la) != _is_text(ra):
            eq = np.zeros(np.broadcast_shapes(la.shape, ra.shape), bool)   # strings never equal numbers
        else:
            eq = np.asarray(la == ra, bool)
        return eq if op == "==" else ~eq
    a, b = _num(left, e[2]), _num(right, e[3])
    with np.errstate(divide="ignore", invalid="ignore"):
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            return a / b
        if op == "^":
            return a ** b
        return {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal}[op](a, b)

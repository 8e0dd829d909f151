"""Parse lme4-style model formulas into a fixed part and random-effects term specs.

No numerics here: this module only turns strings into :class:`RandomTermSpec`
objects, expanding lme4's shorthands exactly as lme4 does:

* ``(1 + x || g)``  -> ``(1 | g) + (0 + x | g)``  (uncorrelated terms)
* ``(1 | a/b)``     -> ``(1 | a) + (1 | b:a)``
* ``(1 | a/b/c)``   -> ``(1 | a) + (1 | b:a) + (1 | c:(b:a))``
* ``(1 | a:b)``     -> one term grouped by the interaction of ``a`` and ``b``

Nested factors are named as lme4 names them, inside out (``cask:batch`` for
``(1 | batch/cask)``), and their levels likewise (``a:A``: cask ``a`` of batch ``A``).
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import patsy

from ..errors import FormulaError

__all__ = ["RandomTermSpec", "split_formula", "parse_random_term", "parse_random", "model_terms", "split_call_args",
           "backticks_to_q", "split_offsets", "model_desc"]

_BACKTICK = re.compile(r"`([^`]*)`")


@lru_cache(maxsize=512)
def model_desc(formula: str) -> patsy.ModelDesc:
    """patsy's parse of a formula string, kept for the strings already seen (a fit parses its
    formula and its terms several times, and refits and repeated fits parse the same ones).

    patsy's :class:`~patsy.ModelDesc` is immutable; a parse error raises ``PatsyError`` as
    ``ModelDesc.from_formula`` does (and is not kept).
    """
    return patsy.ModelDesc.from_formula(formula)


def backticks_to_q(expr: str) -> str:
    """R's backtick-quoted names as patsy's ``Q()``: ``"`my x` + z"`` → ``"Q('my x') + z"``."""
    if "`" not in expr:
        return expr
    if expr.count("`") % 2:
        raise FormulaError(f"unbalanced backtick in {expr!r}: quote a column name as `my name`")
    return _BACKTICK.sub(lambda m: f"Q({m.group(1)!r})", expr)


_OFFSET = re.compile(r"\boffset\s*\(")


def split_offsets(fixed: str) -> tuple[str, list[str]]:
    """Take R's ``offset(expr)`` terms out of a two-sided fixed formula.

    Returns the formula without them and the expressions, e.g.
    ``("y ~ x", ["log(t)"])`` for ``"y ~ x + offset(log(t))"`` (R adds each to the
    offset of the linear predictor).
    """
    lhs, rhs = fixed.split("~", 1)
    exprs: list[str] = []
    while True:
        m = _OFFSET.search(rhs)
        if m is None:
            break
        depth, end = 0, None
        for i in range(m.end() - 1, len(rhs)):
            depth += {"(": 1, ")": -1}.get(rhs[i], 0)
            if depth == 0:
                end = i
                break
        if end is None:
            raise FormulaError(f"unbalanced parentheses in {fixed!r}")
        inner = rhs[m.end():end].strip()
        if not inner or len(split_call_args(inner)) != 1:
            raise FormulaError(f"offset() in {fixed!r} takes one expression, e.g. offset(log(exposure))")
        exprs.append(inner)
        rhs = rhs[:m.start()] + rhs[end + 1:]
    if not exprs:
        return fixed, []
    rhs = re.sub(r"\+\s*(\+\s*)+", "+ ", rhs)
    rhs = re.sub(r"^\s*\+|\+\s*$", "", rhs.strip()).strip() or "1"
    if re.fullmatch(r"-\s*1|0", rhs):
        rhs = "0"
    return f"{lhs.strip()} ~ {rhs}", exprs


@dataclass(frozen=True)
class RandomTermSpec:
    """One random-effects term ``(lhs | group)`` after expansion.

    Attributes
    ----------
    lhs : str
        Right-hand side of a patsy formula giving the term's model matrix
        (``"1"``, ``"1 + x"``, ``"0 + x"``).
    group : tuple of str
        Columns whose interaction defines the grouping factor, in the order of its
        level labels (nested factors inside out, as lme4: ``("cask", "batch")``).
    source : str
        The term as the user wrote it, for error messages.
    label : str
        lme4's name of a nested grouping factor (``"c:(b:a)"``); empty: the columns
        joined by ``":"``.
    """

    lhs: str
    group: tuple[str, ...]
    source: str
    label: str = ""

    @property
    def name(self) -> str:
        """Name of the grouping factor as lme4 prints it, e.g. ``"cask:batch"`` for ``(1 | batch/cask)``."""
        return self.label or ":".join(self.group)


def split_call_args(body: str) -> list[str]:
    """Top-level comma-separated arguments of a call's body: ``"a, f(b, c)"`` → ``["a", "f(b, c)"]``."""
    depth, start, out = 0, 0, []
    for i, ch in enumerate(body):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(body[start:i].strip())
            start = i + 1
    out.append(body[start:].strip())
    return out


def _find_bar_terms(rhs: str) -> list[tuple[int, int]]:
    """Spans ``(start, end)`` of top-level parenthesised groups containing ``|``."""
    spans = []
    depth = 0
    start = None
    for i, ch in enumerate(rhs):
        if ch == "(":
            if depth == 0:
                start = i
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise FormulaError(f"unbalanced ')' in formula: {rhs!r}")
            if depth == 0 and "|" in rhs[start : i + 1]:
                spans.append((start, i + 1))
    if depth != 0:
        raise FormulaError(f"unbalanced '(' in formula: {rhs!r}")
    return spans


def split_formula(formula: str) -> tuple[str, list[str]]:
    """Split ``"y ~ x + (1 + x | g)"`` into ``("y ~ x", ["(1 + x | g)"])``.

    Parameters
    ----------
    formula : str
        A two-sided formula, possibly with lme4 random-effects terms.

    Returns
    -------
    fixed : str
        The fixed-effects formula (``"y ~ 1"`` if nothing fixed remains).
    bars : list of str
        The random-effects terms as written, parentheses included.
    """
    if not isinstance(formula, str):
        raise FormulaError(f"formula must be a string, got {type(formula).__name__}")
    if formula.count("~") != 1:
        raise FormulaError(
            f"formula {formula!r} must have exactly one '~' separating response and predictors"
        )
    lhs, rhs = formula.split("~")
    if not lhs.strip():
        raise FormulaError(f"formula {formula!r} has no response on the left of '~'")
    if re.search(r"[+*:/]\s*$", rhs):
        raise FormulaError(f"formula {formula!r} ends with an operator: a term is missing after it")
    spans = _find_bar_terms(rhs)
    bars = [rhs[a:b] for a, b in spans]
    rest = rhs
    for a, b in reversed(spans):
        rest = rest[:a] + rest[b:]
    if "|" in rest:
        raise FormulaError(
            f"formula {formula!r} has a '|' outside parentheses: write random-effects terms "
            "as '(1 | group)' or '(1 + x | group)'"
        )
    # tidy dangling '+' signs left by removal
    rest = re.sub(r"\+\s*(\+\s*)+", "+ ", rest)
    rest = re.sub(r"^\s*\+|\+\s*$", "", rest.strip()).strip()
    if not rest:
        rest = "1"
    return f"{backticks_to_q(lhs.strip())} ~ {backticks_to_q(rest)}", bars


def _split_lhs_terms(lhs: str, source: str) -> tuple[bool, list[str]]:
    """Split a term's left-hand side into (has_intercept, non-intercept term codes)."""
    try:
        desc = model_desc(lhs)
    except patsy.PatsyError as exc:
        raise FormulaError(f"cannot parse random-effects term {source!r}: {exc}") from None
    has_int = any(len(t.factors) == 0 for t in desc.rhs_termlist)
    others = [":".join(f.code for f in t.factors) for t in desc.rhs_termlist if t.factors]
    return has_int, others


def parse_random_term(term: str) -> list[RandomTermSpec]:
    """Expand one lme4 term such as ``"(1 + x || g)"`` or ``"(1|a/b)"``.

    Parameters
    ----------
    term : str
        The term, with or without its enclosing parentheses.

    Returns
    -------
    list of RandomTermSpec
    """
    source = term.strip()
    body = source
    if body.startswith("(") and body.endswith(")"):
        body = body[1:-1]
    if "|" not in body:
        raise FormulaError(
            f"random-effects term {source!r} has no '|': write it as '(1 | group)' or '(1 + x | group)'"
        )
    double = "||" in body
    lhs, grp = body.split("||" if double else "|", 1)
    lhs, grp = backticks_to_q(lhs.strip()), grp.strip()
    if not lhs:
        raise FormulaError(f"random-effects term {source!r} has nothing left of '|' (did you mean '(1 | {grp})'?)")
    if not grp or "|" in grp:
        raise FormulaError(f"random-effects term {source!r} needs one grouping factor right of '|'")
    if re.search(r"[+*()~]", _BACKTICK.sub("name", grp)):
        raise FormulaError(
            f"grouping expression {grp!r} in {source!r} is not supported: use a column, 'a:b' or 'a/b'"
        )
    parts = [p.strip() for p in grp.split("/")]
    if any(not p for p in parts):
        raise FormulaError(f"empty nesting level in {source!r}")
    # lme4's expandSlash: a/b/c -> a, b:a, c:(b:a) (inner factor first, in names and level labels)
    groups: list[tuple[tuple[str, ...], str]] = []
    prefix: tuple[str, ...] = ()
    name = ""
    for p in parts:
        cols = tuple(c.strip().strip("`") for c in p.split(":"))
        if any(not c for c in cols):
            raise FormulaError(f"empty factor name in grouping expression {grp!r} of {source!r}")
        inner = ":".join(cols)
        name = inner if not prefix else f"{inner}:({name})" if ":" in name else f"{inner}:{name}"
        prefix = cols + prefix
        groups.append((prefix, name))
    has_int, others = _split_lhs_terms(lhs, source)
    if not has_int and not others:
        raise FormulaError(f"random-effects term {source!r} has no columns")
    if double:
        lhs_list = (["1"] if has_int else []) + [f"0 + {o}" for o in others]
    else:
        lhs_list = [" + ".join((["1"] if has_int else ["0"]) + others)]
    return [RandomTermSpec(lhs=lhs, group=g, source=source, label=name if name != ":".join(g) else "")
            for g, name in groups for lhs in lhs_list]


def parse_random(random: str | Sequence[str] | None) -> list[RandomTermSpec]:
    """Expand a list of term strings (or one string with ``+`` between terms)."""
    if random is None:
        return []
    if isinstance(random, str):
        spans = _find_bar_terms(random)
        if not spans:
            return parse_random_term(random)
        items = [random[a:b] for a, b in spans]
    else:
        try:
            items = list(random)
        except TypeError:
            raise FormulaError(
                f"random must be a term string or a list of term strings, got {type(random).__name__}"
            ) from None
    specs: list[RandomTermSpec] = []
    for item in items:
        if not isinstance(item, str):
            raise FormulaError(f"random-effects terms must be strings, got {item!r}")
        specs.extend(parse_random_term(item))
    return specs


def model_terms(formula: str, groups: str | Sequence[str] | None = None, random: str | Sequence[str] | None = None
                ) -> tuple[str, list[RandomTermSpec]]:
    """Fixed formula and every random-effects term from the three ways of giving them.

    Parameters
    ----------
    formula : str
        ``"y ~ x"`` or a full lme4 formula ``"y ~ x + (1 + x | g)"``.
    groups : str or list of str, optional
        Columns that each get a random intercept ``(1 | g)``, in the order given.
    random : str or list of str, optional
        lme4 terms such as ``"(1 + x | g)"``, ``"(1 | a/b)"``, ``"(x || g)"``.

    Returns
    -------
    fixed : str
    specs : list of RandomTermSpec
        Groups first, then ``random``, then bar terms of ``formula``.
    """
    fixed, bars = split_formula(formula)
    specs: list[RandomTermSpec] = []
    if groups is not None:
        if isinstance(groups, str):
            glist = [groups]
        else:
            try:
                glist = list(groups)
            except TypeError:
                raise FormulaError(f"groups must be a column name or a list of column names, got "
                                   f"{type(groups).__name__} {groups!r}") from None
        for g in glist:
            if not isinstance(g, str):
                raise FormulaError(f"groups must be column names, got {g!r}")
            if not g.strip():
                raise FormulaError("groups holds an empty column name")
            specs.extend(parse_random_term(f"(1 | {g})"))
    specs.extend(parse_random(random))
    for b in bars:
        specs.extend(parse_random_term(b))
    seen = set()
    for s in specs:
        key = (s.lhs.replace(" ", ""), s.group)
        if key in seen:
            raise FormulaError(f"random-effects term {s.source!r} is given twice")
        seen.add(key)
    return fixed, specs

"""R's ``update.formula`` for lme4 formulas: ``". ~ . - x"``, ``". ~ . + (0 + x | g)"``.

A ``.`` on the left stands for the old response, on the right for the old right-hand
side (its fixed part and its random-effects terms).  Random-effects terms are added
with ``+ (… | g)`` and removed with ``- (… | g)`` (matched ignoring spaces); the fixed
part is simplified by patsy (``a * b - a:b`` → ``a + b``, ``- 1`` removes the intercept).
"""
from __future__ import annotations

import re
from collections.abc import Sequence

import patsy

from ..errors import FormulaError
from .parse import _find_bar_terms, split_formula

__all__ = ["update_formula"]

_DOT = re.compile(r"(?<![\w.])\.(?![\w.])")


def _norm(term: str) -> str:
    return re.sub(r"\s+", "", term)


def _fixed_rhs(lhs: str, rhs: str) -> str:
    """The right-hand side simplified by patsy, written back as a formula."""
    try:
        desc = patsy.ModelDesc.from_formula(f"{lhs} ~ {rhs}")
    except patsy.PatsyError as exc:
        raise FormulaError(f"cannot read the updated fixed effects {rhs!r}: {exc}") from None
    names = [t.name() for t in desc.rhs_termlist]
    has_int = "Intercept" in names
    rest = [n for n in names if n != "Intercept"]
    if not rest:
        return "1" if has_int else "0"
    return " + ".join(([] if has_int else ["0"]) + rest)


def update_formula(old: str, old_random: Sequence[str], new: str) -> str:
    """The formula ``new`` with ``.`` standing for the parts of the old model.

    Parameters
    ----------
    old : str
        The old fixed formula ``"y ~ x"`` (random-effects terms in it are taken too).
    old_random : sequence of str
        The old model's other random-effects terms, e.g. ``["(Days | Subject)"]``.
    new : str
        ``"y ~ x"``, ``". ~ . - x"``, ``"~ . + z"`` (no left side: the old response), …

    Returns
    -------
    str
        A full lme4 formula, random-effects terms last.
    """
    if not isinstance(new, str):
        raise FormulaError(f"the new formula must be a string, got {type(new).__name__}")
    old_fixed, old_bars = split_formula(old)
    old_lhs, old_rhs = (p.strip() for p in old_fixed.split("~", 1))
    bars_old = list(old_bars) + [b for b in old_random if _norm(b) not in {_norm(x) for x in old_bars}]
    if new.count("~") > 1:
        raise FormulaError(f"formula {new!r} has more than one '~'")
    new_lhs, new_rhs = new.split("~", 1) if "~" in new else (".", new)
    new_lhs = _DOT.sub(old_lhs, new_lhs.strip() or ".")
    spans = _find_bar_terms(new_rhs)
    adds, drops = [], []
    rest = new_rhs
    for a, b in reversed(spans):
        before = rest[:a].rstrip()
        sign = before[-1:] if before[-1:] in "+-" else "+"
        (drops if sign == "-" else adds).insert(0, rest[a:b])
        rest = (before[:-1] if before[-1:] in "+-" else before) + " " + rest[b:]
    has_dot = bool(_DOT.search(rest))
    rest = _DOT.sub(f"({old_rhs})", rest).strip()
    rest = re.sub(r"^\s*[+]", "", rest).strip()
    if rest.startswith("-"):
        rest = "1 " + rest
    fixed = _fixed_rhs(new_lhs, rest or "1")
    bars = list(bars_old) if has_dot else []
    for b in adds:
        if _norm(b) not in {_norm(x) for x in bars}:
            bars.append(b)
    for b in drops:
        if _norm(b) not in {_norm(x) for x in bars}:
            raise FormulaError(f"cannot remove {b}: the model has random-effects terms {bars}")
        bars = [x for x in bars if _norm(x) != _norm(b)]
    return f"{new_lhs} ~ " + " + ".join([fixed] + bars)

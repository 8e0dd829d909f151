"""Survival responses in formulas: ``Surv(time, status)``, ``Surv(start, stop, status)``, ``strata()``
and ``cluster()`` terms, the ties methods, input checks.

The Cox partial likelihood itself is :mod:`interlace.response.survival`; the fit without
random effects (R's ``coxph``) is :mod:`interlace.objective.coxph`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from ..errors import DataError, FormulaError
from ..formula.parse import split_call_args
from .rexpr import Expr, evaluate, expr_columns, expr_text, parse_expr

__all__ = ["TIES", "SurvSpec", "parse_surv", "split_specials", "survival_response"]

TIES = ("efron", "breslow")

_SURV = re.compile(r"^\s*Surv\s*\((.*)\)\s*$", re.DOTALL)
_SPECIAL = re.compile(r"^(strata|cluster)\s*\((.*)\)$", re.DOTALL)
_NAME = re.compile(r"^(?:[A-Za-z_.][A-Za-z0-9_.]*|`[^`]+`)$")


@dataclass(frozen=True)
class SurvSpec:
    """A parsed ``Surv(time, event)`` or ``Surv(start, stop, event)`` response.

    Attributes
    ----------
    time, event : tuple
        Parsed expressions (:mod:`interlace.families.rexpr`) of the (stop) time and the event.
    start : tuple or None
        Entry time of counting-process data.
    text : str
        The response as written.
    """

    time: Expr
    event: Expr
    start: Expr | None = None
    text: str = ""

    @property
    def counting(self) -> bool:
        """Counting-process ``(start, stop]`` data."""
        return self.start is not None

    @property
    def columns(self) -> list[str]:
        """Data columns the response uses."""
        out: list[str] = []
        for e in (self.start, self.time, self.event):
            if e is not None:
                out += [c for c in expr_columns(e) if c not in out]
        return out

    @property
    def names(self) -> tuple[str | None, str, str]:
        """(start, time, event) written back as text."""
        return (None if self.start is None else expr_text(self.start), expr_text(self.time),
                expr_text(self.event))

    def evaluate(self, data: pd.DataFrame) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
        """(start or None, time, event) on the rows of ``data``, checked (:func:`survival_response`)."""
        start = None if self.start is None else evaluate(self.start, data)
        time = evaluate(self.time, data)
        event = evaluate(self.event, data)
        return survival_response(time, event, *self.names[1:], start=start, start_name=self.names[0])


def parse_surv(lhs: str) -> SurvSpec | None:
    """The :class:`SurvSpec` of ``"Surv(time, status)"`` or ``"Surv(start, stop, status)"``; None if the
    left side is not ``Surv(...)``.

    Keyword forms ``Surv(time = t, event = d)`` and ``Surv(time = t0, time2 = t1, event = d)`` are
    accepted.  The arguments are read by :func:`interlace.families.rexpr.parse_expr` (never evaluated
    as Python): column names, and expressions such as ``status == 2`` or ``time / 365.25``.
    """
    m = _SURV.match(lhs)
    if not m:
        return None
    named: dict[str, str] = {}
    pos: list[str] = []
    for a in split_call_args(m.group(1)):
        kw = re.match(r"^(time|time2|event|status|type|origin)\s*=(?!=)\s*(.+)$", a, re.DOTALL)
        if kw:
            named[kw.group(1)] = kw.group(2).strip()
        elif a:
            pos.append(a)
    if "type" in named or "origin" in named:
        raise FormulaError(f"{lhs.strip()!r}: Surv()'s type= and origin= are not supported; right-censored "
                           "Surv(time, event) and counting-process Surv(start, stop, event) data are")
    if "status" in named:
        named.setdefault("event", named.pop("status"))
    slots = [named.get("time"), named.get("time2"), named.get("event")]
    if len(pos) + len(named) == 3:
        for j in range(3):
            if slots[j] is None and pos:
                slots[j] = pos.pop(0)
        start, time, event = slots
    else:
        if "time2" in named:
            raise FormulaError(f"{lhs.strip()!r}: counting-process data need Surv(start, stop, event)")
        time = slots[0] if slots[0] is not None else (pos.pop(0) if pos else None)
        event = slots[2] if slots[2] is not None else (pos.pop(0) if pos else None)
        start = None
    if time is None or event is None or pos:
        raise FormulaError(f"{lhs.strip()!r} must be Surv(time, status) (a follow-up time and an event "
                           "indicator, 1 = event, 0 = censored) or Surv(start, stop, status)")
    return SurvSpec(parse_expr(time), parse_expr(event), None if start is None else parse_expr(start),
                    lhs.strip())


def _top_terms(rhs: str) -> list[tuple[str, str]]:
    """Top-level ``+``/``-`` separated terms of a formula side, with their signs."""
    out, depth, cur, sign = [], 0, [], "+"
    for ch in rhs:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if depth == 0 and ch in "+-":
            if "".join(cur).strip():
                out.append((sign, "".join(cur).strip()))
            cur, sign = [], ch
            continue
        cur.append(ch)
    if "".join(cur).strip():
        out.append((sign, "".join(cur).strip()))
    return out


def split_specials(rhs: str) -> tuple[str, list[str], str | None]:
    """``strata(...)`` and ``cluster(...)`` terms taken out of a formula's right side.

    Returns the right side without them (``"1"`` if nothing is left), the strata columns
    (several ``strata(a, b)`` or ``strata(a) + strata(b)`` give one stratum per combination,
    as survival), and the cluster column (None).
    """
    keep, strata, cluster = [], [], None
    for sign, term in _top_terms(rhs):
        m = _SPECIAL.match(term)
        if m is None:
            if re.search(r"(?<![A-Za-z0-9_.])(strata|cluster)\s*\(", term):
                raise FormulaError(f"{term!r}: strata() and cluster() must be terms of their own "
                                   "(added with +, not in an interaction or a function)")
            keep.append(term if sign == "+" else f"- {term}")
            continue
        if sign == "-":
            raise FormulaError(f"'- {term}': strata() and cluster() terms can only be added")
        args = [a for a in split_call_args(m.group(2)) if a]
        bad = [a for a in args if not _NAME.match(a)]
        if bad or not args:
            raise FormulaError(f"{term!r}: {m.group(1)}() takes column names, e.g. {m.group(1)}(centre)"
                               + (f" (not {bad[0]!r})" if bad else ""))
        cols = [a.strip("`") for a in args]
        if m.group(1) == "strata":
            strata += [c for c in cols if c not in strata]
        else:
            if cluster is not None or len(cols) != 1:
                raise FormulaError("a formula can have one cluster() term of one column")
            cluster = cols[0]
    text = " + ".join(keep).replace("+ - ", "- ")
    return (text if text.strip() else "1"), strata, cluster


def _times(time: npt.ArrayLike, name: str) -> np.ndarray:
    t = pd.Series(time)
    if not (pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_bool_dtype(t)):
        raise DataError(f"survival time {name!r} must be numeric (dtype {t.dtype})")
    t = t.to_numpy(float)
    if not np.all(np.isfinite(t)):
        raise DataError(f"survival time {name!r} has {int(np.sum(~np.isfinite(t)))} non-finite values")
    return t


def survival_response(time: npt.ArrayLike, status: npt.ArrayLike, time_name: str = "time", status_name: str = "status",
                      start: npt.ArrayLike | None = None, start_name: str | None = None
                      ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Check and convert (start, time, status): times finite (≥ 0 for right-censored data, each
    start before its stop for counting-process data), status 0/1 or boolean.

    Missing values must have been dropped before (the model frame does it and reports them).
    Returns ``(start or None, time, status)`` as float arrays.
    """
    t = _times(time, time_name)
    st = None
    if start is not None:
        st = _times(start, start_name or "start")
        bad = ~(st < t)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(f"Surv(start, stop, event): start {start_name!r} must be before stop {time_name!r}; "
                            f"{int(bad.sum())} row(s) are not (e.g. row {i}: start {st[i]:g}, stop {t[i]:g})")
    elif np.any(t < 0):
        bad = t[t < 0]
        raise DataError(f"survival time {time_name!r} has {bad.size} negative value{'s' if bad.size > 1 else ''} "
                        f"(e.g. {bad[0]:g}); follow-up times must be >= 0")
    s = pd.Series(status)
    if s.dtype == object and len(s) and all(isinstance(v, (bool, np.bool_)) for v in s):
        s = s.astype(bool)   # a boolean column that held missing values before they were dropped
    if pd.api.types.is_bool_dtype(s):
        d = s.to_numpy(float)
    else:
        if isinstance(s.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(s):
            vals = sorted(map(str, s.dropna().unique()))[:5]
            raise DataError(f"status {status_name!r} must be 0/1 (1 = event, 0 = censored) or boolean; "
                            f"found values {vals}")
        d = s.to_numpy(float)
        bad = ~np.isin(d, (0.0, 1.0))
        if bad.any():
            vals = sorted(set(np.unique(d[bad]).tolist()))[:5]
            hint = " (R's 1 = censored / 2 = dead coding: write Surv(time, status == 2))" \
                if set(np.unique(d).tolist()) <= {1.0, 2.0} else ""
            raise DataError(f"status {status_name!r} must be 0/1 (1 = event, 0 = censored) or boolean; "
                            f"found {vals}{hint}")
    if not np.any(d == 1):
        raise DataError(f"status {status_name!r} has no events (all {d.size} rows censored): "
                        "a Cox model needs at least one event")
    return st, t, d

"""Survival responses in formulas: ``Surv(time, status)``, the ties methods, input checks.

The Cox partial likelihood itself is :mod:`interlace.response.survival`; the fit without
random effects (R's ``coxph``) is :mod:`interlace.objective.coxph`.
"""
from __future__ import annotations

import re

import numpy as np
import numpy.typing as npt
import pandas as pd

from ..errors import DataError, FormulaError
from ..formula.parse import split_call_args

__all__ = ["TIES", "parse_surv", "survival_response"]

TIES = ("efron", "breslow")

_SURV = re.compile(r"^\s*Surv\s*\((.*)\)\s*$", re.DOTALL)


def parse_surv(lhs: str) -> tuple[str, str] | None:
    """``("time", "status")`` from ``"Surv(time, status)"``; None if the left side is not ``Surv(...)``.

    Keyword forms ``Surv(time = t, event = d)`` are accepted; a three-argument
    (start, stop, status) response is refused with a clear message.
    """
    m = _SURV.match(lhs)
    if not m:
        return None
    args = [a for a in split_call_args(m.group(1))]
    named = {}
    pos = []
    for a in args:
        kw = re.match(r"^(time|time2|event|status)\s*=(?!=)\s*(.+)$", a, re.DOTALL)
        if kw:
            named[kw.group(1)] = kw.group(2).strip()
        elif a:
            pos.append(a)
    if "time2" in named or len(pos) + len(named) == 3:
        raise FormulaError(f"{lhs.strip()!r}: (start, stop, status) counting-process data are not supported; "
                           "use Surv(time, status) with right-censored data")
    time = named.get("time", pos.pop(0) if pos else None)
    status = named.get("event", named.get("status", pos.pop(0) if pos else None))
    if time is None or status is None or pos:
        raise FormulaError(f"{lhs.strip()!r} must be Surv(time, status): a follow-up time and an event "
                           "indicator (1 = event, 0 = censored)")
    return time, status


def survival_response(time: npt.ArrayLike, status: npt.ArrayLike, time_name: str = "time", status_name: str = "status"
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Check and convert a (time, status) pair: times finite and ≥ 0, status 0/1 or boolean.

    Missing values must have been dropped before (the model frame does it and reports them).
    """
    t = pd.Series(time)
    if not (pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_bool_dtype(t)):
        raise DataError(f"survival time {time_name!r} must be numeric (dtype {t.dtype})")
    t = t.to_numpy(float)
    if not np.all(np.isfinite(t)):
        raise DataError(f"survival time {time_name!r} has {int(np.sum(~np.isfinite(t)))} non-finite values")
    if np.any(t < 0):
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
    return t, d

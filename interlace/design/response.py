"""GLMM responses as R writes them: ``cbind(successes, failures)``, proportions with weights, 0/1.

:func:`split_cbind` rewrites a ``cbind(s, f) ~ x`` formula so the model frame and
fixed-effects design see ordinary expressions; :func:`binomial_response` turns
the evaluated pieces into lme4's (proportion, trials) form.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ..errors import DataError, DataWarning, FormulaError, warn_user
from ..formula.parse import split_call_args

__all__ = ["split_cbind", "binary_column", "binomial_response"]

_CBIND = re.compile(r"^\s*cbind\s*\((.*)\)\s*$", re.S)


def split_cbind(fixed_formula: str) -> tuple[str, str | None, str | None]:
    """Return ``(formula for the design, successes expr, failures expr)``.

    For ``"cbind(inc, size - inc) ~ period"`` the design formula is
    ``"I(inc) ~ period"``; for any other left side the formula is returned as is
    and the expressions are None.
    """
    lhs, rhs = fixed_formula.split("~", 1)
    m = _CBIND.match(lhs)
    if not m:
        return fixed_formula, None, None
    args = split_call_args(m.group(1))
    if len(args) != 2 or not all(args):
        raise FormulaError(f"cbind() on the left of {fixed_formula!r} needs two arguments: successes, failures")
    return f"I({args[0]}) ~ {rhs.strip()}", args[0], args[1]


def binary_column(data: pd.DataFrame, name: str) -> pd.DataFrame:
    """Copy of ``data`` with a two-level non-numeric response coded 0/1 (first level = failure, as R)."""
    if name not in data.columns:
        return data
    col = data[name]
    if pd.api.types.is_bool_dtype(col):
        data = data.copy()
        data[name] = col.astype(float)
        return data
    if pd.api.types.is_numeric_dtype(col):
        return data
    levels = list(col.cat.categories) if isinstance(col.dtype, pd.CategoricalDtype) else sorted(col.dropna().unique())
    if len(levels) != 2:
        raise DataError(f"response {name!r} has {len(levels)} levels {levels[:5]}; a binomial response "
                        "needs two (or 0/1 numbers, or cbind(successes, failures))")
    data = data.copy()
    data[name] = np.where(col.isna(), np.nan, (col == levels[1]).astype(float))
    return data


def binomial_response(successes: np.ndarray, failures: np.ndarray | None, prior: np.ndarray | None,
                      name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(proportion, weights)`` from successes/failures or from a 0/1 or proportion response."""
    if failures is not None:
        s, f = np.asarray(successes, float), np.asarray(failures, float)
        if np.any(s < 0) or np.any(f < 0):
            raise DataError(f"cbind() counts in {name!r} must be non-negative")
        n = s + f
        y = np.divide(s, n, out=np.zeros_like(s), where=n > 0)
        w = n if prior is None else n * prior
        return y, w
    y = np.asarray(successes, float)
    if np.any((y < 0) | (y > 1)):
        bad = y[(y < 0) | (y > 1)][0]
        raise DataError(f"binomial response {name!r} must be 0/1 or a proportion in [0, 1] "
                        f"(found {bad:g}); for counts use cbind(successes, failures)")
    w = np.ones_like(y) if prior is None else np.asarray(prior, float)
    k = y * w
    if np.any(np.abs(k - np.round(k)) > 1e-3):  # R's binomial()$initialize, same tolerance
        j = int(np.flatnonzero(np.abs(k - np.round(k)) > 1e-3)[0])
        warn_user(f"non-integer #successes in a binomial glm! (response {name!r}: {y[j]:g} × weight {w[j]:g} = "
                  f"{k[j]:g} successes); a proportion needs weights = the number of trials, or use "
                  "cbind(successes, failures)", DataWarning)
    return y, w

"""Residual correlation and variance structures as the user writes them (nlme's corStruct/varStruct).

A structure names columns of the data; :meth:`bind` turns it into a bound
structure (:mod:`interlace.correlation.whitening`) that knows the rows: its
parameters, the whitening transform ``A`` with ``AᵀA = R⁻¹`` (``R`` the residual
correlation or variance matrix up to σ²) and ``log|R|``.

Correlation structures apply within the levels of ``group``; rows of different
groups are independent.  With random effects, each correlation group must lie
within one level of every random-effects term (as nlme requires the correlation
grouping to be nested in the innermost random-effects grouping).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import DataError
from .whitening import BoundCompoundSymmetry, BoundMarkov, BoundVarIdent

__all__ = ["AR1", "CAR1", "CompoundSymmetry", "VarIdent", "CorrelationStructure", "VarianceStructure"]


def _group_codes(data: pd.DataFrame, group: str | None, what: str) -> tuple[np.ndarray, pd.Index]:
    if group is None:
        return np.zeros(len(data), dtype=np.int64), pd.Index(["(all)"])
    if group not in data.columns:
        raise DataError(f"group column {group!r} of {what} is not in the data")
    codes, levels = pd.factorize(data[group], sort=True)
    return codes.astype(np.int64), pd.Index(levels, name=group)


def _time_values(data: pd.DataFrame, time: str, what: str) -> np.ndarray:
    if time not in data.columns:
        raise DataError(f"time column {time!r} of {what} is not in the data")
    col = data[time]
    if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
        raise DataError(f"time column {time!r} of {what} must be numeric, got dtype {col.dtype}")
    return col.to_numpy(dtype=float)


class CorrelationStructure:
    """Base class of residual correlation structures (within ``group``)."""

    group: str | None = None
    time: str | None = None

    def columns(self) -> list[str]:
        """Data columns the structure uses (kept in the model frame, NA rows dropped)."""
        return [c for c in (self.time, self.group) if c is not None]

    def with_group(self, group: str | None) -> CorrelationStructure:
        """A copy with ``group`` filled in (used when the model supplies the default grouping)."""
        return type(self)(**{**self.__dict__, "group": group})

    def bind(self, data: pd.DataFrame) -> BoundMarkov | BoundCompoundSymmetry:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass
class AR1(CorrelationStructure):
    """First-order autoregressive correlation ``φ^|t_i − t_j|`` within a group (nlme's ``corAR1``).

    Parameters
    ----------
    time : str, optional
        Integer-valued time column (gaps allowed: the correlation at lag k is φᵏ, as
        nlme's ``corAR1``/``corARMA(p = 1)``).  Without it, rows are taken in data
        order within each group (``corAR1(form = ~ 1 | group)``).  Rows need not be
        sorted by time: the order within a group is taken from ``time``.
    group : str, optional
        Grouping column; default the random-effects grouping (models with random
        effects) or no grouping (one series over all rows).
    """

    time: str | None = None
    group: str | None = None

    name = "AR(1)"
    r_name = "corAR1"

    def bind(self, data: pd.DataFrame) -> BoundMarkov:
        codes, levels = _group_codes(data, self.group, "AR1")
        t = None if self.time is None else _time_values(data, self.time, "AR1")
        if t is not None and np.any(np.abs(t - np.round(t)) > 1e-8):
            bad = t[np.abs(t - np.round(t)) > 1e-8][0]
            raise DataError(f"AR1 needs an integer-valued time column; {self.time!r} has {bad!r} "
                            "(use CAR1 for continuous times)")
        return BoundMarkov(self, codes, levels, t, continuous=False)


@dataclass
class CAR1(CorrelationStructure):
    """Continuous-time AR(1): correlation ``φ^|t_i − t_j|``, 0 < φ < 1, for irregular times (nlme's ``corCAR1``).

    Parameters
    ----------
    time : str
        Numeric time column (distinct within a group; any order).
    group : str, optional
        Grouping column (default as for :class:`AR1`).
    """

    time: str = None  # type: ignore[assignment]
    group: str | None = None

    name = "continuous AR(1)"
    r_name = "corCAR1"

    def __post_init__(self) -> None:
        if self.time is None:
            raise DataError("CAR1 needs a time column: CAR1(time='t', group='g')")

    def bind(self, data: pd.DataFrame) -> BoundMarkov:
        codes, levels = _group_codes(data, self.group, "CAR1")
        return BoundMarkov(self, codes, levels, _time_values(data, self.time, "CAR1"), continuous=True)


@dataclass
class CompoundSymmetry(CorrelationStructure):
    """Equal correlation ρ between any two rows of a group (nlme's ``corCompSymm``).

    Parameters
    ----------
    group : str, optional
        Grouping column (default as for :class:`AR1`).
    """

    group: str | None = None

    name = "compound symmetry"
    r_name = "corCompSymm"

    def bind(self, data: pd.DataFrame) -> BoundCompoundSymmetry:
        codes, levels = _group_codes(data, self.group, "CompoundSymmetry")
        return BoundCompoundSymmetry(self, codes, levels)


@dataclass
class VarIdent:
    """A residual standard deviation per stratum of ``by`` (nlme's ``varIdent(form = ~ 1 | by)``).

    Pass it as ``weights=VarIdent("sex")``.  The stratum of the first data row is the
    reference (ratio 1, as nlme); the other strata get ratios ``σ_k / σ``.

    Parameters
    ----------
    by : str
        Column whose levels get their own residual variance.
    """

    by: str

    name = "different variances per stratum"
    r_name = "varIdent"

    def columns(self) -> list[str]:
        """Data columns the structure uses."""
        return [self.by]

    def bind(self, data: pd.DataFrame) -> BoundVarIdent:
        if self.by not in data.columns:
            raise DataError(f"column {self.by!r} of VarIdent is not in the data")
        col = data[self.by]
        first = col.iloc[0]
        levels = [first] + [v for v in pd.unique(col) if v != first]
        levels = pd.Index(levels, name=self.by)
        codes = levels.get_indexer(col).astype(np.int64)
        return BoundVarIdent(self, codes, levels)


VarianceStructure = VarIdent

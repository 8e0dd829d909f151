"""Residual correlation (AR(1), CAR(1), compound symmetry) and variance (VarIdent) structures.

User-facing structures live in :mod:`~interlace.correlation.structures`; their bound
forms (whitening transforms) in :mod:`~interlace.correlation.whitening`.
:func:`bind_residual` binds them to a model frame and checks that they fit the
random-effects structure.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..errors import DataError
from .structures import AR1, CAR1, CompoundSymmetry, CorrelationStructure, VarIdent
from .whitening import ResidualModel

if TYPE_CHECKING:
    from ..design.terms import RandomEffects

__all__ = ["AR1", "CAR1", "CompoundSymmetry", "VarIdent", "CorrelationStructure", "ResidualModel",
           "bind_residual", "structure_columns"]


def _check_types(correlation, variance) -> None:
    if correlation is not None and not isinstance(correlation, CorrelationStructure):
        raise DataError("correlation must be interlace.AR1(...), interlace.CAR1(...) or "
                        f"interlace.CompoundSymmetry(...), got {correlation!r}")
    if variance is not None and not isinstance(variance, VarIdent):
        raise DataError(f"variance structure must be interlace.VarIdent(...), got {variance!r}")


def structure_columns(correlation: CorrelationStructure | None, variance: VarIdent | None) -> list[str]:
    """Columns of the data the structures use (they join the model frame)."""
    _check_types(correlation, variance)
    cols: list[str] = []
    for s in (correlation, variance):
        if s is not None:
            cols += [c for c in s.columns() if c not in cols]
    return cols


def _constant_within(codes: np.ndarray, groups: np.ndarray) -> bool:
    """True when ``codes`` takes one value within every level of ``groups``."""
    if codes.size == 0:
        return True
    nunique = pd.Series(codes).groupby(groups).nunique()
    return bool(nunique.max() <= 1)


def _default_group(re, data: pd.DataFrame) -> str | None:
    """nlme's default: the innermost random-effects grouping (the finest one all others contain)."""
    if re is None or not re.terms:
        return None
    for t in re.terms:  # most levels first
        if len(t.spec.group) != 1:
            continue
        col = t.spec.group[0]
        if all(_constant_within(o.codes, t.codes) for o in re.terms):
            return col
    raise DataError("give the correlation structure a group= column: no single random-effects "
                    "grouping column contains all the others (nlme uses the innermost grouping)")


def bind_residual(correlation: CorrelationStructure | None, variance: VarIdent | None, data: pd.DataFrame,
                  re: RandomEffects | None = None) -> ResidualModel | None:
    """Bind the structures to the model frame ``data`` (None when there are none).

    Raises
    ------
    DataError
        A missing column, a bad time variable, or a correlation group that spans
        several levels of a random-effects term.
    """
    _check_types(correlation, variance)
    if correlation is None and variance is None:
        return None
    cor = None
    if correlation is not None:
        if correlation.group is None and re is not None and re.terms:
            correlation = correlation.with_group(_default_group(re, data))
        cor = correlation.bind(data)
        if re is not None:
            for t in re.terms:
                if not _constant_within(t.codes, cor.codes):
                    raise DataError(
                        f"correlation group {correlation.group!r} is not nested in the grouping of "
                        f"random-effects term {t.spec.source!r}: rows of one {correlation.group!r} "
                        "group belong to several of its levels")
    var = variance.bind(data) if variance is not None else None
    return ResidualModel(cor, var)

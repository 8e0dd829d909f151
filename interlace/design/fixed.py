"""Fixed-effects design: response vector and model matrix X, with rank deficiency handled."""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import patsy
import scipy.linalg

from ..errors import DataError, FormulaError, RankDeficiencyWarning
from .frame import EVAL_NAMESPACE

__all__ = ["FixedDesign", "build_fixed", "build_matrix", "new_matrix"]

_ENV = patsy.EvalEnvironment([EVAL_NAMESPACE])


@dataclass
class FixedDesign:
    """Response and fixed-effects model matrix.

    Attributes
    ----------
    y : ndarray (n,)
    X : ndarray (n, p) after dropping aliased columns
    names : list of str
        Column names of ``X``.
    response : str
    design_info : patsy.DesignInfo
        For encoding new data exactly as in fitting.
    keep : ndarray of int
        Positions of the kept columns in the full patsy matrix.
    dropped : list of str
        Names of columns dropped for rank deficiency.
    """

    y: np.ndarray
    X: np.ndarray
    names: list[str]
    response: str
    design_info: patsy.DesignInfo
    keep: np.ndarray
    dropped: list[str]


def build_matrix(rhs: str, data: pd.DataFrame, where: str) -> patsy.DesignMatrix:
    """Evaluate a one-sided formula on ``data`` with interlace's namespace, with clear errors."""
    try:
        return patsy.dmatrix(rhs, data, eval_env=_ENV, NA_action="raise", return_type="matrix")
    except patsy.PatsyError as exc:
        raise FormulaError(f"cannot build {where} from {rhs!r}: {exc}") from None


def new_matrix(design_info: patsy.DesignInfo, data: pd.DataFrame, where: str) -> np.ndarray:
    """Encode new data with a stored design, naming the factor and value on failure."""
    try:
        (m,) = patsy.build_design_matrices([design_info], data, NA_action="raise")
    except patsy.PatsyError as exc:
        msg = str(exc).splitlines()[0]
        raise DataError(f"cannot encode new data for {where}: {msg}") from None
    return np.asarray(m, dtype=float)


def _check_response(lhs: str, data: pd.DataFrame) -> None:
    name = lhs.strip()
    if name in data.columns:
        col = data[name]
        if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
            raise DataError(
                f"response {name!r} is not numeric (dtype {col.dtype}); "
                "for a binary or count outcome use interlace.glmer, for an ordered one interlace.clmm"
            )


def build_fixed(fixed_formula: str, data: pd.DataFrame, rank_tol: float = 1e-7) -> FixedDesign:
    """Build ``y`` and ``X`` from a two-sided formula, dropping aliased columns as lme4 does.

    Parameters
    ----------
    fixed_formula : str
        ``"y ~ x1 + x2"``.
    data : DataFrame
        Complete rows only (see :func:`interlace.design.frame.build_frame`).
    rank_tol : float
        Relative tolerance on the pivoted QR diagonal (lme4's ``rankMatrix`` default).
    """
    lhs, rhs = fixed_formula.split("~", 1)
    _check_response(lhs, data)
    try:
        ymat = patsy.dmatrix(lhs.strip() + " - 1", data, eval_env=_ENV, NA_action="raise")
    except patsy.PatsyError as exc:
        raise FormulaError(f"cannot evaluate response {lhs.strip()!r}: {exc}") from None
    if ymat.shape[1] != 1:
        raise DataError(f"response {lhs.strip()!r} is not numeric: it expands to {ymat.shape[1]} columns")
    Xfull = build_matrix(rhs, data, "the fixed-effects model matrix")
    names_full = list(Xfull.design_info.column_names)
    X = np.asarray(Xfull, dtype=float)
    y = np.asarray(ymat, dtype=float).ravel()
    keep = np.arange(X.shape[1])
    dropped: list[str] = []
    if X.shape[1] > 0:
        _, R, piv = scipy.linalg.qr(X, mode="economic", pivoting=True)
        d = np.abs(np.diag(R))
        rank = int(np.sum(d > rank_tol * d[0])) if d.size and d[0] > 0 else 0
        if rank < X.shape[1]:
            keep = np.sort(piv[:rank])
            dropped = [names_full[i] for i in sorted(piv[rank:])]
            warnings.warn(
                f"fixed-effect model matrix is rank deficient so dropping {len(dropped)} "
                f"column{'s' if len(dropped) > 1 else ''} / coefficient{'s' if len(dropped) > 1 else ''}: "
                + ", ".join(dropped),
                RankDeficiencyWarning,
                stacklevel=3,
            )
            X = X[:, keep]
    return FixedDesign(y, X, [names_full[i] for i in keep], lhs.strip(), Xfull.design_info, keep, dropped)

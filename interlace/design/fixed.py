"""Fixed-effects design: response vector and model matrix X, with rank deficiency handled."""
from __future__ import annotations

import builtins
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
import patsy

from ..errors import DataError, FormulaError, RankDeficiencyWarning, warn_user
from ..formula.parse import model_desc
from .frame import _PATSY_NAMES, EVAL_NAMESPACE, ModelFrame, formula_names
from .stored import EVAL_ENV, storable

__all__ = ["FixedDesign", "build_fixed", "build_matrix", "formula_env", "new_matrix"]

_ENV = EVAL_ENV
#: model frames are complete cases already (missing rows dropped and reported by build_frame),
#: so patsy's per-value missing-data scan is skipped; non-finite results are checked after
_NO_NA_CHECK = patsy.NAAction(NA_types=[])


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
        For encoding new data exactly as in fitting (a picklable
        :class:`~interlace.design.stored.StoredDesignInfo`).
    keep : ndarray of int
        Positions in patsy's matrix of the kept columns, in R's column order.
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


def _strings_as_categorical(data: pd.DataFrame) -> pd.DataFrame:
    """String columns as pandas Categoricals with sorted levels (patsy's own level order).

    patsy reads a Categorical's codes directly; a string column it would sniff and map
    value by value (slow for pandas' Arrow-backed strings: 0.3 s on InstEval's 73k rows).
    """
    conv = {}
    for name in data.columns:
        col = data[name]
        if isinstance(col.dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(col) \
                or pd.api.types.is_numeric_dtype(col):
            continue
        if pd.api.types.infer_dtype(col, skipna=False) == "string":
            conv[name] = pd.Categorical(col, categories=sorted(pd.unique(col)))
    return data.assign(**conv) if conv else data


#: exceptions patsy lets through from its internals (not PatsyError), turned into interlace errors
PATSY_INTERNAL = (AssertionError, KeyError, IndexError, TypeError, ValueError)


def formula_env(eval_env: patsy.EvalEnvironment | None = None) -> patsy.EvalEnvironment:
    """The namespace formulas are evaluated in: interlace's, behind ``eval_env``'s names if given.

    ``eval_env`` is a captured namespace (statsmodels' ``eval_env``: the caller's
    variables and functions); data columns always come first (patsy looks them up before
    any namespace).
    """
    return _ENV if eval_env is None else eval_env.with_outer_namespace(EVAL_NAMESPACE)


def _numeric_values(data: pd.DataFrame | ModelFrame, name: str) -> np.ndarray | None:
    """The values of column ``name`` when it is a numpy numeric (not boolean) column, else None."""
    if isinstance(data, ModelFrame):
        values = data.columns.get(name)
        if not isinstance(values, np.ndarray):
            return None
    else:
        if name not in data.columns:
            return None
        col = data[name]
        values = col.to_numpy() if isinstance(col.dtype, np.dtype) else None
    return values if values is not None and values.dtype.kind in "iuf" else None


def _numeric_columns(desc: patsy.ModelDesc, data: pd.DataFrame | ModelFrame) -> dict[str, np.ndarray] | None:
    """The columns of a one-sided formula whose every factor is a bare numeric column of ``data``
    (``1 + Days``, ``x1 * x2``), or None when any factor is something else (a categorical or
    boolean column, a function call, a stateful transform) or the frame is empty."""
    if desc.lhs_termlist or not len(data) or (isinstance(data, pd.DataFrame) and not data.columns.is_unique):
        return None
    cols: dict[str, np.ndarray] = {}
    for term in desc.rhs_termlist:
        for factor in term.factors:
            code = getattr(factor, "code", None)
            if not isinstance(code, str) or code in cols:
                continue
            # a column named Intercept clashes with patsy's intercept: patsy's path says so
            values = _numeric_values(data, code) if code.isidentifier() and code != "Intercept" else None
            if values is None:
                return None
            cols[code] = values
    return cols


def _numeric_info(desc: patsy.ModelDesc, cols: dict[str, np.ndarray],
                  eval_env: patsy.EvalEnvironment) -> patsy.DesignInfo:
    """patsy's design info of a formula of bare numeric columns, made from their first row (a numeric
    column has no state to memorize: it is the one the full data would give), picklable."""
    first = {k: v[:1] for k, v in cols.items()}
    return storable(patsy.incr_dbuilder(desc, lambda: iter([first]), eval_env=eval_env, NA_action=_NO_NA_CHECK))


@lru_cache(maxsize=256)
def _numeric_info_default(rhs: str, names: tuple[str, ...]) -> patsy.DesignInfo:
    """:func:`_numeric_info` in interlace's namespace, kept per formula (the design depends on nothing
    else for bare numeric columns, and is never modified once built)."""
    return _numeric_info(model_desc(rhs), {k: np.zeros(1) for k in names}, _ENV)


def _numeric_matrix(desc: patsy.ModelDesc, cols: dict[str, np.ndarray], n: int,
                    info: patsy.DesignInfo) -> patsy.DesignMatrix:
    """patsy's model matrix of a formula of bare numeric columns (:func:`_numeric_columns`) with its
    design ``info``, built without patsy's evaluation passes over the rows: each column is the
    product of its factors' columns in patsy's order (as ``patsy.build``'s subterm products), so
    the matrix is patsy's and ``predict(newdata)`` encodes as usual."""
    X = np.empty((n, len(info.column_names)))
    for term, subterms in info.term_codings.items():
        start = info.term_slices[term].start
        for k, sub in enumerate(subterms):
            out = X[:, start + k]
            out[...] = 1
            for factor in sub.factors:
                out *= cols[factor.code]
    return patsy.DesignMatrix(X, info)


def build_matrix(rhs: str, data: pd.DataFrame | ModelFrame, where: str,
                 eval_env: patsy.EvalEnvironment | None = None) -> patsy.DesignMatrix:
    """Evaluate a one-sided formula on ``data`` with interlace's namespace (and ``eval_env``'s), with clear errors.

    A formula of bare numeric columns is built without patsy's passes over the rows
    (:func:`_numeric_matrix`: the same matrix and design info); ``data`` may be a model
    frame, whose columns are then read without a DataFrame."""
    try:
        desc = model_desc(rhs)
        cols = _numeric_columns(desc, data)
        if cols is not None:
            info = (_numeric_info_default(rhs, tuple(cols)) if eval_env is None
                    else _numeric_info(desc, cols, formula_env(eval_env)))
            return _numeric_matrix(desc, cols, len(data), info)
    except patsy.PatsyError:
        pass  # patsy's own path below reports it
    if isinstance(data, ModelFrame):
        data = data.data
    try:  # numpy's warnings (log of a negative, ...) are left out: non-finite results are refused after
        with np.errstate(all="ignore"):
            mm = patsy.dmatrix(model_desc(rhs), _strings_as_categorical(data), eval_env=formula_env(eval_env),
                               NA_action=_NO_NA_CHECK, return_type="matrix")
    except patsy.PatsyError as exc:
        raise FormulaError(f"cannot build {where} from {rhs!r}: {exc}") from None
    except PATSY_INTERNAL as exc:
        if "Intercept" in data.columns and re.search(r"\bIntercept\b", rhs):
            raise FormulaError(f"a column named 'Intercept' in {rhs!r} clashes with patsy's name for the "
                               "intercept: rename the column or quote it as Q('Intercept')") from None
        raise FormulaError(f"cannot build {where} from {rhs!r}: {type(exc).__name__}: {exc}") from None
    mm.design_info = storable(mm.design_info)  # picklable (interlace.design.stored)
    return mm


def new_matrix(design_info: patsy.DesignInfo, data: pd.DataFrame, where: str) -> np.ndarray:
    """Encode new data with a stored design, naming the factor and value on failure."""
    try:
        with np.errstate(all="ignore"):
            (m,) = patsy.build_design_matrices([design_info], data, NA_action="raise")
    except PATSY_INTERNAL as exc:
        raise DataError(f"cannot encode new data for {where}: {type(exc).__name__}: {exc}") from None
    except patsy.PatsyError as exc:
        msg = str(exc).splitlines()[0]
        code = exc.origin.relevant_code() if getattr(exc, "origin", None) is not None else None
        if code is not None:
            missing = [n for n in sorted(formula_names(code))
                       if n not in data.columns and n not in EVAL_NAMESPACE and n not in _PATSY_NAMES
                       and not hasattr(builtins, n)]
            if missing and "NameError" in msg:
                msg = f"column {missing[0]!r} is not in newdata"
            elif "does not match any of the expected levels" in msg:
                msg = f"column {code!r} has a level not seen in fitting: {msg}"
            else:
                msg = f"in {code!r}: {msg}"
        raise DataError(f"cannot encode new data for {where}: {msg}") from None
    out = np.asarray(m, dtype=float)
    bad = [name for j, name in enumerate(design_info.column_names) if not np.all(np.isfinite(out[:, j]))]
    if bad:
        raise DataError(f"cannot encode new data for {where}: column(s) {', '.join(map(repr, bad))} of the model "
                        "matrix have infinite values in newdata")
    return out


#: Largest magnitude of a model-matrix or response value: its square, summed over 10⁸ rows,
#: stays finite (the cross-products are sums of squares).
MAX_MAGNITUDE = 1e150


def check_magnitude(values: np.ndarray, names: list[str], what: str) -> None:
    """Refuse values whose squares would overflow the cross-products, naming the column."""
    v = np.asarray(values, float)
    v = v[:, None] if v.ndim == 1 else v
    with np.errstate(invalid="ignore"):
        big = np.flatnonzero(np.nanmax(np.abs(v), axis=0, initial=0.0) > MAX_MAGNITUDE) if v.size else []
    if len(big):
        shown = ", ".join(repr(names[j]) for j in big[:5])
        raise DataError(f"{what} {shown} holds values beyond ±{MAX_MAGNITUDE:g}, whose squares overflow: "
                        "rescale it (e.g. divide by a power of 10)")


def moderate(values: np.ndarray) -> bool:
    """Whether every value is finite and within ±:data:`MAX_MAGNITUDE` (one pass for each bound; a NaN fails):
    the common case, in which the checks naming the offending columns need not run."""
    v = np.asarray(values, float)
    if not v.size:
        return True
    with np.errstate(invalid="ignore"):
        return bool(v.max() <= MAX_MAGNITUDE and v.min() >= -MAX_MAGNITUDE)


def check_columns(values: np.ndarray, names: list[str], what: str) -> np.ndarray:
    """Refuse non-finite values and values whose squares overflow, naming the columns; returns ``values``."""
    v = np.asarray(values, float)
    v2 = v[:, None] if v.ndim == 1 else v
    bad = [names[j] for j in range(v2.shape[1]) if not np.all(np.isfinite(v2[:, j]))]
    if bad:
        raise DataError(f"{what} {', '.join(map(repr, bad[:5]))} has non-finite values")
    check_magnitude(v2, names, what)
    return v


def _check_response(lhs: str, data: pd.DataFrame) -> pd.DataFrame:
    """Refuse a non-numeric response column; a logical one is used as 0/1 (as R does)."""
    name = lhs.strip()
    if name in data.columns:
        col = data[name]
        if pd.api.types.is_bool_dtype(col) or (col.dtype == object
                                               and pd.api.types.infer_dtype(col, skipna=True) == "boolean"):
            return data.assign(**{name: col.astype(float)})
        if pd.api.types.is_complex_dtype(col):
            raise DataError(f"response {name!r} holds complex numbers: a model needs real numbers")
        if not pd.api.types.is_numeric_dtype(col):
            raise DataError(
                f"response {name!r} is not numeric (dtype {col.dtype}); "
                "for a binary or count outcome use interlace.glmer, for an ordered one interlace.clmm"
            )
    return data


def _r_column_order(design_info: patsy.DesignInfo, rhs: str) -> np.ndarray:
    """Positions of patsy's columns in R's ``model.matrix`` order.

    patsy puts purely categorical terms before numeric ones; R keeps the terms as
    written, sorted (stably) by interaction order.  Rank-deficient columns are
    chosen in R's order so the same ones as in lme4 are dropped.
    """
    try:
        written = model_desc(rhs).rhs_termlist
    except patsy.PatsyError:
        written = list(design_info.terms)
    pos = {t: i for i, t in enumerate(written)}
    terms = sorted(design_info.terms, key=lambda t: (len(t.factors), pos.get(t, len(pos))))
    sl = design_info.term_slices
    return np.concatenate([np.arange(sl[t].start, sl[t].stop) for t in terms] + [np.zeros(0, np.intp)]
                          ).astype(np.intp)


#: A column whose part independent of the columns before it keeps at least this fraction of its norm
#: (and 1000 times the rank tolerance), measured from the Cholesky factor of XᵀX, is independent: the
#: Gram matrix's rounding moves that fraction's square by about ``n`` ε, far below the margin's square
_CLEAR_MARGIN = 1e-3


def _clearly_independent(X: np.ndarray, tol: float) -> bool:
    """Whether every column of ``X`` is far from the span of the columns before it (the common case,
    decided from the small Gram matrix, so the QR of the rows need not run)."""
    n, p = X.shape
    if p == 0 or n < p:
        return p == 0
    G = X.T @ X
    sq = np.diagonal(G)
    if not np.all(sq > 0):
        return False
    try:
        L = np.linalg.cholesky(G)
    except np.linalg.LinAlgError:
        return False
    return bool(np.all(np.diagonal(L) > max(_CLEAR_MARGIN, 1e3 * tol) * np.sqrt(sq)))


def _independent_columns(X: np.ndarray, tol: float) -> np.ndarray:
    """Columns kept by R's ``qr(X, tol, LAPACK = FALSE)`` (LINPACK ``dqrdc2``), as lme4 drops them.

    Columns are taken left to right; one whose norm, after projecting out the kept
    columns, falls below ``tol`` times its original norm is dropped.  So of two
    collinear columns the later one goes, as in lme4 (a largest-norm-first pivoted QR
    would drop whichever is shorter).
    """
    n, p = X.shape
    if _clearly_independent(X, tol):
        return np.arange(p)
    norm0 = np.linalg.norm(X, axis=0)
    norm0 = np.where(norm0 > 0, norm0, 1.0)
    # an unpivoted QR in this order is dqrdc2 up to the first negligible column
    j0 = 0
    if n >= p:
        d = np.abs(np.diag(np.linalg.qr(X, mode="r")))
        bad = np.flatnonzero(d < tol * norm0)
        if bad.size == 0:
            return np.arange(p)
        j0 = int(bad[0])
    Q = np.empty((n, min(n, p)))
    if j0:
        Q[:, :j0] = np.linalg.qr(X[:, :j0])[0]
    kept: list[int] = list(range(j0))
    for j in range(j0, p):
        Qk = Q[:, :len(kept)]
        r = X[:, j] - Qk @ (Qk.T @ X[:, j])
        r = r - Qk @ (Qk.T @ r)  # second pass: Gram-Schmidt loses orthogonality otherwise
        nr = np.linalg.norm(r)
        if nr >= tol * norm0[j] and nr > 0 and len(kept) < n:
            Q[:, len(kept)] = r / nr
            kept.append(j)
    return np.asarray(kept, dtype=np.intp)


def _response_matrix(name: str, data: pd.DataFrame | ModelFrame, eval_env: patsy.EvalEnvironment | None
                     ) -> tuple[np.ndarray, pd.DataFrame | ModelFrame]:
    """The response as one column (a numeric column read directly, anything else through patsy), and
    the data to build X from (a logical response is 0/1 there, as R uses it)."""
    values = _numeric_values(data, name)
    if values is not None:  # a numeric column: what patsy would give, without its overhead
        return np.asarray(values, dtype=float)[:, None], data
    frame = _check_response(name, data.data if isinstance(data, ModelFrame) else data)
    col = frame[name] if name in frame.columns else None
    if col is not None and pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        return col.to_numpy(float)[:, None], frame
    try:
        with np.errstate(all="ignore"):
            ymat = patsy.dmatrix(name + " - 1", frame, eval_env=formula_env(eval_env), NA_action=_NO_NA_CHECK)
    except patsy.PatsyError as exc:
        raise FormulaError(f"cannot evaluate response {name!r}: {exc}") from None
    except PATSY_INTERNAL as exc:
        raise FormulaError(f"cannot evaluate response {name!r}: {type(exc).__name__}: {exc}") from None
    return np.asarray(ymat), frame


def build_fixed(fixed_formula: str, data: pd.DataFrame | ModelFrame, rank_tol: float = 1e-7,
                eval_env: patsy.EvalEnvironment | None = None) -> FixedDesign:
    """Build ``y`` and ``X`` from a two-sided formula, dropping aliased columns as lme4 does.

    Parameters
    ----------
    fixed_formula : str
        ``"y ~ x1 + x2"``.
    data : DataFrame or ModelFrame
        Complete rows only (see :func:`interlace.design.frame.build_frame`).
    rank_tol : float
        Relative tolerance on the pivoted QR diagonal (lme4's ``rankMatrix`` default).
    eval_env : patsy.EvalEnvironment, optional
        A namespace searched after the data and before interlace's (see :func:`formula_env`).
    """
    lhs, rhs = fixed_formula.split("~", 1)
    ymat, data = _response_matrix(lhs.strip(), data, eval_env)
    if ymat.shape[1] != 1:
        raise DataError(f"response {lhs.strip()!r} is not numeric: it expands to {ymat.shape[1]} columns")
    Xfull = build_matrix(rhs, data, "the fixed-effects model matrix", eval_env)
    names_full = list(Xfull.design_info.column_names)
    X = np.asarray(Xfull, dtype=float)
    y = np.asarray(ymat, dtype=float).ravel()
    if not (moderate(y) and moderate(X)):  # say which values are not finite or too large
        if not np.all(np.isfinite(y)):
            raise DataError(f"response {lhs.strip()!r} has {int(np.sum(~np.isfinite(y)))} non-finite values")
        bad_cols = [names_full[j] for j in range(X.shape[1]) if not np.all(np.isfinite(X[:, j]))]
        if bad_cols:
            raise DataError(f"fixed-effects column(s) {', '.join(map(repr, bad_cols))} have non-finite values")
        check_magnitude(y, [lhs.strip()], "response")
        check_magnitude(X, names_full, "fixed-effects column")
    keep = np.arange(X.shape[1])
    dropped: list[str] = []
    if X.shape[1] > 0:
        # columns in R's order (terms as written, by interaction order), so coefficient
        # tables read as lme4's; patsy's own order is only used to encode new data
        keep = _r_column_order(Xfull.design_info, rhs)
        kept = keep[_independent_columns(X[:, keep], rank_tol)]
        if kept.size < X.shape[1]:
            dropped = [names_full[i] for i in keep if i not in set(kept)]
            keep = kept
            warn_user(
                f"fixed-effect model matrix is rank deficient so dropping {len(dropped)} "
                f"column{'s' if len(dropped) > 1 else ''} / coefficient{'s' if len(dropped) > 1 else ''}: "
                + ", ".join(dropped),
                RankDeficiencyWarning,
            )
        X = X[:, keep]
    return FixedDesign(y, X, [names_full[i] for i in keep], lhs.strip(), Xfull.design_info, keep, dropped)

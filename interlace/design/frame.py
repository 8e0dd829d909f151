"""The model frame: the rows and columns a model uses, with missing values dropped.

Mirrors R's ``model.frame(..., na.action = na.omit)``: every column the formula,
the random-effects terms, the weights or the offset refer to is checked to exist,
and rows with a missing value in any of them are dropped and reported.
"""
from __future__ import annotations

import ast
import builtins
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import patsy

from ..errors import DataError, FormulaError, MissingDataWarning, warn_user
from ..formula import RandomTermSpec
from ..formula.parse import model_desc
from .transforms import poly

__all__ = ["ModelFrame", "build_frame", "check_finite", "formula_names", "formula_columns", "numeric_columns",
           "EVAL_NAMESPACE"]

#: Names a formula may use besides data columns (patsy's builtins plus numpy).
EVAL_NAMESPACE = {
    "np": np,
    "numpy": np,
    "log": np.log,
    "exp": np.exp,
    "sqrt": np.sqrt,
    "abs": np.abs,
    "poly": poly,
}
_PATSY_NAMES = {"C", "I", "Q", "center", "standardize", "scale", "Treatment", "Sum",
                "Poly", "Helmert", "Diff", "bs", "cr", "cc", "te", "dmatrix"}
WEIGHTS_COL = "__interlace_weights__"
OFFSET_COL = "__interlace_offset__"


@lru_cache(maxsize=1024)
def _parse(code: str) -> ast.Expression:
    """The expression's syntax tree (kept per string: the trees are only read)."""
    try:
        return ast.parse(code.strip(), mode="eval")
    except SyntaxError as exc:
        raise FormulaError(f"cannot parse formula expression {code!r}: {exc.msg}") from None


def formula_names(code: str) -> set[str]:
    """Bare names referenced by a formula expression, e.g. ``{"x", "np"}`` for ``np.log(x)``."""
    return {n.id for n in ast.walk(_parse(code)) if isinstance(n, ast.Name)}


def quoted_names(code: str) -> list[str]:
    """Column names quoted with patsy's ``Q("...")`` in a formula expression (R's backticks)."""
    return [n.args[0].value for n in ast.walk(_parse(code))
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "Q"
            and len(n.args) == 1 and isinstance(n.args[0], ast.Constant) and isinstance(n.args[0].value, str)]


@lru_cache(maxsize=1024)
def _code_names(code: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(quoted names, sorted bare names)`` of a formula expression (kept per string)."""
    return tuple(quoted_names(code)), tuple(sorted(formula_names(code)))


def _term_codes(formula_rhs: str) -> list[str]:
    try:
        desc = model_desc(formula_rhs)
    except patsy.PatsyError as exc:
        raise FormulaError(f"cannot parse formula {formula_rhs!r}: {exc}") from None
    return [f.code for t in desc.lhs_termlist + desc.rhs_termlist for f in t.factors]


def _columns_of(codes: list[str], data: pd.DataFrame, where: str, env: Any = None,
                outer: dict | None = None) -> list[str]:
    """Columns the formula codes use; other names must be interlace's or patsy's functions, or
    (given ``env``, a patsy ``EvalEnvironment``) names of ``env``, which are collected in ``outer``."""
    cols: list[str] = []
    for code in codes:
        quoted, bare = _code_names(code)
        for name in quoted:
            if name not in data.columns:
                raise DataError(f"column {name!r} quoted in {where} is not in the data")
            if name not in cols:
                cols.append(name)
        for name in bare:
            if name == "offset" and name not in data.columns:
                raise FormulaError(f"offset() in {where} is not available here: give the offset as a column "
                                   "name (offset='column')")
            if name in data.columns:
                if name not in cols:
                    cols.append(name)
            elif name in EVAL_NAMESPACE or name in _PATSY_NAMES or hasattr(builtins, name):
                continue
            elif env is not None and name in env.namespace:
                if outer is not None:
                    outer[name] = env.namespace[name]
            else:
                raise DataError(
                    f"column {name!r} used in {where} is not in the data "
                    f"(available columns: {', '.join(map(str, data.columns[:20]))}"
                    f"{', ...' if len(data.columns) > 20 else ''})"
                )
    return cols


#: A column of the model frame: a numpy array, or a pandas ExtensionArray (categorical, string, ...)
Column = Any


class ModelFrame:
    """Rows and columns used by a model after dropping missing values.

    Built by :func:`build_frame` from the used columns' values (numpy arrays, or pandas
    extension arrays for categorical, string and other extension dtypes), so a fit reads
    them without label-indexing a frame; :attr:`data` is the same rows as a DataFrame,
    made on first use.

    Parameters
    ----------
    data : pandas.DataFrame, optional
        The used columns, complete rows only, original index kept (or give ``columns``
        and ``index``).
    n_dropped : int
        Rows dropped for missing values.
    dropped_by_column : dict
        Missing-value count per column among the original rows.
    weights, offset : ndarray or None
    columns : dict of str to array, optional
        The used columns' values on the complete rows (keyword only, with ``index``).
    index : pandas.Index, optional
        The complete rows' labels.
    """

    def __init__(self, data: pd.DataFrame | None = None, n_dropped: int = 0,
                 dropped_by_column: dict | None = None, weights: np.ndarray | None = None,
                 offset: np.ndarray | None = None, *, columns: dict[str, Column] | None = None,
                 index: pd.Index | None = None) -> None:
        if (data is None) == (columns is None):
            raise TypeError("ModelFrame takes either data or columns (with index)")
        self._data = data
        self._columns = columns
        self._index = index
        self.n_dropped = int(n_dropped)
        self.dropped_by_column = {} if dropped_by_column is None else dropped_by_column
        self.weights = weights
        self.offset = offset

    @property
    def data(self) -> pd.DataFrame:
        """The used columns as a DataFrame (complete rows, original index, the columns' own dtypes)."""
        if self._data is None:
            assert self._columns is not None and self._index is not None
            index = self._index
            self._data = pd.DataFrame({c: pd.Series(v, index=index, dtype=v.dtype, copy=False)
                                       for c, v in self._columns.items()}, index=index)
        return self._data

    @property
    def columns(self) -> dict[str, Column]:
        """The used columns' values on the complete rows, by name (numpy or pandas extension arrays)."""
        if self._columns is None:
            data = self.data
            self._columns = {c: data.iloc[:, j].array if isinstance(dtype, pd.api.extensions.ExtensionDtype)
                             else data.iloc[:, j].to_numpy()
                             for j, (c, dtype) in enumerate(zip(data.columns, data.dtypes))}
        return self._columns

    @property
    def index(self) -> pd.Index:
        """The complete rows' labels."""
        return self._index if self._index is not None else self.data.index

    def __len__(self) -> int:
        return len(self.index)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if state["_columns"] is not None:
            state["_data"] = None  # rebuilt from the columns on demand
        return state

    def _with_rows(self, rows: Any) -> ModelFrame:
        if self._columns is None:
            return ModelFrame(self.data.iloc[rows], self.n_dropped, dict(self.dropped_by_column))
        return ModelFrame(n_dropped=self.n_dropped, dropped_by_column=dict(self.dropped_by_column),
                          columns={c: v[rows] for c, v in self._columns.items()}, index=self.index[rows])

    def without_rows(self) -> ModelFrame:
        """The frame's columns and dropped-row counts, no rows."""
        return self._with_rows(slice(0, 0))

    def subset(self, rows: np.ndarray) -> ModelFrame:
        """The frame restricted to the positions ``rows`` (the dropped-row counts kept)."""
        out = self._with_rows(rows)
        out.weights = None if self.weights is None else self.weights[rows]
        out.offset = None if self.offset is None else self.offset[rows]
        return out


def _per_row(source: pd.DataFrame, value: Any, name: str) -> np.ndarray | None:
    """Weights or offset (a column name or a vector of the data's length) as float64, checked."""
    if value is None:
        return None
    what = f"{name} column {value!r}" if isinstance(value, str) else name
    if isinstance(value, str):
        if value not in source.columns:
            raise DataError(f"{name} column {value!r} is not in the data")
        vals = source[value]
    else:
        vals = np.asarray(value).ravel()
        if vals.shape[0] != len(source):
            raise DataError(f"{name} has length {vals.shape[0]} but the data have {len(source)} rows")
    dtype = getattr(vals, "dtype", None)
    if np.iscomplexobj(vals) or pd.api.types.is_complex_dtype(dtype):
        raise DataError(f"{what} holds complex numbers: it must be real")
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        raise DataError(f"{what} holds dates or times: it must be numbers")
    if isinstance(dtype, np.dtype) and dtype.kind in "iuf":
        return np.array(vals, dtype=float)  # numbers already: what to_numeric gives, without its pass
    try:
        return np.asarray(pd.to_numeric(pd.Series(np.asarray(vals, dtype=object)), errors="raise"), dtype=float)
    except (TypeError, ValueError):
        raise DataError(f"{what} must be numeric") from None


def formula_columns(formula: str, data: pd.DataFrame, env: Any = None, outer: dict | None = None) -> list[str]:
    """Columns of ``data`` a one- or two-sided formula uses, with a clear error naming a
    missing one (``data`` may have no rows).  Names found in ``env`` (a patsy
    ``EvalEnvironment``: the caller's namespace) are allowed and collected in ``outer``."""
    return _columns_of(_term_codes(formula if "~" in formula else f"~ {formula}"), data, f"formula {formula!r}",
                       env, outer)


def expression_columns(data: pd.DataFrame, fixed_formula: str, specs: list[RandomTermSpec]) -> list[str]:
    """Columns of ``data`` the fixed formula and the random-effects terms' left sides evaluate
    (the grouping columns excluded)."""
    cols = _columns_of(_term_codes(fixed_formula), data, f"formula {fixed_formula!r}")
    for spec in specs:
        cols += [c for c in _columns_of(_term_codes(spec.lhs), data, f"term {spec.source!r}") if c not in cols]
    return cols


_NUMBER_KINDS = ("integer", "floating", "mixed-integer-float", "decimal")


def _as_numbers(c: str, col: pd.Series) -> pd.Series | None:
    """A column a formula evaluates as numbers: None when usable as it is, float64 for numbers stored
    as objects; a :class:`DataError` naming it for complex, date and time values."""
    dtype = col.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "biuf":
        return None
    if pd.api.types.is_complex_dtype(dtype):
        raise DataError(f"column {c!r} holds complex numbers: a model needs real numbers")
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype) \
            or isinstance(dtype, pd.PeriodDtype):
        raise DataError(f"column {c!r} holds dates or times (dtype {dtype}), which a formula cannot use "
                        f"directly: make it a number (e.g. days since the first, "
                        f"(data[{c!r}] - data[{c!r}].min()).dt.days) or a factor (data[{c!r}].astype(str))")
    if pd.api.types.is_object_dtype(dtype):
        kind = pd.api.types.infer_dtype(col, skipna=True)
        if kind in _NUMBER_KINDS:
            return pd.to_numeric(col, errors="coerce").astype(float)
        if kind == "complex":
            raise DataError(f"column {c!r} holds complex numbers: a model needs real numbers")
        if kind in ("datetime", "datetime64", "date", "time", "timedelta", "period"):
            raise DataError(f"column {c!r} holds dates or times, which a formula cannot use directly: make "
                            "it a number (e.g. days since the first) or a factor (.astype(str))")
    return None


def numeric_columns(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """``frame`` with the columns a formula evaluates made usable as numbers.

    Numbers stored as objects (``dtype=object`` holding ints, floats or Decimals, as
    from a spreadsheet or a JSON reader) become float64, as R reads them; complex,
    date and time columns are refused with a :class:`DataError` naming the column (a
    formula would otherwise drop the imaginary part, or make one coefficient per date).
    ``frame`` itself is not modified.
    """
    conv = {}
    for c in columns:
        new = _as_numbers(c, frame[c])
        if new is not None:
            conv[c] = new
    return frame.assign(**conv) if conv else frame


def used_columns(data: pd.DataFrame, fixed_formula: str, specs: list[RandomTermSpec]) -> list[str]:
    """Columns of ``data`` the fixed formula and the random-effects terms use (formula order),
    with a clear error naming a missing grouping column.  ``data`` may have no rows."""
    cols = _columns_of(_term_codes(fixed_formula), data, f"formula {fixed_formula!r}")
    for spec in specs:
        cols += [c for c in _columns_of(_term_codes(spec.lhs), data, f"term {spec.source!r}") if c not in cols]
        for g in spec.group:
            if g not in data.columns:
                raise DataError(f"grouping column {g!r} of term {spec.source!r} is not in the data")
            if g not in cols:
                cols.append(g)
    return cols


def build_frame(
    data: pd.DataFrame,
    fixed_formula: str,
    specs: list[RandomTermSpec],
    weights: str | npt.ArrayLike | None = None,
    offset: str | npt.ArrayLike | None = None,
    warn: bool = True,
    extra: list[str] | tuple[str, ...] = (),
    offset_terms: Sequence[str] = (),
) -> ModelFrame:
    """Select the used columns of ``data`` and drop incomplete rows.

    Parameters
    ----------
    data : DataFrame
    fixed_formula : str
        Two-sided fixed-effects formula.
    specs : list of RandomTermSpec
    weights, offset : str, array-like or None
        A column name or a vector of the data's length.
    warn : bool
        Issue a :class:`MissingDataWarning` when rows are dropped.
    extra : list of str
        Further columns to keep (and to drop incomplete rows on), e.g. the time and
        group columns of a residual correlation structure.
    offset_terms : list of str
        Expressions of the formula's ``offset(...)`` terms (R's): evaluated on the
        complete rows and added to the offset.
    """
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    if len(data) == 0:
        raise DataError("data has no rows")
    cols = used_columns(data, fixed_formula, specs)
    off_cols = _columns_of(list(offset_terms), data, f"the offset() terms of {fixed_formula!r}")
    cols += [c for c in off_cols if c not in cols]
    for c in extra:
        if c not in data.columns:
            raise DataError(f"column {c!r} of the residual structure is not in the data")
        if c not in cols:
            cols.append(c)
    # each used column read once as an array (no label-indexing of the frame, no frame copy)
    series = {}
    for c in cols:
        col = data[c]
        if isinstance(col, pd.DataFrame):
            raise DataError(f"data has several columns named {c!r}; a formula cannot tell them apart: rename "
                            "or drop the copies")
        series[c] = col
    for c in dict.fromkeys(expression_columns(data, fixed_formula, specs) + off_cols):
        new = _as_numbers(c, series[c])
        if new is not None:
            series[c] = new
    values: dict[str, Column] = {c: col.array if isinstance(col.dtype, pd.api.extensions.ExtensionDtype)
                                 else col.to_numpy() for c, col in series.items()}
    w = _per_row(data, weights, "weights")
    o = _per_row(data, offset, "offset")
    bad = None
    by_col = {}
    for c, v in [*values.items(), ("weights", w), ("offset", o)]:
        miss = _missing(v)
        if miss is None:
            continue
        k = int(np.count_nonzero(miss))
        if k:
            by_col[c] = k
            bad = miss if bad is None else bad | miss
    n_dropped = 0 if bad is None else int(np.count_nonzero(bad))
    if n_dropped == len(data):
        raise DataError(
            "no rows left after dropping rows with missing values "
            f"(missing per column: {by_col})"
        )
    index = data.index
    if n_dropped:
        keep = ~bad
        values = {c: v[keep] for c, v in values.items()}
        index = index[keep]
        w = None if w is None else w[keep]
        o = None if o is None else o[keep]
        if warn:
            warn_user(
                f"{n_dropped} of {len(data)} rows dropped for missing values "
                f"(missing per column: {by_col})",
                MissingDataWarning,
            )
    else:  # the model's own copy: the user's frame may change after the fit
        values = {c: v.copy() for c, v in values.items()}
    frame = ModelFrame(n_dropped=n_dropped, dropped_by_column=by_col, columns=values, index=index)
    for expr in offset_terms:
        o = _offset_values(expr, frame.data) + (0.0 if o is None else o)
    if w is not None and (np.any(w < 0) or not np.all(np.isfinite(w))):
        raise DataError("weights must be finite and non-negative")
    if w is not None and not np.any(w > 0):
        raise DataError("weights are all zero: no observation carries information")
    _check_finite_values(values, o)
    frame.weights, frame.offset = w, o
    return frame


def _missing(values: Column | None) -> np.ndarray | None:
    """Where ``values`` are missing (pandas' ``isna``), or None for a dtype that cannot hold a missing value."""
    if values is None:
        return None
    kind = values.dtype.kind if isinstance(values, np.ndarray) else None
    if kind in ("i", "u", "b"):
        return None
    if kind == "f":
        return np.isnan(values)
    return np.asarray(pd.isna(values), dtype=bool)


def _check_finite_values(values: dict[str, Column], offset: np.ndarray | None) -> None:
    """:func:`check_finite` on the model frame's column values."""
    if offset is not None and not np.all(np.isfinite(offset)):
        raise DataError(f"offset has {int(np.sum(~np.isfinite(offset)))} infinite values")
    for c, v in values.items():
        dtype = v.dtype
        if isinstance(dtype, np.dtype) and dtype.kind in "iub":
            continue  # cannot hold an infinity
        if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
            arr = np.asarray(v)
            n_inf = int(np.isinf(arr if np.iscomplexobj(arr) else arr.astype(float)).sum())
            if n_inf:
                raise DataError(f"column {c!r} has {n_inf} infinite value{'s' if n_inf > 1 else ''}")


def _offset_values(expr: str, frame: pd.DataFrame) -> np.ndarray:
    """The values of one ``offset(expr)`` term on the complete rows."""
    try:
        with np.errstate(all="ignore"):
            m = np.asarray(patsy.dmatrix(f"I({expr}) - 1", frame,
                                         eval_env=patsy.EvalEnvironment([EVAL_NAMESPACE]),
                                         NA_action=patsy.NAAction(NA_types=[])), dtype=float)
    except patsy.PatsyError as exc:
        raise FormulaError(f"cannot evaluate offset({expr}): {exc}") from None
    if m.ndim != 2 or m.shape[1] != 1:
        raise FormulaError(f"offset({expr}) must give one number per row")
    return m[:, 0].astype(float)


def check_finite(frame: pd.DataFrame, columns: Sequence[str], offset: np.ndarray | None = None) -> None:
    """Refuse infinite values in the numeric ``columns`` of ``frame`` and in the offset."""
    if offset is not None and not np.all(np.isfinite(offset)):
        raise DataError(f"offset has {int(np.sum(~np.isfinite(offset)))} infinite values")
    dtypes = frame.dtypes
    for c in columns:
        dtype = dtypes[c]
        if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
            values = frame[c].to_numpy()
            n_inf = int(np.isinf(values if np.iscomplexobj(values) else values.astype(float)).sum())
            if n_inf:
                raise DataError(f"column {c!r} has {n_inf} infinite value{'s' if n_inf > 1 else ''}")

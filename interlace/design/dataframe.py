"""The edge where user data enters: any dataframe to pandas, once, and per-row vectors aligned.

Every ``from_formula`` starts here (:func:`model_input`), so the layers below see one
kind of frame:

* any dataframe the `narwhals <https://narwhals-dev.github.io/narwhals/>`_ library
  understands (pandas, polars, pyarrow tables, modin, cuDF, a polars ``LazyFrame``,
  which is collected) is converted to pandas once;
* pandas' nullable dtypes (``Int64``, ``Float64``, ``boolean``, Arrow-backed numbers)
  become numpy dtypes, with their missing values as ``NaN``/``None`` so the model
  frame drops and reports them as for any other column;
* duplicated column names are refused (a formula could not say which one it means);
* ``weights``/``offset`` given as a pandas Series are aligned on ``data``'s index (a
  Series whose index lacks some of ``data``'s labels is refused); arrays are taken by
  position; then ``subset`` selects the rows of both.

The input objects are never modified: conversions make new columns.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError

__all__ = ["to_pandas", "model_input", "ModelInput", "numpy_dtypes", "align_vector"]


def _narwhals_frame(data: Any) -> pd.DataFrame | None:
    """``data`` converted to pandas through narwhals, or None when narwhals does not know it."""
    import narwhals as nw
    from narwhals.dependencies import is_dask_dataframe

    if is_dask_dataframe(data):
        raise DataError("data is a Dask DataFrame: interlace.fit (linear mixed models) and interlace.glmer "
                        "(binomial and Poisson) fit it on its cluster; the other models need the rows in "
                        "memory (data.compute())")
    frame = nw.from_native(data, pass_through=True)
    if isinstance(frame, nw.LazyFrame):
        frame = frame.collect()
    if not isinstance(frame, nw.DataFrame):
        return None
    try:
        return frame.to_pandas()
    except ImportError as exc:  # polars needs pyarrow to convert
        raise DataError(f"converting a {type(data).__module__.split('.')[0]} frame to pandas needs "
                        f"pyarrow ({exc}): pip install pyarrow") from None


def to_pandas(data: Any) -> pd.DataFrame:
    """``data`` as a pandas DataFrame with numpy dtypes and unique column names (see the module docstring).

    Parameters
    ----------
    data : DataFrame
        pandas, or any frame narwhals understands (polars, pyarrow, modin, ...).

    Raises
    ------
    DataError
        For anything else, for a Dask DataFrame (only :func:`interlace.fit` takes those),
        and for duplicated column names.
    """
    if not isinstance(data, pd.DataFrame):
        converted = _narwhals_frame(data)
        if converted is None:
            raise DataError(f"data must be a DataFrame (pandas, polars, pyarrow, or any frame the narwhals "
                            f"library supports), got {type(data).__name__}")
        data = converted
    dup = [] if data.columns.is_unique else data.columns[data.columns.duplicated()].unique()
    if len(dup):
        raise DataError(f"data has duplicated column names: {', '.join(map(repr, dup[:10]))}; a formula cannot "
                        "tell them apart: rename or drop the copies")
    return numpy_dtypes(data)


def _numpy_column(col: pd.Series) -> pd.Series | None:
    """A nullable-dtype column as a numpy-dtype one (None when it needs no conversion)."""
    dtype = col.dtype
    if not isinstance(dtype, pd.api.extensions.ExtensionDtype) or isinstance(dtype, pd.CategoricalDtype):
        return None
    if isinstance(dtype, (pd.StringDtype, pd.DatetimeTZDtype, pd.PeriodDtype, pd.IntervalDtype)):
        return None
    has_na = bool(col.isna().any())
    if pd.api.types.is_bool_dtype(dtype):
        if not has_na:
            return pd.Series(col.to_numpy(dtype=bool), index=col.index, name=col.name)
        return pd.Series(col.astype(object).where(col.notna(), None).to_numpy(dtype=object),
                         index=col.index, name=col.name)
    if pd.api.types.is_integer_dtype(dtype) and not has_na:
        return pd.Series(col.to_numpy(dtype=np.int64), index=col.index, name=col.name)
    if pd.api.types.is_numeric_dtype(dtype):
        return pd.Series(col.to_numpy(dtype=float, na_value=np.nan), index=col.index, name=col.name)
    return None


def numpy_dtypes(data: pd.DataFrame) -> pd.DataFrame:
    """``data`` with nullable and Arrow-backed numeric and boolean columns as numpy dtypes.

    Integers without missing values stay integers; with missing values they become
    float64 with NaN (as ``pandas.read_csv`` reads them); booleans with missing values
    become objects (True/False/None).  Other columns are left as they are, and
    ``data`` itself is not modified.
    """
    conv = {}
    for j, dtype in enumerate(data.dtypes.tolist()):
        if not isinstance(dtype, pd.api.extensions.ExtensionDtype):
            continue  # numpy dtypes need nothing (read column by column only the others)
        new = _numpy_column(data.iloc[:, j])
        if new is not None:
            conv[data.columns[j]] = new
    return data.assign(**conv) if conv else data


def align_vector(value: Any, data: pd.DataFrame, what: str) -> Any:
    """A per-row argument (weights, offset) aligned with the rows of ``data``.

    A column name is returned unchanged.  A pandas Series is aligned on ``data``'s
    index by label: its index must hold every label of ``data``'s index (and both
    must be unique unless they are identical).  Anything else is taken by position
    and must have ``len(data)`` values.
    """
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, pd.DataFrame):
        if value.shape[1] != 1:
            raise DataError(f"{what} must be one column, got a DataFrame with {value.shape[1]} columns")
        value = value.iloc[:, 0]
    if isinstance(value, pd.Series):
        if value.index.equals(data.index):
            return value.to_numpy()
        if not data.index.is_unique or not value.index.is_unique:
            raise DataError(f"{what} is a pandas Series whose index differs from data's and one of the two "
                            "has repeated labels, so its rows cannot be matched: pass "
                            f"{what}.to_numpy() to take the values by position")
        missing = data.index.difference(value.index, sort=False)
        if len(missing):
            shown = ", ".join(map(repr, list(missing[:3]))) + (", ..." if len(missing) > 3 else "")
            raise DataError(f"{what} is a pandas Series whose index does not match data's index: "
                            f"{len(missing)} of data's {len(data)} row labels ({shown}) "
                            f"are not in it; align it ({what}.reindex(data.index)) or pass {what}.to_numpy() "
                            "to take the values by position")
        return value.reindex(data.index).to_numpy()
    try:
        arr = np.asarray(value)
    except Exception:  # noqa: BLE001 - ragged or odd objects: say what is wrong
        raise DataError(f"{what} must be a column name or a vector of numbers, got {type(value).__name__}") from None
    if arr.ndim == 0:
        raise DataError(f"{what} must be a column name or a vector with one value per row, got a scalar {value!r}")
    arr = arr.reshape(-1) if arr.ndim > 1 and arr.size == max(arr.shape) else arr
    if arr.ndim != 1 or arr.shape[0] != len(data):
        raise DataError(f"{what} has length {arr.shape[0] if arr.ndim == 1 else arr.shape} but the data "
                        f"have {len(data)} rows")
    return arr


@dataclass
class ModelInput:
    """The data and per-row arguments of a model, aligned: see :func:`model_input`."""

    data: pd.DataFrame
    weights: Any = None
    offset: Any = None


def _subset_mask(subset: Any, data: pd.DataFrame) -> np.ndarray | None:
    if subset is None:
        return None
    if isinstance(subset, pd.Series) and not subset.index.equals(data.index):
        subset = align_vector(subset, data, "subset")
    mask = np.asarray(subset)
    if mask.dtype != bool:
        raise DataError(f"subset must be booleans, one per row of data (got dtype {mask.dtype})")
    if mask.shape != (len(data),):
        raise DataError(f"subset has {mask.size} elements but the data have {len(data)} rows")
    return mask


def model_input(data: Any, subset: Any = None, weights: Any = None, offset: Any = None) -> ModelInput:
    """Convert ``data`` (:func:`to_pandas`), align ``weights`` and ``offset`` with it
    (:func:`align_vector`), then keep the rows ``subset`` selects.

    Parameters
    ----------
    data : DataFrame
        pandas or any frame narwhals understands.
    subset : array-like of bool, optional
        Rows to use (a boolean Series is aligned on the index).
    weights, offset : str, array-like, pandas Series or None
        Column names pass through; vectors of ``len(data)`` values are subset with the
        rows (a vector of the subset's length is taken as already subset).
    """
    data = to_pandas(data)
    mask = _subset_mask(subset, data)
    sub = data if mask is None else data.loc[mask]
    out = ModelInput(sub)
    for what in ("weights", "offset"):
        value = weights if what == "weights" else offset
        if value is None or isinstance(value, str) or not _is_vector(value):
            setattr(out, what, value)
            continue
        if mask is not None and not isinstance(value, pd.Series) and np.shape(value)[:1] == (len(sub),) \
                and len(sub) != len(data):
            setattr(out, what, align_vector(value, sub, what))
            continue
        if isinstance(value, pd.Series):
            setattr(out, what, align_vector(value, sub, what))
            continue
        vec = align_vector(value, data, what)
        setattr(out, what, vec if mask is None else vec[mask])
    return out


def _is_vector(value: Any) -> bool:
    """A per-row vector (anything array-like), as opposed to a structure such as ``VarIdent``."""
    return isinstance(value, (pd.Series, pd.DataFrame, np.ndarray, list, tuple, pd.Index)) \
        or hasattr(value, "__array__")

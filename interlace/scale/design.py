"""The design of a chunked fit: what one pass over the data must find before the blocks are summed.

A model fitted on data that are never in memory at once (a Dask DataFrame, a
parquet file read in batches) must encode every chunk exactly as the in-memory
path encodes the whole data:

* the same complete rows (R's ``na.omit`` over the columns the model uses, as
  :func:`interlace.design.frame.build_frame`);
* the same levels of every grouping factor (sorted, over the complete rows);
* the same fixed-effects columns: a categorical factor's levels are found over
  the whole data, so every chunk builds ``X`` with identical columns.

:func:`scan_chunk` summarises one chunk (row counts, missing values, the group
levels present, and a few representative rows that carry every value of every
categorical factor); :meth:`ScanSummary.merge` adds two summaries; and
:func:`build_design` turns the total into a :class:`ChunkedDesign`: patsy
design infos built on the representative rows (so they hold the full level
sets), and a :class:`~interlace.design.terms.RandomEffects` structure whose
terms hold levels but no rows.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import patsy

from ..design.covariance import Unstructured
from ..design.dataframe import numpy_dtypes
from ..design.fixed import _ENV, _NO_NA_CHECK, _check_response, _r_column_order, build_matrix
from ..design.frame import check_finite, expression_columns, formula_names, numeric_columns, used_columns
from ..design.response import binary_column
from ..design.stored import storable
from ..design.terms import RandomEffects, RandomEffectsTerm, group_labels
from ..errors import DataError, FormulaError, InterlaceError, MissingDataWarning, warn_user
from ..formula import RandomTermSpec, model_terms

__all__ = ["ScanPlan", "ScanSummary", "ChunkedDesign", "make_plan", "plan_for_terms", "scan_chunk",
           "build_design", "complete_rows", "column_kinds", "check_kinds", "MAX_SAMPLE_ROWS"]

#: Most representative rows one chunk may contribute (values of categorical fixed-effect factors).
MAX_SAMPLE_ROWS = 200_000
#: cross-product blocks stored dense when they have at most this many elements
DENSE_BLOCK_ELEMENTS = 16_000_000


@dataclass
class ScanPlan:
    """What to read and check in every chunk (from the formula and the column names only).

    Attributes
    ----------
    formula : str
        The formula as given.
    fixed : str
        Two-sided fixed-effects formula.
    specs : list of RandomTermSpec
    columns : list of str
        Data columns the model uses (formula, random-effects terms, grouping factors).
    weights, offset : str or None
        Column names of the prior weights and the offset.
    failures : str or None
        A GLMM's ``cbind(successes, failures)`` response: the failures expression
        (``fixed`` then has ``I(successes)`` on the left).
    binary : bool
        A binomial GLMM's response column coded 0/1 when it is not numeric (two levels,
        the first the failure, as R).
    glmm : bool
        A GLMM: grouping factors may have as many levels as rows (lme4 does not check).
    """

    formula: str
    fixed: str
    specs: list[RandomTermSpec]
    columns: list[str]
    weights: str | None = None
    offset: str | None = None
    failures: str | None = None
    binary: bool = False
    glmm: bool = False
    #: the columns the formula evaluates (made usable as numbers in every chunk)
    expression_columns: list[str] = field(default_factory=list)

    @property
    def read_columns(self) -> list[str]:
        """Every column to read from the source."""
        out = list(self.columns)
        for c in (self.weights, self.offset):
            if c is not None and c not in out:
                out.append(c)
        return out

    @property
    def frame_columns(self) -> list[str]:
        """Columns checked for missing values, as named in the missing-value report."""
        out = list(self.columns)
        if self.weights is not None:
            out.append("weights")
        if self.offset is not None:
            out.append("offset")
        return out


def make_plan(formula: str, columns: Sequence[str], groups: str | Sequence[str] | None = None,
              random: str | Sequence[str] | None = None, weights: str | None = None,
              offset: str | None = None) -> ScanPlan:
    """Parse the formula and find the columns it uses among ``columns``.

    Parameters
    ----------
    formula : str
    columns : sequence of str
        The source's column names.
    groups, random
        As in :func:`interlace.fit`.
    weights, offset : str, optional
        Column names (vectors cannot be given for data that are not in memory).
    """
    fixed, specs = model_terms(formula, groups, random)
    return plan_for_terms(formula, fixed, specs, columns, weights, offset)


def plan_for_terms(formula: str, fixed: str, specs: list[RandomTermSpec], columns: Sequence[str],
                   weights: str | None = None, offset: str | None = None, column_formula: str | None = None,
                   **options: Any) -> ScanPlan:
    """The :class:`ScanPlan` of parsed terms (``fixed``, ``specs``).

    ``column_formula`` (default ``fixed``) is the formula whose columns are read
    (a GLMM's ``I(successes) + I(failures) ~ x``); ``options`` are further
    :class:`ScanPlan` fields.
    """
    for name, v in (("weights", weights), ("offset", offset)):
        if v is not None and not isinstance(v, str):
            raise InterlaceError(f"{name} must be a column name when the data are chunked "
                                 f"(got {type(v).__name__})")
    if not specs:
        raise DataError("a mixed model needs at least one random-effects term (use groups= or random=)")
    meta = pd.DataFrame(columns=list(columns))
    cols = used_columns(meta, fixed if column_formula is None else column_formula, specs)
    for name, v in (("weights", weights), ("offset", offset)):
        if v is not None and v not in meta.columns:
            raise DataError(f"{name} column {v!r} is not in the data")
    return ScanPlan(formula, fixed, specs, cols, weights, offset, **options,
                    expression_columns=expression_columns(meta, fixed, specs))


def complete_rows(df: pd.DataFrame, plan: ScanPlan) -> tuple[pd.DataFrame, np.ndarray, dict]:
    """The complete rows of a chunk over the plan's columns.

    The columns are prepared as the in-memory path prepares them (nullable dtypes as numpy
    ones, numbers stored as objects as numbers; complex and date columns in a formula refused).

    Returns
    -------
    frame : DataFrame
        The used columns (and weights/offset columns) of the complete rows.
    bad : ndarray of bool
        Incomplete rows.
    na_by_col : dict
        Missing values per column (named as in the missing-value report).
    """
    dup = [c for c in df.columns[df.columns.duplicated()].unique() if c in plan.read_columns]
    if dup:
        raise DataError(f"data has duplicated column names: {', '.join(map(repr, dup))}; a formula cannot "
                        "tell them apart: rename or drop the copies")
    df = numpy_dtypes(df[plan.read_columns])
    missing = df[plan.columns].isna()
    na = {c: int(missing[c].sum()) for c in plan.columns}
    bad = missing.to_numpy().any(axis=1) if len(plan.columns) else np.zeros(len(df), bool)
    for name, col in (("weights", plan.weights), ("offset", plan.offset)):
        if col is not None:
            m = df[col].isna().to_numpy()
            na[name] = int(m.sum())
            bad = bad | m
    return numeric_columns(df.loc[~bad, plan.read_columns], plan.expression_columns), bad, na


def _check_values(frame: pd.DataFrame, plan: ScanPlan) -> None:
    """The value checks of :func:`~interlace.design.frame.build_frame` on one chunk's complete rows."""
    for name, col in (("weights", plan.weights), ("offset", plan.offset)):
        if col is not None and not (pd.api.types.is_numeric_dtype(frame[col])
                                    and not pd.api.types.is_complex_dtype(frame[col])):
            raise DataError(f"{name} column {col!r} must be numeric (real numbers)")
    if plan.weights is not None:
        try:
            w = frame[plan.weights].to_numpy(float)
        except (TypeError, ValueError):
            raise DataError("weights must be numeric") from None
        if np.any(w < 0) or not np.all(np.isfinite(w)):
            raise DataError("weights must be finite and non-negative")
    o = None
    if plan.offset is not None:
        try:
            o = frame[plan.offset].to_numpy(float)
        except (TypeError, ValueError):
            raise DataError("offset must be numeric") from None
    check_finite(frame, plan.columns, o)


def _design_infos(frame: pd.DataFrame, plan: ScanPlan) -> list[patsy.DesignInfo]:
    """patsy designs of the response, the fixed effects and each term's model matrix on ``frame``."""
    lhs, rhs = plan.fixed.split("~", 1)
    with np.errstate(all="ignore"):
        out = [patsy.dmatrix(lhs.strip() + " - 1", frame, eval_env=_ENV, NA_action=_NO_NA_CHECK).design_info,
               patsy.dmatrix(rhs, frame, eval_env=_ENV, NA_action=_NO_NA_CHECK).design_info]
        out += [patsy.dmatrix(s.lhs, frame, eval_env=_ENV, NA_action=_NO_NA_CHECK).design_info
                for s in plan.specs]
    return out


def _check_stateless(infos: list[patsy.DesignInfo]) -> None:
    for info in infos:
        for factor, fi in info.factor_infos.items():
            if fi.state.get("transforms"):
                raise InterlaceError(
                    f"{factor.code!r} uses a stateful transform (center, standardize, scale, poly, splines), "
                    "which needs the whole data at once: compute the column before fitting chunked data")


def _categorical_column_sets(frame: pd.DataFrame, plan: ScanPlan) -> list[list[str]]:
    """For every categorical factor of the model, the data columns it is computed from."""
    head = frame.head(64)
    errors = (patsy.PatsyError, AssertionError, KeyError, IndexError, TypeError, ValueError)
    try:
        infos = _design_infos(head, plan)
    except errors:
        try:
            infos = _design_infos(frame, plan)
        except errors:
            return [[c] for c in plan.columns]  # let the client's build report the error
    _check_stateless(infos)
    sets = []
    for info in infos:
        for factor, fi in info.factor_infos.items():
            if fi.type == "categorical":
                cols = [c for c in plan.columns if c in formula_names(factor.code)]
                if cols and cols not in sets:
                    sets.append(cols)
    return sets


def _kind(col: pd.Series) -> str | None:
    """What a column holds, as the designs see it: numeric, boolean, categorical, text, datetime
    (None for an object column with no values, which says nothing)."""
    dtype = col.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if isinstance(dtype, pd.CategoricalDtype):
        return "categorical"
    if pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    inferred = pd.api.types.infer_dtype(col, skipna=True)
    if inferred == "empty":
        return None
    if inferred in ("integer", "floating", "mixed-integer-float", "decimal"):
        return "numeric"
    return "boolean" if inferred == "boolean" else "text"


def column_kinds(df: pd.DataFrame, columns: Sequence[str]) -> dict[str, str]:
    """:func:`_kind` of each of ``columns`` that says something."""
    out = {}
    for c in columns:
        k = _kind(df[c])
        if k is not None:
            out[c] = k
    return out


def _merge_kinds(a: dict, b: dict, where: str = "in another chunk") -> dict:
    for c, k in b.items():
        if c in a and a[c] != k:
            raise DataError(f"column {c!r} holds {k} values in one chunk and {a[c]} values {where}: give it "
                            "one type in every chunk or partition (cast it before fitting)")
    return {**a, **b}


def check_kinds(df: pd.DataFrame, design: ChunkedDesign) -> None:
    """Refuse a chunk whose columns hold another type of values than the first pass saw."""
    _merge_kinds(design.kinds, column_kinds(df, design.plan.read_columns), "in the first pass (did the data "
                 "change between the passes?)")


@dataclass
class ScanSummary:
    """What the first pass found in one chunk or, after :meth:`merge`, in all of them.

    Attributes
    ----------
    n_rows, n_complete : int
        Rows read, and complete rows among them.
    na_by_col : dict
        Missing values per column.
    labels : list of pandas.Index
        Per random-effects term, the grouping-factor labels present among the complete rows.
    sample : DataFrame or None
        Complete rows carrying every value of every categorical factor (and one row at least).
    n_positive_weights : int
    categories : dict
        Categories of the pandas-categorical columns, per column (must agree across chunks).
    cat_sets : list of list of str
        The columns each categorical factor is computed from.
    kinds : dict
        What each read column holds (:func:`column_kinds`; must agree across chunks).
    """

    n_rows: int = 0
    n_complete: int = 0
    na_by_col: dict = field(default_factory=dict)
    labels: list = field(default_factory=list)
    sample: pd.DataFrame | None = None
    n_positive_weights: int = 0
    categories: dict = field(default_factory=dict)
    cat_sets: list = field(default_factory=list)
    kinds: dict = field(default_factory=dict)

    def merge(self, other: ScanSummary) -> ScanSummary:
        """The summary of both chunks."""
        if not self.labels:
            return other
        if not other.labels:
            return self
        kinds = _merge_kinds(self.kinds, other.kinds)
        for c, cats in other.categories.items():
            if c in self.categories and list(self.categories[c]) != list(cats):
                raise DataError(f"categorical column {c!r} has different categories in different chunks "
                                f"({list(self.categories[c])[:5]}... vs {list(cats)[:5]}...): give every "
                                "chunk the same categories, or use a string column")
        na = dict(self.na_by_col)
        for c, v in other.na_by_col.items():
            na[c] = na.get(c, 0) + v
        # an empty chunk's labels carry no dtype information: do not let them change the levels' dtype
        labels = [b if not len(a) else a if not len(b) else a.append(b).unique()
                  for a, b in zip(self.labels, other.labels)]
        cat_sets = list(self.cat_sets) + [c for c in other.cat_sets if c not in self.cat_sets]
        if self.sample is None:
            sample = other.sample
        elif other.sample is None:
            sample = self.sample
        else:
            sample = pd.concat([self.sample, other.sample], ignore_index=True)
            keep = np.zeros(len(sample), bool)
            keep[0] = True
            for cols in cat_sets:
                keep |= ~sample.duplicated(subset=cols).to_numpy()
            sample = sample.loc[keep].reset_index(drop=True)
        return ScanSummary(self.n_rows + other.n_rows, self.n_complete + other.n_complete, na, labels, sample,
                           self.n_positive_weights + other.n_positive_weights,
                           {**self.categories, **other.categories}, cat_sets, kinds)


def scan_chunk(df: pd.DataFrame, plan: ScanPlan) -> ScanSummary:
    """First pass over one chunk: counts, missing values, group levels and representative rows.

    Parameters
    ----------
    df : DataFrame
        One chunk (any rows of the data).
    plan : ScanPlan
    """
    frame, bad, na = complete_rows(df, plan)
    kinds = column_kinds(df, plan.read_columns)
    cats = {c: tuple(df[c].cat.categories) for c in plan.columns
            if isinstance(df[c].dtype, pd.CategoricalDtype)}
    labels = []
    for spec in plan.specs:
        lab = group_labels(frame, spec.group)
        labels.append(pd.Index(pd.unique(lab)))
    if len(frame) == 0:
        return ScanSummary(len(df), 0, na, labels, None, 0, cats, [], kinds)
    _check_values(frame, plan)
    npos = int(np.sum(frame[plan.weights].to_numpy(float) > 0)) if plan.weights is not None else len(frame)
    used = frame[plan.columns]
    keep = np.zeros(len(used), bool)
    keep[0] = True
    cat_sets = _categorical_column_sets(used, plan)
    for cols in cat_sets:
        keep |= ~used.duplicated(subset=cols).to_numpy()
    sample = used.loc[keep].reset_index(drop=True)
    if len(sample) > MAX_SAMPLE_ROWS:
        raise DataError(f"the categorical fixed-effect factors take more than {MAX_SAMPLE_ROWS} distinct values "
                        "in one chunk: too many for chunked fitting")
    return ScanSummary(len(df), len(frame), na, labels, sample, npos, cats, cat_sets, kinds)


@dataclass
class ChunkedDesign:
    """Everything needed to encode a chunk as the in-memory path encodes the whole data.

    Attributes
    ----------
    plan : ScanPlan
    response : str
    y_info, x_info : patsy.DesignInfo
        Designs of the response and of the full fixed-effects matrix (patsy's column order).
    x_names : list of str
        patsy's column names of the full matrix.
    r_order : ndarray of int
        Positions of patsy's columns in R's order.
    re : RandomEffects
        The random-effects structure with the global levels and no rows.
    n, n_rows, n_dropped : int
        Complete rows, rows read, rows dropped for missing values.
    na_by_col : dict
        Missing values per column (those with any).
    a21_dense, a22_dense : bool
        Storage of the summed blocks ``Z2ᵀWZ1`` and ``Z2ᵀWZ2``.
    kinds : dict
        What each read column holds (every chunk must agree).
    f_info : patsy.DesignInfo or None
        Design of a ``cbind(successes, failures)`` response's failures.
    response_levels : list or None
        The two levels of a non-numeric binomial response (the second is the success).
    summary : ScanSummary or None
        The first pass's summary the design was built from (pickling rebuilds the design from it).
    """

    plan: ScanPlan
    response: str
    y_info: patsy.DesignInfo
    x_info: patsy.DesignInfo
    x_names: list[str]
    r_order: np.ndarray
    re: RandomEffects
    n: int
    n_rows: int
    n_dropped: int
    na_by_col: dict
    a21_dense: bool
    a22_dense: bool
    kinds: dict = field(default_factory=dict)
    f_info: patsy.DesignInfo | None = None
    response_levels: list | None = None
    summary: ScanSummary | None = field(default=None, repr=False)

    def __reduce__(self) -> tuple:
        """Pickled as the first pass's plan and summary (patsy's designs do not pickle): rebuilt on loading."""
        if self.summary is None:
            raise TypeError("a ChunkedDesign without its first pass's summary cannot be pickled")
        return (build_design, (self.plan, self.summary, False))

    @property
    def n_x(self) -> int:
        """Columns of the full fixed-effects matrix."""
        return len(self.x_names)


def _levels(labels: pd.Index, name: str) -> pd.Index:
    """Sorted levels, as ``pd.factorize(labels, sort=True)`` on the whole data gives them."""
    _, uniq = pd.factorize(labels, sort=True)
    return pd.Index(uniq, name=name)


def build_design(plan: ScanPlan, summary: ScanSummary, warn: bool = True) -> ChunkedDesign:
    """The design of the whole data from the first pass's summary.

    Issues :class:`~interlace.errors.MissingDataWarning` when rows were dropped,
    with the in-memory path's message.
    """
    if summary.n_rows == 0:
        raise DataError("data has no rows")
    by_col = {c: v for c, v in summary.na_by_col.items() if v}
    order = {c: i for i, c in enumerate(plan.frame_columns)}
    by_col = dict(sorted(by_col.items(), key=lambda kv: order.get(kv[0], len(order))))
    n = summary.n_complete
    n_dropped = summary.n_rows - n
    if n == 0:
        raise DataError("no rows left after dropping rows with missing values "
                        f"(missing per column: {by_col})")
    if n_dropped and warn:
        warn_user(f"{n_dropped} of {summary.n_rows} rows dropped for missing values "
                  f"(missing per column: {by_col})", MissingDataWarning)
    if plan.weights is not None and summary.n_positive_weights == 0:
        raise DataError("weights are all zero: no observation carries information")
    R = summary.sample
    for c, cats in summary.categories.items():
        if c in R.columns:
            R[c] = pd.Categorical(R[c], categories=list(cats), ordered=R[c].dtype.ordered
                                  if isinstance(R[c].dtype, pd.CategoricalDtype) else False)
    lhs, rhs = plan.fixed.split("~", 1)
    response_levels = None
    if plan.binary:
        R, response_levels = _binary_response(R, lhs.strip())
    R = _check_response(lhs, R)
    try:
        with np.errstate(all="ignore"):
            y_info = storable(patsy.dmatrix(lhs.strip() + " - 1", R, eval_env=_ENV,
                                            NA_action=_NO_NA_CHECK).design_info)
    except (patsy.PatsyError, AssertionError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise FormulaError(f"cannot evaluate response {lhs.strip()!r}: {exc}") from None
    if len(y_info.column_names) != 1:
        raise DataError(f"response {lhs.strip()!r} is not numeric: it expands to {len(y_info.column_names)} columns")
    x_info = build_matrix(rhs, R, "the fixed-effects model matrix").design_info
    f_info = None
    if plan.failures is not None:
        f_info = build_matrix(f"I({plan.failures}) - 1", R, "the failures").design_info
    term_infos = [build_matrix(s.lhs, R, f"random-effects term {s.source!r}").design_info for s in plan.specs]
    _check_stateless([y_info, x_info] + term_infos)
    r_order = _r_column_order(x_info, rhs) if x_info.column_names else np.zeros(0, np.intp)
    terms = []
    for spec, info, lab in zip(plan.specs, term_infos, summary.labels):
        levels = _levels(lab, spec.name)
        p = len(info.column_names)
        if len(levels) < 2:
            raise DataError(
                f"grouping factor {spec.name!r} of term {spec.source!r} has {len(levels)} level; "
                "a random effect needs at least 2 sampled levels")
        if len(levels) >= n and not plan.glmm:
            raise DataError(
                f"grouping factor {spec.name!r} has {len(levels)} levels for {n} observations; "
                "the number of levels must be less than the number of observations")
        if (p * len(levels) > n if plan.glmm else p * len(levels) >= n):
            raise DataError(
                f"number of observations (={n}) <= number of random effects (={p * len(levels)}) for term "
                f"{spec.source!r}; the random-effects parameters and the residual variance are probably "
                "unidentifiable (as lme4 says): use fewer random coefficients or more observations")
        names = ["Intercept" if c == "Intercept" else c for c in info.column_names]
        terms.append(RandomEffectsTerm(spec, levels, np.zeros(0, np.int64), np.zeros((0, p)), names, info,
                                       Unstructured(p)))
    re = RandomEffects(terms)
    q1 = re.terms[0].q
    q2 = re.q - q1
    return ChunkedDesign(plan, lhs.strip(), y_info, x_info, list(x_info.column_names), r_order, re, n,
                         summary.n_rows, n_dropped, by_col,
                         a21_dense=q1 * q2 <= DENSE_BLOCK_ELEMENTS, a22_dense=q2 * q2 <= DENSE_BLOCK_ELEMENTS,
                         kinds=dict(summary.kinds), f_info=f_info, response_levels=response_levels, summary=summary)


def _binary_response(R: pd.DataFrame, name: str) -> tuple[pd.DataFrame, list | None]:
    """A binomial response column that is not numeric, coded 0/1 (:func:`~interlace.design.response.binary_column`)
    on the representative rows, which carry every value of it; returns the rows and its two levels."""
    if name not in R.columns:
        return R, None
    col = R[name]
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        return R, None
    levels = [False, True] if pd.api.types.is_bool_dtype(col) else (
        list(col.cat.categories) if isinstance(col.dtype, pd.CategoricalDtype) else sorted(col.dropna().unique()))
    return binary_column(R, name), levels

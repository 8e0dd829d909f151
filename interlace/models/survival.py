"""What the Cox models share: the survival response, strata, clusters and the formula interface.

:class:`CoxModel` is the base of :class:`~interlace.models.coxme.CoxME` (Gaussian frailties,
R's ``coxme``) and :class:`~interlace.models.coxph.CoxPH` (no random effects, R's ``coxph``).
Both are :class:`~interlace.models.base.MixedModel` subclasses — a Cox model without random
effects carries an empty random-effects structure, as a model with only a residual structure
does — so ``clone``/``refit`` and the row handling are the ones every model uses.  The risk
sets, strata and ``(start, stop]`` intervals live in :class:`~interlace.response.survival.CoxData`;
the objectives get them from there.

The response is parsed by :func:`~interlace.families.cox.parse_surv` (no ``eval`` of the
formula's text), ``strata(...)`` and ``cluster(...)`` are taken out of the right side by
:func:`~interlace.families.cox.split_specials` before the fixed-effects matrix is built.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from ..design import build_fixed, build_frame, build_random_effects
from ..design.dataframe import model_input
from ..design.terms import RandomEffects
from ..errors import DataError, FormulaError, InterlaceError
from ..families.cox import TIES, SurvSpec, parse_surv, split_specials, survival_response
from ..formula import model_terms
from ..formula.parse import split_offsets
from ..response.survival import CoxData
from .base import MixedModel

__all__ = ["CoxModel", "CoxFormula", "cox_formula", "new_strata", "strata_codes"]

_TIME = "__interlace_time__"


def _factor(col: pd.Series) -> tuple[np.ndarray, list]:
    """Codes and levels of a column in R's factor order (categories as given, else sorted values)."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        cat = col.cat.remove_unused_categories()
        return cat.cat.codes.to_numpy(np.int64), list(cat.cat.categories)
    vals = col.to_numpy()
    try:
        levels, codes = np.unique(vals, return_inverse=True)
    except TypeError:
        levels, codes = np.unique(vals.astype(str), return_inverse=True)
    return codes.astype(np.int64), list(levels)


def _label(v: Any) -> str:
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)


def strata_codes(data: pd.DataFrame, columns: Sequence[str]) -> tuple[np.ndarray, list[str], dict]:
    """Stratum of each row, the strata's labels and the map from value tuples to strata, as
    survival's ``strata(a, b)``.

    One stratum per combination present, the first column varying slowest; labels
    ``"a=x"`` (one column) or ``"a=x, b=y"``.
    """
    if not columns:
        return np.zeros(len(data), np.int64), [], {}
    parts = [_factor(data[c]) for c in columns]
    codes = np.column_stack([p[0] for p in parts])
    combos, inv = np.unique(codes, axis=0, return_inverse=True)
    labels, mapping = [], {}
    for k, row in enumerate(combos):
        vals = tuple(parts[j][1][c] for j, c in enumerate(row))
        labels.append(", ".join(f"{c}={_label(v)}" for c, v in zip(columns, vals, strict=True)))
        mapping[tuple(v.item() if isinstance(v, np.generic) else v for v in vals)] = k
    return np.asarray(inv, np.int64).ravel(), labels, mapping


def new_strata(data: pd.DataFrame, columns: Sequence[str], mapping: dict, labels: Sequence[str]) -> np.ndarray:
    """Strata codes of new rows (their values of the strata columns must occur in the fitted data)."""
    missing = [c for c in columns if c not in data.columns]
    if missing:
        raise DataError(f"newdata has no strata column {missing[0]!r}")
    vals = [data[c].to_numpy(object) for c in columns]
    out = np.empty(len(data), np.int64)
    for i in range(len(data)):
        key = tuple(v[i].item() if isinstance(v[i], np.generic) else v[i] for v in vals)
        if key not in mapping:
            raise DataError(f"newdata row {i} is in a stratum the model has not seen "
                            f"({', '.join(f'{c}={_label(k)}' for c, k in zip(columns, key, strict=True))}; "
                            f"strata: {', '.join(labels)})")
        out[i] = mapping[key]
    return out


@dataclass
class CoxFormula:
    """The pieces of a Cox formula, evaluated on the complete-case rows (see :func:`cox_formula`)."""

    surv: SurvSpec
    start: np.ndarray | None
    time: np.ndarray
    status: np.ndarray
    exog: pd.DataFrame
    fixed: Any
    frame: Any
    specs: list
    strata: np.ndarray | None
    strata_labels: list[str]
    strata_vars: list[str]
    strata_map: dict
    cluster: np.ndarray | None
    cluster_var: str | None
    rhs: str
    formula: str
    offset_terms: list[str]


def cox_formula(formula: str, data: pd.DataFrame, groups: str | Sequence[str] | None = None,
                random: str | Sequence[str] | None = None, duration_col: str | None = None,
                event_col: str | None = None, entry_col: str | None = None,
                weights: str | npt.ArrayLike | None = None, offset: str | npt.ArrayLike | None = None,
                subset: npt.ArrayLike | None = None) -> CoxFormula:
    """Parse a Cox formula and evaluate its parts on ``data`` (rows with a missing value dropped).

    ``"Surv(time, status) ~ x + strata(s) + cluster(id) + (1 | g)"``, ``Surv(start, stop, status)``
    for counting-process data, or a one-sided ``"~ x"`` with ``duration_col``/``event_col``
    (and ``entry_col`` for entry times).
    """
    if not isinstance(formula, str):
        raise FormulaError(f"formula must be a string, got {type(formula).__name__}")
    inp = model_input(data, subset, weights, offset)
    data, weights, offset = inp.data, inp.weights, inp.offset
    one_sided = formula.strip().startswith("~")
    surv: SurvSpec | None
    if duration_col is not None or event_col is not None or entry_col is not None:
        if duration_col is None or event_col is None:
            raise FormulaError("give both duration_col= and event_col= (or Surv(time, status) in the formula)")
        if not one_sided:
            raise FormulaError(f"formula {formula!r} has a left side and duration_col/event_col were given: "
                               "use one of the two (e.g. '~ age + sex' with the columns)")
        for c, what in ((duration_col, "duration_col"), (event_col, "event_col"), (entry_col, "entry_col")):
            if c is not None and c not in data.columns:
                raise DataError(f"{what} {c!r} is not in the data")
        surv = SurvSpec(("col", duration_col), ("col", event_col),
                        None if entry_col is None else ("col", entry_col),
                        f"Surv({'' if entry_col is None else f'{entry_col}, '}{duration_col}, {event_col})")
        body = f"{_TIME} {formula.strip()}"
    elif one_sided:
        raise FormulaError(f"formula {formula!r} has no response: write 'Surv(time, status) ~ ...' or give "
                           "duration_col= and event_col=")
    else:
        surv = None
        body = formula
    fixed, specs = model_terms(body, groups, random)
    fixed, offset_terms = split_offsets(fixed)
    lhs, rhs = (part.strip() for part in fixed.split("~", 1))
    if surv is None:
        surv = parse_surv(lhs)
        if surv is None:
            raise FormulaError(f"the response {lhs!r} must be Surv(time, status) (1 = event, 0 = censored) or "
                               "Surv(start, stop, status), or give duration_col= and event_col= with a one-sided "
                               "formula")
    rhs, strata_vars, cluster_var = split_specials(rhs)
    extra = surv.columns + [c for c in strata_vars if c not in surv.columns]
    if cluster_var is not None and cluster_var not in extra:
        extra.append(cluster_var)
    for c in extra:
        if c not in data.columns:
            what = "strata()" if c in strata_vars else "cluster()" if c == cluster_var else "Surv()"
            raise DataError(f"column {c!r} used in {what} is not in the data "
                            f"(available columns: {', '.join(map(str, data.columns[:20]))})")
    frame = build_frame(data, f"~ {rhs}", specs, weights=weights, offset=offset, extra=extra,
                        offset_terms=offset_terms)
    start, time, status = surv.evaluate(frame.data)
    fx = build_fixed(f"{_TIME} ~ {rhs}", frame.data.assign(**{_TIME: time}))
    keep = [i for i, nme in enumerate(fx.names) if nme != "Intercept"]
    fx.X, fx.names, fx.keep = fx.X[:, keep], [fx.names[i] for i in keep], fx.keep[keep]
    exog = pd.DataFrame(fx.X, index=frame.data.index, columns=fx.names)
    strata, labels, smap = strata_codes(frame.data, strata_vars)
    cluster = None
    if cluster_var is not None:
        cluster = _factor(frame.data[cluster_var])[0]
    shown = f"{surv.text} {formula.strip()}" if one_sided else formula
    return CoxFormula(surv, start, time, status, exog, fx, frame, specs, strata if strata_vars else None, labels,
                      strata_vars, smap, cluster, cluster_var, rhs, shown, offset_terms)


class CoxModel(MixedModel):
    """Base of the Cox models: survival response, ties, strata, weights, offset, clusters.

    Parameters
    ----------
    endog : array-like (n,)
        Follow-up (stop) times.
    exog : array-like (n, p)
        Fixed effects, without an intercept.
    random_effects : RandomEffects or None
        None: no random effects (an empty structure).
    status : array-like (n,)
        1 = event, 0 = censored.
    ties : {"efron", "breslow"}
    weights : array-like, optional
        Positive case weights.
    offset : array-like, optional
    start : array-like (n,), optional
        Entry times of counting-process ``(start, stop]`` data.
    strata : array-like of int (n,), optional
        Stratum codes (separate baseline hazards).
    strata_labels : list of str, optional
    cluster : array-like (n,), optional
        Cluster codes for robust (sandwich) variances.
    engine : str
    """

    _per_row = ("endog", "exog", "status", "weights", "offset", "start", "strata", "cluster")

    def __init__(self, endog: Any, exog: Any, random_effects: RandomEffects | None = None, status: Any = None,
                 ties: str = "efron", weights: Any = None, offset: Any = None, start: Any = None,
                 strata: Any = None, strata_labels: Sequence[str] | None = None, cluster: Any = None,
                 engine: str = "auto", **kwargs: Any) -> None:
        n = np.asarray(endog).shape[0]
        if random_effects is None:
            random_effects = RandomEffects([], n=n)
        super().__init__(endog, exog, random_effects, engine=engine, **kwargs)
        if ties not in TIES:
            raise InterlaceError(f"ties must be 'efron' or 'breslow', got {ties!r}")
        if status is None:
            raise DataError("status (1 = event, 0 = censored) is required")
        st0, time, st = survival_response(np.asarray(self.endog, float), np.asarray(status),
                                          start=None if start is None else np.asarray(start, float))
        self.status = st
        self.start = st0
        self.ties = ties
        self.weights = None if weights is None else np.asarray(weights, float)
        if self.weights is not None and (self.weights.shape != (n,) or np.any(~(self.weights > 0))):
            raise DataError("weights must be positive (zero or negative case weights are not allowed)")
        self.offset = None if offset is None else np.asarray(offset, float)
        self.strata = None if strata is None else np.asarray(strata, np.int64)
        if self.strata is not None and self.strata.shape != (n,):
            raise DataError(f"strata has {self.strata.size} values for {n} rows")
        self.strata_labels = list(strata_labels or [])
        self.cluster = None if cluster is None else np.asarray(cluster)
        if self.cluster is not None and self.cluster.shape != (n,):
            raise DataError(f"cluster has {self.cluster.size} values for {n} rows")
        self.cox_data = CoxData(time, st, self.weights, ties, start=self.start, strata=self.strata)
        self.n_events = self.cox_data.n_events
        self.df_model = self.k_fe
        self.df_resid = self.nobs - self.k_fe

    def _init_kwargs(self) -> dict:
        return {**super()._init_kwargs(), "status": self.status, "ties": self.ties, "weights": self.weights,
                "offset": self.offset, "start": self.start, "strata": self.strata,
                "strata_labels": self.strata_labels, "cluster": self.cluster}

    @property
    def n_strata(self) -> int:
        """Number of strata (1 without ``strata()``)."""
        return self.cox_data.n_strata if self.strata is not None else 1

    @classmethod
    def _from_parts(cls, parts: CoxFormula, re: RandomEffects | None, ties: str, **options: Any) -> Any:
        frame = parts.frame
        endog = pd.Series(parts.time, index=frame.data.index, name=parts.surv.names[1])
        mod = cls(endog=endog, exog=parts.exog, random_effects=re, status=parts.status, ties=ties,
                  weights=frame.weights, offset=frame.offset, start=parts.start, strata=parts.strata,
                  strata_labels=parts.strata_labels, cluster=parts.cluster, frame=frame, fixed_design=parts.fixed,
                  formula=parts.formula, **options)
        mod.specs = parts.specs
        mod.strata_vars = parts.strata_vars
        mod.strata_map = parts.strata_map
        mod.cluster_var = parts.cluster_var
        mod.surv_spec = parts.surv
        mod.start_name, mod.time_name, mod.status_name = parts.surv.names
        return mod

    @staticmethod
    def _random_effects(parts: CoxFormula, allow_empty: bool) -> RandomEffects:
        return build_random_effects(parts.specs, parts.frame.data, check_nobs=False, allow_empty=allow_empty)

    _carried = MixedModel._carried + ("strata_vars", "strata_map", "cluster_var", "start_name", "surv_spec")

    def new_strata(self, newdata: pd.DataFrame) -> np.ndarray | None:
        """Strata codes of the rows of ``newdata`` (None for a model without strata)."""
        if self.strata is None:
            return None
        cols = getattr(self, "strata_vars", None)
        if not cols:
            raise DataError("this model was built from arrays: its strata cannot be read from new data")
        return new_strata(newdata, cols, self.strata_map, self.strata_labels)

    def x_means(self) -> np.ndarray:
        """survival's ``means``: weighted column means of X, 0 for columns whose values are all in
        {−1, 0, 1} (which coxph does not centre)."""
        X = np.asarray(self.exog, float)
        w = np.ones(X.shape[0]) if self.weights is None else self.weights
        m = (w @ X) / w.sum() if X.shape[1] else np.zeros(0)
        flat = np.all(np.isin(X, (-1.0, 0.0, 1.0)), axis=0)
        return np.where(flat, 0.0, m)

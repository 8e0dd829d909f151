"""What every mixed-model class shares: construction glue, the engines of its rows, and ``refit``.

A model is immutable once built: ``refit`` (lme4's ``refit``/``update``, MixedModels.jl's
``refit!``) makes a new model from this one's design with a new response, a subset of
the rows, new weights or another option, and fits it.  Models of the same rows share
one :class:`~interlace.linalg.engines.RowEngines`, so a refit does no structural work
(patterns, symbolic factorization); analyses (bootstrap, profiles, case deletion, LR
tests) call ``refit`` and never build models themselves.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
from statsmodels.base.model import LikelihoodModel

from ..design.dataframe import model_input
from ..design.fixed import FixedDesign
from ..design.frame import ModelFrame
from ..design.terms import RandomEffects
from ..errors import DataError
from ..linalg.engines import PLS_ENGINES, RowEngines, parse_engine
from ..linalg.threads import blas_limits
from .data import LabelledData

__all__ = ["MixedModel", "select_rows"]


def select_rows(data: Any, subset: Any) -> pd.DataFrame:
    """``data`` as pandas (:func:`~interlace.design.dataframe.to_pandas`) restricted to a boolean
    ``subset`` (None: all rows), with a clear length check."""
    return model_input(data, subset).data


def _row_positions(rows: Any, n: int) -> np.ndarray:
    """Row positions from positions or a boolean mask, checked against ``n`` rows."""
    rows = np.asarray(rows)
    if rows.dtype == bool:
        if rows.shape != (n,):
            raise DataError(f"rows mask has {rows.size} elements but the model has {n} rows")
        return np.flatnonzero(rows)
    rows = rows.astype(np.intp).ravel()
    if rows.size and (rows.min() < -n or rows.max() >= n):
        raise DataError(f"row positions must lie in 0..{n - 1}")
    return rows


def _take(values: Any, rows: np.ndarray) -> Any:
    if values is None:
        return None
    if isinstance(values, (pd.Series, pd.DataFrame)):
        return values.iloc[rows]
    return np.asarray(values)[rows]


class MixedModel(LikelihoodModel):
    """Base of the mixed-model classes (statsmodels ``LikelihoodModel``).

    Parameters
    ----------
    endog, exog : array-like
        Response and fixed-effects model matrix.
    random_effects : RandomEffects
    engine : str
        One of the family's engine names (:func:`~interlace.linalg.engines.parse_engine`).

    Other Parameters
    ----------------
    frame : ModelFrame, optional
        The complete-case rows the model was built from (formula interface).
    fixed_design : FixedDesign, optional
        The fixed-effects design (encodes new data for ``predict``).
    formula : str, optional
    labels : tuple, optional
        ``(row index, response name, column names)`` of array ``endog`` and ``exog`` (formula
        interface): statsmodels' pandas data then makes its Series and DataFrame on first use.
    """

    #: engine names the family accepts
    _engine_names: tuple[str, ...] = PLS_ENGINES
    #: attributes set by ``from_formula`` that a model made by :meth:`clone` keeps
    _carried: tuple[str, ...] = ("specs", "groups_arg", "offset_arg", "response_name", "time_name", "status_name")

    def __init__(self, endog: Any, exog: Any, random_effects: RandomEffects, engine: str = "auto",
                 **kwargs: Any) -> None:
        #: the complete-case rows and columns used (None for a model built from arrays)
        self.model_frame: ModelFrame | None = kwargs.pop("frame", None)
        #: the fixed-effects design (None for a model built from arrays)
        self.fixed_design: FixedDesign | None = kwargs.pop("fixed_design", None)
        self.formula: str | None = kwargs.pop("formula", None)
        self._labels = kwargs.pop("labels", None)
        super().__init__(endog, exog, missing="none", **kwargs)
        self.engine = parse_engine(engine, self._engine_names)
        self.random_effects_structure = random_effects
        self.nobs = float(self.endog.shape[0])
        self.k_fe = self.exog.shape[1]
        self._engines: RowEngines | None = None

    def _handle_data(self, endog: Any, exog: Any, missing: str, hasconst: Any, **kwargs: Any) -> Any:
        """statsmodels' data of ``endog``/``exog``; arrays given with ``labels=(index, yname, xnames)``
        make a :class:`~interlace.models.data.LabelledData`, whose pandas objects are made on first use."""
        labels = self.__dict__.pop("_labels", None)
        if labels is None:
            return super()._handle_data(endog, exog, missing, hasconst, **kwargs)
        return LabelledData(np.asarray(endog, float), np.asarray(exog, float), *labels, missing=missing,
                            hasconst=hasconst, **kwargs)

    # ---------------------------------------------------------------- pickling
    #: caches of engines and objectives: rebuilt on demand (``row_engines()``, ``objective()``),
    #: never pickled (a CHOLMOD factor does not pickle, and they are as large as the data)
    _rebuilt_on_demand: tuple[str, ...] = ("_engines", "_deviance", "_lap")

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        for key in self._rebuilt_on_demand:
            if key in state:
                state[key] = None
        return state

    #: per-row attributes besides statsmodels' (``endog``, ``exog``, ``data``) that :meth:`drop_rows` clears
    _row_attributes: tuple[str, ...] = ("weights",)

    def drop_rows(self) -> None:
        """Drop the rows (the results' ``remove_data()`` calls it after statsmodels' own removal).

        What encodes new data stays: the fixed-effects design, the random-effects terms'
        levels and designs, the formula, the frame's columns and dropped-row counts; an
        offset is remembered as present.  Refits and objectives then raise a clear error.
        """
        self.random_effects_structure = self.random_effects_structure.without_rows()
        if isinstance(self.fixed_design, FixedDesign):
            fx = self.fixed_design
            self.fixed_design = replace(fx, y=np.zeros(0), X=np.zeros((0, fx.X.shape[1])))
        if self.model_frame is not None:
            self.model_frame = self.model_frame.without_rows()
        self.data.frame = None
        for key in self._row_attributes:
            if getattr(self, key, None) is not None:
                setattr(self, key, None)
        if getattr(self, "offset", None) is not None:
            self.offset = np.zeros(0)  # "the model has an offset" (new data must give one)
        for key in self._rebuilt_on_demand:
            if key in self.__dict__:
                setattr(self, key, None)
        self.endog = self.exog = None

    def _need_rows(self, what: str) -> None:
        if self.endog is None:
            raise DataError(f"{what} needs the model's rows, which remove_data() removed")

    # ---------------------------------------------------------------- engines
    def row_engines(self) -> RowEngines:
        """The PLS engines of this model's rows (shared with the refits of the same rows)."""
        self._need_rows("the PLS engines")
        if self._engines is None:
            self._engines = RowEngines(self.random_effects_structure, np.asarray(self.exog, float), self.engine)
        return self._engines

    # ---------------------------------------------------------------- fitting
    def fit(self, start_params: Any = None, method: str = "bobyqa", maxiter: int | None = None,
            check_conv: bool = True, blas_threads: int | None = None, **kwargs: Any) -> Any:
        """Estimate the parameters (the model class's docstring says how).

        Parameters
        ----------
        start_params : array-like, optional
            Starting parameters (default the objective's own start).
        method : str
            Optimizer: ``"bobyqa"`` (default, Py-BOBYQA), ``"nlopt_bobyqa"``, ``"L-BFGS-B"``,
            ``"Nelder-Mead"``, ``"Powell"``.
        maxiter : int, optional
            Evaluation budget.
        check_conv : bool
            lme4's convergence checks (the Hessian they compute also gives the SEs).
        blas_threads : int, optional
            BLAS threads during the fit (default: one unless the dense part of the factor is large).

        Returns
        -------
        The family's results wrapper.
        """
        # overflow in the links at extreme η is expected under separation; it is reported
        # by the separation check instead of as numpy's RuntimeWarnings
        with blas_limits(self.random_effects_structure, blas_threads), np.errstate(all="ignore"):
            return self._fit(start_params, method, maxiter, check_conv)

    def _fit(self, start_params: Any, method: str, maxiter: int | None, check_conv: bool) -> Any:
        raise NotImplementedError

    # ---------------------------------------------------------------- rebuilding
    def _init_kwargs(self) -> dict:
        """Constructor arguments that rebuild this model (subclasses add their own)."""
        return {"endog": self.data.orig_endog, "exog": self.data.orig_exog,
                "random_effects": self.random_effects_structure, "engine": self.engine,
                "frame": self.model_frame, "fixed_design": self.fixed_design, "formula": self.formula}

    #: constructor arguments holding one value per row (subset by ``rows``)
    _per_row: tuple[str, ...] = ("endog", "exog", "weights", "offset")

    def clone(self, rows: Any = None, **changes: Any) -> MixedModel:
        """A new model with this one's design and ``changes`` to its constructor arguments.

        Parameters
        ----------
        rows : array-like of int or bool, optional
            Keep only these rows (positions or a mask): the per-row arguments, the random
            effects (every level kept) and the model frame are subset.
        **changes
            Constructor arguments to replace (``endog`` may be a plain array: it takes the
            model's row labels and name).
        """
        self._need_rows("refitting (clone(), refit())")
        args = self._init_kwargs()
        unknown = set(changes) - set(args)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no option {', '.join(sorted(unknown))}")
        if "endog" in changes and changes["endog"] is not None:
            new = np.asarray(changes["endog"], dtype=float)
            old = self.data.orig_endog
            if new.shape[0] != old.shape[0]:
                raise DataError(f"the new response has {new.shape[0]} values for {old.shape[0]} rows")
            changes["endog"] = pd.Series(new, index=old.index, name=old.name) if isinstance(old, pd.Series) else new
        args.update({k: v for k, v in changes.items() if not (k == "endog" and v is None)})
        if rows is not None:
            pos = _row_positions(rows, int(self.nobs))
            for key in self._per_row:
                if key in args:
                    args[key] = _take(args[key], pos)
            args["random_effects"] = args["random_effects"].subset(pos)
            if args.get("frame") is not None:
                args["frame"] = args["frame"].subset(pos)
        model = type(self)(**args)
        for attr in self._carried:
            if hasattr(self, attr):
                setattr(model, attr, getattr(self, attr))
        model.data.frame = getattr(self.data, "frame", None)  # the user's data (statsmodels' convention)
        same_rows = rows is None and not {"exog", "random_effects", "engine"} & set(changes)
        if same_rows:
            model._engines = self._engines
        return model

    def refit(self, endog: Any = None, rows: Any = None, start: Any = None, **options: Any) -> Any:
        """Fit this model again with a new response, on a subset of rows, or with other options.

        lme4's ``refit``/``update`` and MixedModels.jl's ``refit!``: a new model is made from
        this one's design (this one is unchanged) and fitted.  Refits of the same rows share
        this model's engines.

        Parameters
        ----------
        endog : array-like, optional
            A new response for the same rows.
        rows : array-like of int or bool, optional
            Fit on these rows only (every level of the grouping factors is kept).
        start : array-like, optional
            Starting parameters (default the model's own start).
        **options
            Constructor options to change (``weights``, ``reml``, ``family``, ...) and
            keyword arguments of ``fit`` (``method``, ``maxiter``, ``check_conv``, ...).

        Returns
        -------
        The fitted results of the new model.
        """
        keys = set(self._init_kwargs())
        changes = {k: options.pop(k) for k in list(options) if k in keys}
        return self.clone(rows=rows, endog=endog, **changes).fit(start_params=start, **options)

"""What the results of the Cox models share: baseline hazard, survival curves, expected events.

:class:`SurvivalResultsMixin` is used by :class:`~interlace.results.coxph.CoxPHResults` and
:class:`~interlace.results.coxme.CoxMEResult`.  Both estimate the baseline hazard at the
fitted linear predictor (fixed part, frailties and offset: the frailties act as an offset,
as in survival's ``survfit`` for a model with one), with Breslow's or Efron's estimator as
the fit's ties (R's ``survfit.coxph``), and give curves and expected numbers of events at
covariate patterns — for a mixed model, the fixed part with frailty 0.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..design.fixed import new_matrix
from ..errors import DataError, InterlaceError
from ..inference.survfit import SurvivalCurves, survival_curves
from ..response.baseline import BaselineHazard, baseline_hazard

__all__ = ["SurvivalResultsMixin"]

PREDICT_TYPES = ("lp", "risk", "expected", "survival")


class SurvivalResultsMixin:
    """Survival curves, the baseline hazard and expected events of a fitted Cox model.

    The host class provides ``model`` (a :class:`~interlace.models.survival.CoxModel`),
    ``params`` (β̂), :meth:`_fitted_eta` (the full linear predictor on the fitted rows)
    and :meth:`_beta_vcov` (the variance of β̂ the curves use).
    """

    model: Any
    params: Any

    def _fitted_eta(self) -> np.ndarray:
        raise NotImplementedError

    def _beta_vcov(self) -> np.ndarray:
        raise NotImplementedError

    # ------------------------------------------------------------------ pieces
    def _center(self) -> float:
        """R's centring of the risk scores: means·β̂ plus the mean offset."""
        beta = np.asarray(self.params, float)
        c = float(self.model.x_means() @ beta) if beta.size else 0.0
        off = self.model.offset
        if off is not None:
            w = self.model.weights
            c += float(np.average(off, weights=w))
        return c

    def _baseline(self) -> BaselineHazard:
        cache = self.__dict__.setdefault("_survival_cache", {})
        if "baseline" not in cache:
            cache["baseline"] = baseline_hazard(self.model.cox_data, self._fitted_eta(),
                                                np.asarray(self.model.exog, float), self._center())
        return cache["baseline"]

    def _new_fixed(self, newdata: pd.DataFrame, offset: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """(X, x'β̂ + offset) of new rows."""
        if not isinstance(newdata, pd.DataFrame):
            raise DataError(f"newdata must be a pandas DataFrame, got {type(newdata).__name__}")
        fx = self.model.fixed_design
        if fx is None:
            raise InterlaceError("this model was built from arrays: it cannot encode new data")
        beta = np.asarray(self.params, float)
        X = new_matrix(fx.design_info, newdata, "the fixed effects")[:, fx.keep] if beta.size \
            else np.zeros((len(newdata), 0))
        eta = X @ beta if beta.size else np.zeros(len(newdata))
        if offset is not None:
            eta = eta + np.asarray(offset, float)
        elif self.model.offset is not None:
            name = getattr(self.model, "offset_arg", None)
            if isinstance(name, str) and name in newdata.columns:
                eta = eta + newdata[name].to_numpy(float)
            else:
                raise DataError("the model has an offset: pass offset= for newdata "
                                "(or give the offset as a column name when fitting)")
        return X, eta

    # ------------------------------------------------------------------ public
    def baseline_hazard(self, centered: bool = True) -> pd.DataFrame:
        """Cumulative baseline hazard per stratum (R's ``basehaz``).

        Parameters
        ----------
        centered : bool
            At the mean covariates (R's default, ``survival``'s ``means``) or at x = 0.

        Returns
        -------
        DataFrame
            ``time``, ``hazard`` (increment), ``cumhaz`` and, with strata, ``strata``.
        """
        bh = self._baseline()
        H = bh.cumulative()[0]
        scale = 1.0 if centered else float(np.exp(-bh.center))
        out = pd.DataFrame({"time": bh.time, "hazard": bh.hazard * scale, "cumhaz": H * scale})
        if self.model.strata is not None:
            out["strata"] = [self.model.strata_labels[s] for s in bh.strata]
        return out

    def survfit(self, newdata: pd.DataFrame | None = None, conf_int: float = 0.95, conf_type: str = "log",
                se_fit: bool = True, offset: Any = None) -> SurvivalCurves:
        """Survival curves at covariate patterns (R's ``survfit`` of a Cox fit).

        Parameters
        ----------
        newdata : DataFrame, optional
            One row per pattern (the model's covariates; the strata columns put each pattern in
            its stratum, without them each pattern has a curve in every stratum).  Default:
            one curve at survival's mean covariates.
        conf_int : float
            Level of the pointwise intervals.
        conf_type : {"log", "log-log", "plain", "none"}
        se_fit : bool
        offset : array-like, optional
            Offset of the new rows (when the model has one that is not a column of ``newdata``).

        Returns
        -------
        SurvivalCurves
            Curves with ``plot()`` and a long ``table``.
        """
        bh = self._baseline()
        V = self._beta_vcov()
        if newdata is None:
            x0 = self.model.x_means()[None, :]
            eta0 = np.array([bh.center])
            strata0 = None
            labels = None
        else:
            x0, eta0 = self._new_fixed(newdata, offset)
            strata0 = None
            if self.model.strata is not None and all(c in newdata.columns for c in self.model.strata_vars):
                strata0 = list(self.model.new_strata(newdata))
            labels = [str(i) for i in newdata.index]
        return survival_curves(bh, x0, eta0, V, strata0, labels, self.model.strata_labels, conf_int, conf_type,
                               se_fit)

    def _expected_new(self, newdata: pd.DataFrame, eta0: np.ndarray) -> np.ndarray:
        """Expected events of new rows over their follow-up (times from the model's ``Surv``)."""
        spec = getattr(self.model, "surv_spec", None)
        if spec is None:
            raise InterlaceError("this model was built from arrays: it cannot read times from new data")
        start, time, _ = spec.evaluate(newdata)
        bh = self._baseline()
        H = bh.cumulative()[0]
        strata = self.model.new_strata(newdata)
        if strata is None:
            strata = np.zeros(len(newdata), np.int64)

        def chaz(t):
            j = bh.at(strata, t)
            return np.where(j >= 0, H[np.maximum(j, 0)], 0.0)

        out = chaz(time)
        if start is not None:
            out = out - chaz(start)
        return out * np.exp(eta0 - bh.center)

    def _check_type(self, type: str) -> None:
        if type not in PREDICT_TYPES:
            raise ValueError(f"type must be one of {PREDICT_TYPES}, got {type!r}")

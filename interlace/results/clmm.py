"""Results of a cumulative link mixed model (:class:`CLMMResult`), ordinal's ``clmm`` quantities."""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from statsmodels.base import wrapper as wrap

from ..objective.clmm import CLMMDeviance
from ..objective.pirls import PIRLSState
from ..optimize import OptSummary
from .base import MixedResultsBase, MixedResultsWrapper

if TYPE_CHECKING:
    from statsmodels.iolib.summary2 import Summary

    from ..linalg.pls import PLSSystem

__all__ = ["CLMMResult", "CLMMResultWrapper"]


class CLMMResult(MixedResultsBase):
    """A fitted CLMM.

    ``params`` holds the threshold parameters then the coefficients β (ordinal's
    ``coef`` order), with Wald z tests; ``fe_*`` refer to β only. ``thresholds``
    gives α₁ < … < α_{K−1} (named ``"1|2"``, …), ``threshold_params`` the
    parameters of the chosen threshold structure.
    """

    reml = False
    _rebuilt_on_demand = ("_deviance",)

    def _fit_objective(self) -> CLMMDeviance:
        """The fit's own objective (rebuilt from the model after unpickling)."""
        dev = self.__dict__.get("_deviance")
        if dev is None:
            self._need_rows("the fit's PIRLS engines")
            dev = self._deviance = self.model.objective()
        return dev

    def _drop_rows(self) -> None:
        self.state = replace(self.state, eta=np.zeros(0), mu=np.zeros(0))

    def __init__(self, model: Any, par: np.ndarray, st: PIRLSState, objective: float, derivs: dict,
                 opt: OptSummary, deviance: CLMMDeviance) -> None:
        na, p = model.n_alpha, model.k_fe
        npar = na + p
        nth = model.random_effects_structure.n_theta
        vcov, self.cond_H = _vcov_and_condition(derivs, par, npar, nth)
        super().__init__(model, par[:npar], normalized_cov_params=vcov, scale=1.0)
        self.use_t = False
        alpha, beta, theta = deviance.split(par)
        self._deviance = deviance  # the fit's own objective (PIRLS, engines, response)
        self._par = np.asarray(par, float)
        b = np.asarray(model.random_effects_structure.Lambda(theta) @ st.u).ravel()
        self.sol = _Sol(theta, b, st.u)
        self.state = st
        self.objective = float(objective)
        self.opt_summary = opt
        self.link = model.link.name
        self.threshold = model.threshold
        self.levels = model.levels
        self.nAGQ = model.nAGQ
        self._fe = slice(na, npar)
        self._param_names = list(model.threshold_param_names) + list(model.exog_names)
        self._alpha = alpha
        self.engine = deviance.pirls.engine
        self._init_shared(model)

    # ------------------------------------------------------------ parameters
    @property
    def thresholds(self) -> pd.Series:
        """α₁ < … < α_{K−1}, named by adjacent categories (``"1|2"``)."""
        return pd.Series(self._alpha, index=self.model.threshold_names, name="thresholds")

    @property
    def threshold_params(self) -> pd.Series:
        """Parameters of the threshold structure (the thresholds themselves when flexible)."""
        na = self.model.n_alpha
        return pd.Series(np.asarray(self.params)[:na], index=self._param_names[:na], name="threshold_params")

    @property
    def coef_table(self) -> pd.DataFrame:
        """Estimate, Std. Error, z value, Pr(>|z|) for thresholds and coefficients (ordinal's summary)."""
        import scipy.stats as st

        b, se = np.asarray(self.params), np.asarray(self.bse)
        z = b / se
        return pd.DataFrame({"Estimate": b, "Std. Error": se, "z value": z, "Pr(>|z|)": 2 * st.norm.sf(np.abs(z))},
                            index=self._param_names)

    # ------------------------------------------------------------ likelihood
    @property
    def df_modelwc(self) -> int:
        return int(np.asarray(self.params).size + self.theta.size)

    _residual_variance = None

    # ------------------------------------------------------------ prediction
    def _probs(self, eta: np.ndarray) -> np.ndarray:
        a = np.concatenate([[-np.inf], self._alpha, [np.inf]])
        return np.diff(self.model.link.cdf(a[None, :] - eta[:, None]), axis=1)

    def predict(self, newdata: pd.DataFrame | None = None, type: str = "prob", include_re: bool = True,
                exog: Any = None, transform: bool = True) -> pd.Series | pd.DataFrame:
        """Per-category probabilities, the most likely category, or the linear predictor.

        Parameters
        ----------
        newdata : DataFrame, optional
            Default: the fitted rows. Unseen group levels get random effect 0 (with an
            :class:`~interlace.errors.UnseenLevelWarning`).
        type : {"prob", "class", "linear"}
        include_re : bool
            Include the conditional modes of the random effects.
        exog, transform
            statsmodels' names: ``exog`` is new data as ``newdata`` (``transform=True``), or the
            coefficients' model matrix (``transform=False``), predicted without random effects.
        """
        eta, index = self._predict_eta(newdata, include_re, None, exog, transform)
        if type == "linear":
            return pd.Series(eta, index=index, name="linear")
        P = self._probs(eta)
        if type == "prob":
            return pd.DataFrame(P, index=index, columns=self.levels)
        if type == "class":
            return pd.Series(np.asarray(self.levels, dtype=object)[np.argmax(P, axis=1)], index=index, name="class")
        raise ValueError(f"type must be 'prob', 'class' or 'linear', got {type!r}")

    @property
    def fittedvalues(self) -> pd.Series:
        """Probability of the observed category (ordinal's ``fitted``)."""
        P = self._probs(self._eta_fit())
        y = np.asarray(self.model.endog, int)
        return pd.Series(P[np.arange(y.size), y], index=self.model.data.row_labels, name="fitted")

    def factored_engine(self) -> PLSSystem:
        """The fit's engine factored at the estimates, with the working weights at the modes."""
        dev = self._fit_objective()
        return dev.pirls.factored(self.theta, np.asarray(self.params)[self._fe], self.sol.u,
                                  resp=dev.response(self._par))

    def summary(self, alpha: float = 0.05) -> Summary:
        from .summary import clmm_summary

        return clmm_summary(self, alpha)


def _vcov_and_condition(derivs: dict, par: np.ndarray, npar: int, nth: int):
    """Covariance of (threshold parameters, β) from the Hessian of −2 log L, and ordinal's
    condition number of the Hessian of −log L with the random-effect SDs on the log scale."""
    free, H = derivs.get("free"), derivs.get("hessian")
    if H is None or not np.all(np.isfinite(H)):
        return np.full((npar, npar), np.nan), np.nan
    Hl = 0.5 * H
    try:
        V = np.linalg.inv(Hl)
    except np.linalg.LinAlgError:
        V = np.full_like(Hl, np.nan)
    pos = np.searchsorted(free, np.arange(npar))
    vcov = V[np.ix_(pos, pos)]
    scale = np.where(free >= npar, par[free], 1.0)  # d/d log s = s d/ds at the optimum
    ev = np.linalg.eigvalsh(Hl * np.outer(scale, scale))
    cond = float(ev.max() / ev.min()) if ev.min() > 0 else np.inf
    return 0.5 * (vcov + vcov.T), cond


class _Sol:
    def __init__(self, theta, b, u):
        self.theta, self.b, self.u = theta, b, u


class CLMMResultWrapper(MixedResultsWrapper):
    """Labels statsmodels' outputs with the threshold parameter and coefficient names (ordinal's order)."""

    def __repr__(self) -> str:
        r = self._results
        return f"<CLMMResult: {r.model.formula!r}, {r.link}, {r.threshold}, n={r.nobs}, llf={r.llf:.4f}>"


wrap.populate_wrapper(CLMMResultWrapper, CLMMResult)

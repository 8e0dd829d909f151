"""Results of a GLMM fit (:class:`GLMMResult`), lme4's ``glmer`` quantities under statsmodels' names."""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from statsmodels.base import wrapper as wrap

from ..objective.pirls import PIRLS, PIRLSState
from ..optimize import OptSummary
from .base import MixedResultsBase, MixedResultsWrapper

if TYPE_CHECKING:
    from statsmodels.iolib.summary2 import Summary

    from ..linalg.pls import PLSSystem

__all__ = ["GLMMResult", "GLMMResultWrapper"]


class GLMMResult(MixedResultsBase):
    """A fitted GLMM.

    ``params``/``bse``/``tvalues``/``pvalues`` are the fixed effects with Wald z
    tests (lme4's ``summary``), SEs from the Hessian of the objective.

    Attributes
    ----------
    family : GLMFamily
    nAGQ : int
    theta : ndarray
    opt_summary : OptSummary
    """

    def __init__(self, model: Any, theta: np.ndarray, beta: np.ndarray, st: PIRLSState, objective: float,
                 vcov: np.ndarray, opt: OptSummary, pirls: PIRLS) -> None:
        super().__init__(model, np.asarray(beta, float), normalized_cov_params=vcov, scale=1.0)
        self.use_t = False
        b = np.asarray(model.random_effects_structure.Lambda(theta) @ st.u).ravel()
        self.sol = _Sol(np.asarray(theta, float), b, st.u)
        self.state = st
        self.objective = float(objective)
        self.opt_summary = opt
        self.family = model.family
        self.nAGQ = model.nAGQ
        self._pirls = pirls  # the fit's own PIRLS (its engines and response)
        self.engine = pirls.engine
        self._init_shared(model)

    reml = False
    _rebuilt_on_demand = ("_pirls",)

    def _fit_pirls(self) -> PIRLS:
        """The fit's own PIRLS (rebuilt from the model after unpickling)."""
        pirls = self.__dict__.get("_pirls")
        if pirls is None:
            self._need_rows("the fit's PIRLS engines")
            pirls = self._pirls = self.model.pirls()
        return pirls

    def _drop_rows(self) -> None:
        self.state = replace(self.state, eta=np.zeros(0), mu=np.zeros(0))

    def _keep_before_removal(self) -> None:
        super()._keep_before_removal()
        _ = self.sigma

    @property
    def nb_theta(self) -> float:
        """The negative-binomial shape θ (variance μ + μ²/θ) of the family; NaN for other families."""
        return float(self.family.nb_theta) if self.family.name == "negative_binomial" else float("nan")

    @property
    def sigma(self) -> float:
        """Dispersion SD: √(pwrss/n) for Gamma / inverse Gaussian (lme4's ``sigma``), else 1."""
        if not self.family.has_dispersion:
            return 1.0

        def sd() -> float:
            st = self.state
            w, r = self._fit_pirls().resp.working(st.eta, st.mu)
            return float(np.sqrt((np.sum(w * r * r) + st.u @ st.u) / self.nobs))

        return self._kept("dispersion_sd", sd)

    def _linear_predictor_link(self, eta):
        return self.family.linkinv(eta)

    def _draw_response(self, mu, rng):
        fam, w = self.family, self.model.weights
        if fam.name == "binomial":
            n = np.round(w).astype(np.int64)
            return np.divide(rng.binomial(n, mu), n, out=np.zeros(mu.size), where=n > 0)
        if fam.name == "poisson":
            return rng.poisson(mu).astype(float)
        if fam.name == "negative_binomial":
            th = fam.nb_theta
            return rng.negative_binomial(th, th / (th + mu)).astype(float)
        disp = self.sigma ** 2
        if fam.name == "gamma":
            return rng.gamma(1.0 / disp, mu * disp)
        if fam.name == "inverse_gaussian":
            return rng.wald(mu, 1.0 / disp)
        return mu + np.sqrt(disp) * rng.standard_normal(mu.size)

    def factored_engine(self, joint: bool = False) -> PLSSystem:
        """The fit's engine factored at θ̂ with the working weights at the modes: for u alone
        (conditional variances), or with ``joint`` for (β, u) (lme4's ``RX``, hat values)."""
        if joint:
            return self._fit_pirls().joint_factored(self.theta, self.state)[0]
        return self._fit_pirls().factored(self.theta, np.asarray(self.params, float), self.sol.u)

    def working_weights(self) -> np.ndarray:
        """IRLS weights at the conditional modes (prior weights included)."""
        self._need_rows("working_weights()")
        return self._fit_pirls().resp.working(self.state.eta, self.state.mu)[0]

    @property
    def _re_scale(self) -> float:
        return self.sigma ** 2

    @property
    def _residual_variance(self) -> float | None:
        return self.sigma ** 2 if self.family.has_dispersion else None

    # ------------------------------------------------------------ likelihood
    @property
    def deviance(self) -> float:
        """Conditional deviance Σ dᵢ(y, μ̂) at the modes (lme4's ``deviance`` for GLMMs)."""
        return float(np.sum(self.family.dev_resid(np.asarray(self.model.endog, float), self.state.mu,
                                                  self.model.weights)))

    @property
    def minus2llf(self) -> float:
        """``-2 * llf`` (what lme4's summary prints as "deviance")."""
        return self.objective

    @property
    def df_modelwc(self) -> int:
        """Number of parameters: β, θ, and the dispersion or negative-binomial shape."""
        extra = 1 if (self.family.has_dispersion or self.family.name == "negative_binomial") else 0
        return len(self._names) + self.theta.size + extra

    # ------------------------------------------------------------ fitted values and residuals
    @property
    def fittedvalues(self) -> pd.Series:
        """Conditional means μ̂ on the response scale (lme4's ``fitted``)."""
        mu = self.family.linkinv(self._eta_fit())
        return pd.Series(mu, index=self.model.data.row_labels, name="fitted")

    def resid_response(self) -> pd.Series:
        return pd.Series(np.asarray(self.model.endog, float) - self.fittedvalues.to_numpy(),
                         index=self.model.data.row_labels, name="resid_response")

    @property
    def resid(self) -> pd.Series:
        """Deviance residuals (lme4's default ``residuals`` for GLMMs)."""
        return self.resid_deviance()

    def resid_pearson(self) -> pd.Series:
        mu = self.fittedvalues.to_numpy()
        y = np.asarray(self.model.endog, float)
        r = (y - mu) * np.sqrt(self.model.weights / self.family.variance(mu))
        return pd.Series(r, index=self.model.data.row_labels, name="resid_pearson")

    def resid_deviance(self) -> pd.Series:
        mu = self.fittedvalues.to_numpy()
        y = np.asarray(self.model.endog, float)
        d = self.family.dev_resid(y, mu, self.model.weights)
        r = np.sign(y - mu) * np.sqrt(np.maximum(d, 0))
        return pd.Series(r, index=self.model.data.row_labels, name="resid_deviance")

    def predict(self, newdata: pd.DataFrame | None = None, type: str = "response", include_re: bool = True,
                offset: npt.ArrayLike | None = None, exog: Any = None, transform: bool = True) -> pd.Series:
        """Predictions on the link or response scale; unseen levels contribute 0 (with an
        :class:`~interlace.errors.UnseenLevelWarning`).

        Parameters
        ----------
        newdata : DataFrame, optional
            Default: the fitted rows.
        type : {"response", "link"}
        include_re : bool
            Include the conditional modes (lme4's default); False gives the population level.
        offset : array-like, optional
        exog, transform
            statsmodels' names: ``exog`` is new data as ``newdata`` (``transform=True``), or the
            fixed-effects model matrix (``transform=False``), predicted without random effects.
        """
        if type not in ("response", "link"):
            raise ValueError(f"type must be 'response' or 'link', got {type!r}")
        eta, index = self._predict_eta(newdata, include_re, offset, exog, transform)
        out = eta if type == "link" else self.family.linkinv(eta)
        return pd.Series(out, index=index, name="predicted")

    def summary(self, alpha: float = 0.05) -> Summary:
        from .summary import glmm_summary

        return glmm_summary(self, alpha)


class _Sol:
    """Minimal solution record the shared result code reads (θ, b, u)."""

    def __init__(self, theta, b, u):
        self.theta, self.b, self.u = theta, b, u


class GLMMResultWrapper(MixedResultsWrapper):
    """Labels statsmodels' outputs with the fixed-effect names."""

    def __repr__(self) -> str:
        r = self._results
        return (f"<GLMMResult: {r.model.formula!r}, {r.family.name}({r.family.link_name}), nAGQ={r.nAGQ}, "
                f"n={r.nobs}, llf={r.llf:.4f}>")


wrap.populate_wrapper(GLMMResultWrapper, GLMMResult)

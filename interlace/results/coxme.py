"""Results of a mixed-effects Cox model (:class:`CoxMEResult`), coxme's quantities under statsmodels' names."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.stats as st
from statsmodels.base import wrapper as wrap
from statsmodels.iolib.summary2 import Summary

from ..errors import DataError, warn_user
from ..objective.coxme import CoxLaplace, CoxMEState
from ..optimize import OptSummary
from .base import MixedResultsBase, MixedResultsWrapper
from .summary import varcorr_rows
from .survival import SurvivalResultsMixin

if TYPE_CHECKING:
    from ..inference.lrt import LRTest
    from ..objective.coxph import CoxPHFit

__all__ = ["CoxMEResult", "CoxMEResultWrapper", "coxme_summary"]


class _Sol:
    """Solution record the shared result code reads (θ, b, u)."""

    def __init__(self, theta, b, u):
        self.theta, self.b, self.u = theta, b, u


class _CondCov:
    """Adapter giving the shared conditional-variance code the diagonal blocks of (H⁻¹)_uu."""

    def __init__(self, re, hessian) -> None:
        self.re, self.hessian = re, hessian

    def cond_cov_blocks(self) -> list[np.ndarray]:
        return self.hessian.inv_uu_blocks(self.re)


class CoxMEResult(SurvivalResultsMixin, MixedResultsBase):
    """A fitted mixed-effects Cox model.

    ``params``/``bse``/``tvalues``/``pvalues`` are the fixed effects (log hazard ratios)
    with Wald z tests; the standard errors come from the inverse of the Hessian of the
    penalized partial likelihood in (b, β) (coxme's ``vcov``), with coxme's sparse
    approximation when it applies.

    Likelihoods (coxme's ``loglik``): :attr:`loglik_null` (β = 0, no random effects),
    :attr:`llf` (integrated, the Laplace approximation), :attr:`loglik_penalized`
    (log PL − ½ b'Σ⁻¹b at the estimates); :attr:`loglik_fitted` is log PL at (β̂, b̂)
    (coxme prints it as "Fitted").  Degrees of freedom: :attr:`df_integrated` (β and the
    variance parameters) and :attr:`df_penalized` (coxme's ``df[2]``).

    Attributes
    ----------
    theta : ndarray
        Relative covariance parameters (the shared θ layout).
    optimizer : str
        ``"coxme"`` or the optimizer used (``coxme(optimizer=)``).
    ties : str
    inner_iter : int or None
        coxme's Newton iterations per evaluation of the θ search.
    opt_summary : OptSummary
    state : CoxMEState
    """

    reml = False
    _residual_variance = None

    def __init__(self, model: Any, theta: np.ndarray, state: CoxMEState, fit0: CoxPHFit, opt: OptSummary,
                 method: str, inner_iter: int | None, boundary: Iterable[tuple[str, float]],
                 objective: CoxLaplace) -> None:
        H = state.hessian
        super().__init__(model, np.asarray(state.beta, float), normalized_cov_params=H.vcov_beta(), scale=1.0)
        self.use_t = False
        re = model.random_effects_structure
        b = np.asarray(re.Lambda(theta) @ state.u).ravel()
        self.sol = _Sol(np.asarray(theta, float), b, state.u)
        self.state = state
        self.fit0 = fit0
        self.opt_summary = opt
        self.optimizer = method
        self.ties = model.ties
        self.inner_iter = inner_iter
        self.boundary_terms = list(boundary)
        lap = objective
        self.engine = lap.engine
        self.sparse_levels = lap.sparse_levels
        self._df_penalized = float(lap.df_penalized(state))
        self._init_shared(model)

    # ------------------------------------------------------------ likelihoods and df
    @property
    def llf(self) -> float:
        """Integrated (Laplace) log partial likelihood (coxme's ``loglik["Integrated"]``)."""
        return float(self.state.laplace)

    @property
    def loglik_penalized(self) -> float:
        """Penalized partial log-likelihood log PL(β̂, b̂) − ½ b̂'Σ⁻¹b̂ (coxme's ``loglik["Penalized"]``)."""
        return float(self.state.ppl)

    @property
    def loglik_fitted(self) -> float:
        """log PL(β̂, b̂) without the penalty (coxme's printed "Fitted")."""
        return float(self.state.loglik)

    @property
    def loglik_null(self) -> float:
        """log PL with β = 0 and no random effects (coxme's ``loglik["NULL"]``)."""
        return float(self.fit0.loglik[0])

    @property
    def penalty(self) -> float:
        """½ b̂'Σ⁻¹b̂ (coxme's ``penalty``)."""
        return 0.5 * float(self.sol.u @ self.sol.u)

    @property
    def df_integrated(self) -> int:
        """Fixed effects plus variance parameters (coxme's ``df[1]``)."""
        return int(len(self._names) + self.theta.size)

    @property
    def df_penalized(self) -> float:
        """coxme's penalized degrees of freedom ``df[2]``: p + q − tr(H⁻¹_bb Σ⁻¹)."""
        return self._df_penalized

    @property
    def df_modelwc(self) -> int:
        return self.df_integrated

    @property
    def n_events(self) -> int:
        return int(self.model.n_events)

    @property
    def _bic_n(self) -> int:
        return self.n_events  # coxme's BIC counts events, not rows

    @property
    def coxme_table(self) -> pd.DataFrame:
        """coxme's likelihood-ratio table: Chisq, df, p, AIC, BIC for the integrated and penalized fits.

        As ``print.coxme``: Chisq = 2 (loglik − null) with the integrated log-likelihood and
        with log PL at (β̂, b̂); AIC = Chisq − 2 df and BIC = Chisq − log(events) df (larger is better).
        """
        rows = {}
        for name, ll, df in (("Integrated loglik", self.llf, float(self.df_integrated)),
                             ("Penalized loglik", self.loglik_fitted, self.df_penalized)):
            chi = 2.0 * (ll - self.loglik_null)
            rows[name] = {"Chisq": chi, "df": df, "p": float(st.chi2.sf(chi, df)), "AIC": chi - 2.0 * df,
                          "BIC": chi - np.log(self.n_events) * df}
        return pd.DataFrame(rows).T

    @property
    def aic_integrated(self) -> float:
        """coxme's printed AIC of the integrated fit (2 (llf − null) − 2 df)."""
        return float(self.coxme_table.loc["Integrated loglik", "AIC"])

    @property
    def bic_integrated(self) -> float:
        return float(self.coxme_table.loc["Integrated loglik", "BIC"])

    @property
    def aic_penalized(self) -> float:
        """coxme's printed AIC of the penalized fit (2 (log PL(β̂, b̂) − null) − 2 df_penalized)."""
        return float(self.coxme_table.loc["Penalized loglik", "AIC"])

    @property
    def bic_penalized(self) -> float:
        return float(self.coxme_table.loc["Penalized loglik", "BIC"])

    @property
    def converged(self) -> bool:
        return self.opt_summary.converged and self.state.converged and not any(
            m.startswith(("Model failed", "optimizer", "Newton", "unable")) for m in self.opt_summary.messages)

    @property
    def is_singular(self) -> bool:
        """A variance on the boundary: lme4's rule (θ < 1e-4), or a variance the likelihood would
        as soon have at 0 (coxme's search stops short of 0 on its log scale)."""
        return bool(super().is_singular or self.boundary_terms)

    # ------------------------------------------------------------ coefficients
    def hazard_ratios(self, alpha: float = 0.05) -> pd.DataFrame:
        """exp(coef) with Wald intervals exp(coef ± z se)."""
        ci = self.fe_conf_int(alpha)
        return pd.DataFrame({"exp(coef)": np.exp(self.fe_params), f"lower {1 - alpha:.0%}": np.exp(ci["lower"]),
                             f"upper {1 - alpha:.0%}": np.exp(ci["upper"])}, index=self._names)

    @property
    def coef_table(self) -> pd.DataFrame:
        """coxme's coefficient table: coef, exp(coef), se(coef), z, p."""
        b, se = self.fe_params.to_numpy(), self.fe_bse.to_numpy()
        z = b / se
        return pd.DataFrame({"coef": b, "exp(coef)": np.exp(b), "se(coef)": se, "z": z,
                             "p": 2 * st.norm.sf(np.abs(z))}, index=self._names)

    # ------------------------------------------------------------ variance parameters
    @property
    def method(self) -> str:
        """Old name of :attr:`optimizer` (a ``FutureWarning``): ``method`` means REML/ML elsewhere."""
        warn_user("CoxMEResult.method is now spelled optimizer (the old name will be removed in a future "
                  "version)", FutureWarning)
        return self.optimizer

    @property
    def coxme_varcorr(self) -> dict:
        """coxme's ``VarCorr``: per grouping factor, a variance for a random intercept; for a term with
        several coefficients a DataFrame with the variances on the diagonal and the **correlations**
        off it (the variances alone: :attr:`variance_components`; covariances: :attr:`random_effects_cov`)."""
        out = {}
        for name, C in self.random_effects_cov.items():
            if C.shape == (1, 1):
                out[name] = float(C.iloc[0, 0])
                continue
            v = np.diag(C.values)
            sd = np.sqrt(v)
            with np.errstate(invalid="ignore", divide="ignore"):
                R = C.values / np.outer(sd, sd)
            np.fill_diagonal(R, v)
            out[name] = pd.DataFrame(R, index=C.index, columns=C.columns)
        return out

    # ------------------------------------------------------------ fitted values
    @property
    def linear_predictor(self) -> pd.Series:
        """Xβ̂ + Zb̂ on the fitted rows, not centred and without the offset (coxme's ``linear.predictor``)."""
        eta = self._linear_predictor(np.asarray(self.model.exog, float),
                                     [(t.X, t.codes) for t in self.model.random_effects_structure.terms], None)
        return pd.Series(eta, index=self.model.data.row_labels, name="linear_predictor")

    def predict(self, newdata: pd.DataFrame | None = None, type: str = "lp", include_re: bool = True,
                offset: npt.ArrayLike | None = None, exog: Any = None, transform: bool = True) -> pd.Series:
        """Linear predictor, relative risk, expected events or survival; unseen levels get frailty 0
        (with an :class:`~interlace.errors.UnseenLevelWarning`).

        Parameters
        ----------
        newdata : DataFrame, optional
            Default: the fitted rows.  ``type="expected"``/``"survival"`` read the times from the
            model's ``Surv(...)`` columns in ``newdata``.
        type : {"lp", "risk", "expected", "survival"}
            Xβ + Zb (not centred, as coxme's linear predictor), exp of it, the expected number
            of events over the row's follow-up (cumulative hazard; the baseline hazard is
            estimated with the frailties in the linear predictor, see :meth:`survfit`), or
            exp(−expected).
        include_re : bool
            Include the frailties (False: fixed effects only).
        offset : array-like, optional
            For new data when the model has an offset (default: the offset column if named).
        exog, transform
            statsmodels' names: ``exog`` is new data as ``newdata`` (``transform=True``), or the
            fixed-effects model matrix (``transform=False``), predicted without frailties.
        """
        self._check_type(type)
        if type in ("expected", "survival"):
            if exog is not None:
                raise DataError("type='expected' and 'survival' need the survival times: give newdata with the "
                                "model's Surv(...) columns, not exog")
            if newdata is None:
                eta = self._fitted_eta() if include_re else self._eta_fit(False)
                exp_ = self.model.cox_data.state(self._fitted_eta()).expected
                if not include_re:
                    exp_ = exp_ * np.exp(eta - self._fitted_eta())
                return pd.Series(exp_ if type == "expected" else np.exp(-exp_), index=self.model.data.row_labels,
                                 name=type)
            if not isinstance(newdata, pd.DataFrame):
                raise DataError(f"newdata must be a pandas DataFrame, got {newdata.__class__.__name__}")
            exp_ = self._expected_new(newdata, self._eta_new(newdata, include_re, offset))
            return pd.Series(exp_ if type == "expected" else np.exp(-exp_), index=newdata.index, name=type)
        eta, index = self._predict_eta(newdata, include_re, offset, exog, transform)
        out = eta if type == "lp" else np.exp(eta)
        return pd.Series(out, index=index, name=type)

    def _fitted_eta(self) -> np.ndarray:
        """Xβ̂ + Zb̂ + offset on the fitted rows (the baseline hazard is estimated at it)."""
        return np.asarray(self.state.eta, float)

    def _beta_vcov(self) -> np.ndarray:
        return np.asarray(self.normalized_cov_params, float)

    @property
    def fittedvalues(self) -> pd.Series:
        """Linear predictor on the fitted rows (with the offset)."""
        return self.predict()

    def factored_engine(self) -> _CondCov:
        """(H⁻¹)_uu's diagonal blocks at the estimates (the Hessian is rebuilt from the model after unpickling)."""
        if self.state.hessian is None:
            self._need_rows("the Hessian of the penalized partial likelihood")
            st = self.state
            again = self.model.objective().fit(st.theta, beta0=st.beta, u0=st.u, maxit=0)
            self.state = replace(st, hessian=again.hessian)
        return _CondCov(self.model.random_effects_structure, self.state.hessian)

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state["state"] = replace(self.state, hessian=None)  # a CHOLMOD factor does not pickle
        return state

    def _drop_rows(self) -> None:
        self.state = replace(self.state, eta=np.zeros(0), hessian=None)

    # ------------------------------------------------------------ comparison and display
    def compare_lr_test(self, restricted: Any) -> LRTest:
        """Likelihood-ratio test against a nested mixed-effects Cox model (same rows, same response)."""
        from ..errors import InterlaceError
        from ..inference.lrt import lr_test

        other = getattr(restricted, "_results", restricted)
        if not isinstance(other, CoxMEResult):
            raise InterlaceError("compare_lr_test needs another coxme fit")
        if not (np.array_equal(self.model.status, other.model.status)
                and np.array_equal(np.asarray(self.model.endog), np.asarray(other.model.endog))):
            raise InterlaceError("models were not fitted to the same data (different rows, times or statuses)")
        return lr_test(self, other, refit=False)

    def summary(self, alpha: float = 0.05) -> Summary:
        return coxme_summary(self, alpha)


def _random_table(res: CoxMEResult) -> pd.DataFrame:
    """Group / Variable / Std Dev / Variance / Corr rows, as ``print.coxme``."""
    rows = [(name, coef, f"{sd:.6g}", f"{var:.6g}", " ".join(f"{v:.4g}" for v in r))
            for name, coef, var, sd, r in varcorr_rows(res)]
    out = pd.DataFrame(rows, columns=["Group", "Variable", "Std Dev", "Variance", "Corr"])
    if not out["Corr"].astype(bool).any():
        out = out.drop(columns="Corr")
    return out


def coxme_summary(res: CoxMEResult, alpha: float = 0.05) -> Summary:
    """statsmodels-style summary with ``print.coxme``'s information."""
    s = Summary()
    s.add_title("Cox mixed-effects model fit by maximum likelihood (interlace coxme)")
    info = {
        "Formula:": str(res.model.formula),
        "Ties:": res.ties,
        "Events, n:": f"{res.n_events}, {res.nobs}",
        "Groups (levels):": ", ".join(f"{k} ({v})" for k, v in res.ngroups.items()),
        "Log-lik NULL:": f"{res.loglik_null:.4f}",
        "Log-lik integrated:": f"{res.llf:.4f}",
        "Log-lik penalized:": f"{res.loglik_penalized:.4f}",
        "Log-lik fitted:": f"{res.loglik_fitted:.4f}",
        "Estimation:": "coxme (BFGS, log variances)" if res.optimizer == "coxme" else res.optimizer,
        "Converged:": "Yes" if res.converged else "No",
    }
    if res.n_dropped:
        info["Dropped (missing):"] = str(res.n_dropped)
    s.add_dict(info, ncols=2)
    tab = res.coxme_table.copy()
    s.add_df(tab, float_format="%.4g")
    z = st.norm.isf(alpha / 2)
    b, se = res.fe_params, res.fe_bse
    if len(b):
        fe = pd.DataFrame({"coef": b, "exp(coef)": np.exp(b), "se(coef)": se, "z": b / se,
                           "P>|z|": 2 * st.norm.sf(np.abs(b / se)),
                           f"[{alpha / 2:g}": b - z * se, f"{1 - alpha / 2:g}]": b + z * se})
        s.add_df(fe, float_format="%.4f")
    s.add_df(_random_table(res), index=False)
    notes = ["Wald z tests; SEs from the inverse Hessian of the penalized partial likelihood (as coxme)."]
    if res.sparse_levels:
        notes.append(f"coxme's sparse approximation is used for {res.sparse_levels} levels "
                     f"(sparse = c({res.model.sparse[0]:g}, {res.model.sparse[1]:g})).")
    notes += list(res.opt_summary.messages)
    s.add_text("\n".join(notes))
    return s


class CoxMEResultWrapper(MixedResultsWrapper):
    """Labels statsmodels' outputs with the fixed-effect names."""

    def __repr__(self) -> str:
        r = self._results
        return (f"<CoxMEResult: {r.model.formula!r}, ties={r.ties}, events={r.n_events}, n={r.nobs}, "
                f"llf={r.llf:.4f}>")


wrap.populate_wrapper(CoxMEResultWrapper, CoxMEResult)

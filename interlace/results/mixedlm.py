"""Results of :class:`interlace.models.mixedlm.MixedLM`, with statsmodels MixedLMResults' conventions.

What follows MixedLM (so code written for ``statsmodels`` MixedLMResults runs unchanged):

* ``params`` / ``bse`` / ``tvalues`` / ``pvalues`` / ``cov_params()``: the fixed effects,
  then the lower triangle of ``cov_re / scale`` by rows, then ``vcomp / scale``,
  named ``"Group Var"``, ``"Group x Days Cov"``, ``"Days Var"``, ``"<vc> Var"``;
  their covariance is the inverse of the observed information of the profile
  log-likelihood in those parameters (computed analytically here);
* ``fe_params``, ``bse_fe``, ``bse_re``, ``cov_re``, ``cov_re_unscaled``, ``vcomp``,
  ``scale``, ``random_effects`` (group → Series), ``random_effects_cov``,
  ``fittedvalues`` and ``resid`` (conditional on the random effects), ``predict``
  (fixed effects only), ``llf``, ``aic``/``bic`` (NaN under REML), ``converged``,
  ``method``, ``k_fe``, ``k_re``, ``k_re2``, ``k_vc``, ``params_object``, ``summary()``.

The estimates are lme4's (interlace's criterion and optimizer).  ``llf`` is lme4's
``logLik``, which is also what MixedLM's ``loglike`` gives at the same parameters.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.stats as st
from statsmodels.base import wrapper as wrap
from statsmodels.base.model import LikelihoodModelResults, LikelihoodResultsWrapper
from statsmodels.tools._decorators import cache_readonly

from ..design.fixed import new_matrix
from ..errors import ConvergenceWarning
from ..objective.lmm import LMMSolution
from ..optimize import OptSummary, is_singular

if TYPE_CHECKING:
    from statsmodels.iolib.summary2 import Summary
    from statsmodels.stats.contrast import ContrastResults

__all__ = ["MixedLMResults", "MixedLMResultsWrapper"]


class MixedLMResults(LikelihoodModelResults):
    """A fitted :class:`~interlace.models.mixedlm.MixedLM` (see the module docstring).

    Extra attributes (interlace): ``theta`` (lme4's θ, fitting order),
    ``opt_summary``, ``objective`` (REML criterion or deviance), ``is_singular``.
    """

    def __init__(self, model: Any, sol: LMMSolution, opt: OptSummary) -> None:
        self.sol = sol
        self.opt_summary = opt
        self.theta = sol.theta
        self.reml = model.reml
        scale = float(sol.sigma2)
        cov_u, vc_u = model._components(sol.theta)
        fe = np.asarray(sol.beta, float)
        ix = np.tril_indices(model.k_re)
        packed = np.concatenate([fe, cov_u[ix], vc_u])
        H, _ = model._hessian(fe, cov_u, vc_u, self.reml)
        pcov = _inverse_information(H)
        super().__init__(model, packed, normalized_cov_params=pcov / scale, scale=scale)
        self.use_t = False
        self.fe_params = fe
        self.cov_re_unscaled = cov_u
        self.cov_re = scale * cov_u
        self.vcomp = scale * vc_u
        self.method = "REML" if self.reml else "ML"
        self.k_fe, self.k_re, self.k_re2, self.k_vc = model.k_fe, model.k_re, model.k_re2, model.k_vc
        self.use_sqrt = model.use_sqrt
        self.freepat = None
        self.cov_pen = None
        self.hist = None
        self.nobs = model.nobs
        self.df_resid = self.nobs - np.linalg.matrix_rank(np.asarray(model.exog, float))
        self.converged = bool(opt.converged) and not any(
            m.startswith(("Model failed", "optimizer")) for m in opt.messages)
        from statsmodels.regression.mixed_linear_model import MixedLMParams

        self.params_object = MixedLMParams.from_components(fe_params=fe, cov_re=cov_u, vcomp=vc_u)

    # ------------------------------------------------------------ standard errors
    @cache_readonly
    def bse_fe(self) -> np.ndarray:
        """Standard errors of the fixed effects."""
        return np.sqrt(np.diag(self.cov_params())[:self.k_fe])

    @cache_readonly
    def bse_re(self) -> np.ndarray:
        """Standard errors of the variance parameters, as MixedLM reports them (``sqrt(scale · var)``)."""
        return np.sqrt(self.scale * np.diag(self.cov_params())[self.k_fe:])

    # ------------------------------------------------------------ likelihood
    @cache_readonly
    def llf(self) -> float:
        """Log-likelihood: the REML log-likelihood for REML fits (lme4's ``logLik``; equal to MixedLM's)."""
        return -0.5 * float(self.sol.objective)

    @property
    def objective(self) -> float:
        """lme4's minimized criterion (REML criterion or deviance), ``-2 llf``."""
        return float(self.sol.objective)

    @cache_readonly
    def aic(self) -> float:
        """Akaike criterion; NaN for REML fits (MixedLM's convention)."""
        if self.reml:
            return np.nan
        return -2.0 * (self.llf - (self.params.size + 1))

    @cache_readonly
    def bic(self) -> float:
        """Bayesian criterion; NaN for REML fits (MixedLM's convention)."""
        if self.reml:
            return np.nan
        return -2.0 * self.llf + np.log(self.nobs) * (self.params.size + 1)

    @property
    def is_singular(self) -> bool:
        """A variance or correlation on the boundary (lme4's ``isSingular``)."""
        return is_singular(self.theta, self.model.random_effects_structure.lower)

    # ------------------------------------------------------------ random effects
    def _expand_re_names(self, group_ix: int) -> list[str]:
        m = self.model
        names = list(m.data.exog_re_names)
        for j, v in enumerate(m.exog_vc.names):
            names.extend(f"{v}[{c}]" for c in m.exog_vc.colnames[j][group_ix])
        return names

    @cache_readonly
    def random_effects(self) -> dict:
        """Conditional means (BLUPs) of each group's random effects: group label → Series."""
        m = self.model
        re = m.random_effects_structure
        b = re.split_b(self.sol.b)[0]  # (groups, columns) of the one term
        cov = re.terms[0].cov
        out = {}
        for i, lab in enumerate(m.group_labels):
            vals = []
            for k, (kind, j) in enumerate(m._layout):
                cols = b[i, cov.col_slice(k)]
                vals.append(cols if kind == "re" else cols[:int(m._vc_ncols[j][i])])
            out[lab] = pd.Series(np.concatenate(vals) if vals else np.zeros(0), index=self._expand_re_names(i))
        return out

    @cache_readonly
    def random_effects_cov(self) -> dict:
        """Conditional covariance of each group's random effects given the data (β held at β̂)."""
        m = self.model
        cov_u, vc_u = self.cov_re_unscaled, self.vcomp / self.scale
        out = {}
        for i, lab in enumerate(m.group_labels):
            _, Psi, A, *_ = m._group_solve(i, cov_u, vc_u, self.fe_params)
            V = self.scale * (Psi - Psi @ A @ Psi)
            names = self._expand_re_names(i)
            out[lab] = pd.DataFrame(V, index=names, columns=names)
        return out

    # ------------------------------------------------------------ fitted values
    @cache_readonly
    def fittedvalues(self) -> np.ndarray:
        """Fitted values with the predicted random effects, ``Xβ̂ + Zb̂``."""
        re = self.model.random_effects_structure
        return np.asarray(self.model.exog, float) @ self.fe_params + np.asarray(re.Z() @ self.sol.b).ravel()

    @cache_readonly
    def resid(self) -> np.ndarray:
        """Residuals ``y − fittedvalues``."""
        return np.asarray(self.model.endog, float) - self.fittedvalues

    def predict(self, exog: npt.ArrayLike | pd.DataFrame | pd.Series | None = None, transform: bool = True,
                *args: Any, **kwargs: Any) -> np.ndarray | pd.Series:
        """Fixed-effects predictions ``Xβ̂`` (MixedLM's semantics: random effects are not added).

        Parameters
        ----------
        exog : array-like or DataFrame, optional
            New fixed-effects data; default the model's.  For a formula model and
            ``transform=True`` a DataFrame of the original variables is encoded with
            the fixed-effects formula.
        transform : bool

        Returns
        -------
        ndarray or Series
            A Series indexed like ``exog`` when ``exog`` is a pandas object.
        """
        index = exog.index if isinstance(exog, (pd.DataFrame, pd.Series)) else None
        fx = getattr(self.model, "fixed_design", None)
        if exog is not None and transform and fx is not None:
            if isinstance(exog, pd.Series):
                exog = exog.to_frame().T
                index = exog.index
            X = new_matrix(fx.design_info, exog, "the fixed effects")[:, fx.keep]
        elif exog is not None:
            X = np.asarray(exog, float)
            if X.ndim == 1:
                X = X[:, None] if self.k_fe == 1 else X[None, :]
        else:
            X = None
        pred = self.model.predict(self.fe_params, X)
        return pd.Series(pred, index=index) if index is not None else pred

    # ------------------------------------------------------------ tests and reporting
    def t_test(self, r_matrix: npt.ArrayLike, use_t: bool | None = None) -> ContrastResults:
        """Wald tests of linear combinations of the fixed effects (``r_matrix`` has ``k_fe`` columns)."""
        r = np.atleast_2d(np.asarray(r_matrix, float))
        if r.shape[1] != self.k_fe:
            raise ValueError(f"r_matrix for t-test should have {self.k_fe} columns")
        r = np.hstack([r, np.zeros((r.shape[0], self.k_re2 + self.k_vc))])
        return super().t_test(r, use_t=use_t)

    def profile_re(self, *args: Any, **kwargs: Any) -> NoReturn:
        """Not available; for profile-likelihood intervals of variances use lme4 or a bootstrap."""
        raise NotImplementedError("profile_re is not implemented by interlace's MixedLM")

    def summary(self, yname: str | None = None, xname_fe: Sequence[str] | None = None,
                xname_re: Sequence[str] | None = None, title: str | None = None, alpha: float = 0.05) -> Summary:
        """MixedLM's summary layout (estimates from interlace; variance rows without tests)."""
        from statsmodels.iolib.summary2 import Summary

        m = self.model
        names = list(m.data.param_names)
        if xname_fe is not None:
            if len(xname_fe) != self.k_fe:
                raise ValueError(f"xname_fe should be a list of length {self.k_fe}")
            names[:self.k_fe] = list(xname_fe)
        if xname_re is not None:
            if len(xname_re) != len(names) - self.k_fe:
                raise ValueError(f"xname_re should be a list of length {len(names) - self.k_fe}")
            names[self.k_fe:] = list(xname_re)
        sizes = np.array([r.size for r in m._group_rows])
        info = {
            "Model:": "MixedLM (interlace)",
            "Dependent Variable:": yname or m.endog_names,
            "No. Observations:": str(self.nobs),
            "Method:": self.method,
            "No. Groups:": str(m.n_groups),
            "Scale:": f"{self.scale:.4f}",
            "Min. group size:": f"{sizes.min():.0f}",
            "Log-Likelihood:": f"{self.llf:.4f}",
            "Max. group size:": f"{sizes.max():.0f}",
            "Converged:": "Yes" if self.converged else "No",
            "Mean group size:": f"{sizes.mean():.1f}",
        }
        s = Summary()
        s.add_title(title or "Mixed Linear Model Regression Results")
        s.add_dict(info)
        k = self.params.shape[0]
        tab = np.full((k, 6), np.nan)
        fe_se = np.asarray(self.bse_fe)
        z = st.norm.isf(alpha / 2)
        tab[:self.k_fe, 0] = self.fe_params
        tab[:self.k_fe, 1] = fe_se
        tab[:self.k_fe, 2] = self.fe_params / fe_se
        tab[:self.k_fe, 3] = 2 * st.norm.sf(np.abs(tab[:self.k_fe, 2]))
        tab[:self.k_fe, 4] = self.fe_params - z * fe_se
        tab[:self.k_fe, 5] = self.fe_params + z * fe_se
        ix = np.tril_indices(self.k_re)
        var = np.concatenate([self.cov_re[ix], self.vcomp])
        tab[self.k_fe:, 0] = var
        tab[self.k_fe:, 1] = np.sqrt(self.scale) * np.asarray(self.bse)[self.k_fe:]
        cols = ["Coef.", "Std.Err.", "z", "P>|z|", f"[{alpha / 2:g}", f"{1 - alpha / 2:g}]"]
        df = pd.DataFrame(tab, index=names, columns=cols)
        df = df.apply(lambda c: [f"{v:.3f}" if np.isfinite(v) else "" for v in c])
        s.add_df(df, align="r")
        s.add_text("Estimated by interlace (lme4's criterion and PLS engine); variance rows: "
                   "MixedLM's Std.Err. convention, no tests.")
        return s

    def __str__(self) -> str:
        return str(self.summary())


def _inverse_information(H: np.ndarray) -> np.ndarray:
    """``(-H)⁻¹``; a pseudo-inverse with a warning when the information is singular (boundary fits)."""
    if H.size == 0:
        return H.copy()
    if np.any(np.diag(H) >= 0):
        warnings.warn("The Hessian matrix at the estimated parameter values is not positive definite.",
                      ConvergenceWarning, stacklevel=4)
    try:
        return np.linalg.inv(-H)
    except np.linalg.LinAlgError:
        return np.linalg.pinv(-H)


class MixedLMResultsWrapper(LikelihoodResultsWrapper):
    """Labels outputs as MixedLM's wrapper does (pandas names when the data were pandas)."""

    _attrs: ClassVar[dict] = {
        "fe_params": ("generic_columns", "xnames"),
        "bse_fe": ("generic_columns", "xnames"),
        "bse_re": ("generic_columns", "re_param_names"),  # MixedLM labels only cov_re's part (fails with vc)
        "cov_re": ("generic_columns_2d", "exog_re_names"),
        "cov_re_unscaled": ("generic_columns_2d", "exog_re_names"),
    }
    _wrap_attrs = wrap.union_dicts(_attrs, LikelihoodResultsWrapper._wrap_attrs)
    _wrap_methods = wrap.union_dicts(LikelihoodResultsWrapper._wrap_methods)

    def __repr__(self) -> str:
        r = self._results
        return f"<interlace MixedLMResults: {r.method}, n={r.nobs}, groups={r.model.n_groups}, llf={r.llf:.4f}>"


wrap.populate_wrapper(MixedLMResultsWrapper, MixedLMResults)

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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.stats as st
from statsmodels.base import wrapper as wrap
from statsmodels.base.model import LikelihoodModelResults, LikelihoodResultsWrapper
from statsmodels.tools._decorators import cache_readonly

from ..design.fixed import new_matrix
from ..design.mixedlm_terms import VCLayout, free_masks
from ..optimize import OptSummary, is_singular

if TYPE_CHECKING:
    from statsmodels.iolib.summary2 import Summary
    from statsmodels.stats.contrast import ContrastResults

__all__ = ["MixedLMResults", "MixedLMResultsWrapper"]


@dataclass
class MixedLMEstimates:
    """What a :class:`MixedLMResults` is built from (the model's fit hands it over).

    Attributes
    ----------
    layout : VCLayout
        The random-effects terms the fit used (θ ↔ MixedLM's parameters, b ↔ groups).
    theta : ndarray
        lme4's θ at the estimate (fitting order).
    fe_params : ndarray
    cov_re, vcomp : ndarray
        ``cov_re / scale`` and ``vcomp / scale`` (MixedLM's profile parameters).
    scale : float
    llf : float
        The log-likelihood reported (with MixedLM's penalties subtracted for a penalized fit).
    b : ndarray
        The stacked conditional modes of the random effects (the layout's order).
    cov_params : ndarray
        Covariance of ``params`` (inverse observed information; zeros or NaN where a
        parameter is held or zero).
    opt : OptSummary
    reml : bool
    criterion : float
        lme4's criterion at θ (REML criterion or deviance, no penalty).
    freepat, cov_pen, fe_pen : optional
        The fit's ``free`` pattern and penalties.
    converged : bool, optional
        Overrides the optimizer's verdict (regularized fits).
    """

    layout: VCLayout
    theta: np.ndarray
    fe_params: np.ndarray
    cov_re: np.ndarray
    vcomp: np.ndarray
    scale: float
    llf: float
    b: np.ndarray
    cov_params: np.ndarray
    opt: OptSummary
    reml: bool
    criterion: float
    freepat: Any = None
    cov_pen: Any = None
    fe_pen: Any = None
    converged: bool | None = None


class MixedLMResults(LikelihoodModelResults):
    """A fitted :class:`~interlace.models.mixedlm.MixedLM` (see the module docstring).

    Extra attributes (interlace): ``theta`` (lme4's θ, fitting order),
    ``opt_summary``, ``objective`` (REML criterion or deviance), ``is_singular``,
    ``layout`` (the random-effects terms used).
    """

    def __init__(self, model: Any, est: MixedLMEstimates) -> None:
        self.est = est
        self.layout = est.layout
        self.opt_summary = est.opt
        self.theta = est.theta
        self.reml = est.reml
        scale = float(est.scale)
        fe = np.asarray(est.fe_params, float)
        cov_u, vc_u = np.asarray(est.cov_re, float), np.asarray(est.vcomp, float)
        packed = np.concatenate([fe, cov_u[np.tril_indices(model.k_re)], vc_u])
        super().__init__(model, packed, normalized_cov_params=est.cov_params / scale, scale=scale)
        self.use_t = False
        self.fe_params = fe
        self.cov_re_unscaled = cov_u
        self.cov_re = scale * cov_u
        self.vcomp = scale * vc_u
        self.method = "REML" if self.reml else "ML"
        self.k_fe, self.k_re, self.k_re2, self.k_vc = model.k_fe, model.k_re, model.k_re2, model.k_vc
        self.use_sqrt = model.use_sqrt
        self.freepat = est.freepat
        self.cov_pen = est.cov_pen
        self.fe_pen = est.fe_pen
        self.hist = None
        self.nobs = model.nobs
        self.df_resid = self.nobs - np.linalg.matrix_rank(np.asarray(model.exog, float))
        opt = est.opt
        self.converged = bool(opt.converged) and not any(
            m.startswith(("Model failed", "optimizer")) for m in opt.messages) if est.converged is None \
            else bool(est.converged)
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
        """Log-likelihood: the REML log-likelihood for REML fits (lme4's ``logLik``; equal to MixedLM's).

        For a fit with ``fe_pen``/``cov_pen`` the penalties are subtracted (MixedLM's);
        for ``fit_regularized`` it is the log-likelihood at the penalized fixed effects.
        """
        return float(self.est.llf)

    @property
    def objective(self) -> float:
        """lme4's criterion at θ (REML criterion or deviance, no penalty): ``-2 llf`` of an ordinary fit."""
        return float(self.est.criterion)

    @cache_readonly
    def aic(self) -> float:
        """Akaike criterion; NaN for REML fits (MixedLM's convention)."""
        if self.reml:
            return np.nan
        return -2.0 * self.llf + 2.0 * self._df_params

    @cache_readonly
    def bic(self) -> float:
        """Bayesian criterion; NaN for REML fits (MixedLM's convention)."""
        if self.reml:
            return np.nan
        return -2.0 * self.llf + np.log(self.nobs) * self._df_params

    @property
    def _df_params(self) -> float:
        """Estimated parameters counted by AIC/BIC: ``params`` (the free ones under ``free=``) and the scale."""
        if self.freepat is None:
            return float(self.params.size + 1)
        fe, cov, vc = free_masks(self.freepat, self.k_fe, self.k_re, self.k_vc)
        return float(fe.sum() + cov[np.tril_indices(self.k_re)].sum() + vc.sum() + 1)

    @property
    def is_singular(self) -> bool:
        """A variance or correlation on the boundary (lme4's ``isSingular``)."""
        return is_singular(self.theta, self.layout.re.lower)

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
        return {lab: pd.Series(self.layout.group_effects(self.est.b, i), index=self._expand_re_names(i))
                for i, lab in enumerate(m.group_labels)}

    @cache_readonly
    def random_effects_cov(self) -> dict:
        """Conditional covariance of each group's random effects given the data (β held at β̂)."""
        m = self.model
        cov_u, vc_u = self.cov_re_unscaled, self.vcomp / self.scale
        out = {}
        for i, lab in enumerate(m.group_labels):
            _, V = m.grouped_design.conditional(i, cov_u, vc_u, self.fe_params)
            names = self._expand_re_names(i)
            out[lab] = pd.DataFrame(self.scale * V, index=names, columns=names)
        return out

    # ------------------------------------------------------------ fitted values
    @cache_readonly
    def fittedvalues(self) -> np.ndarray:
        """Fitted values with the predicted random effects, ``Xβ̂ + Zb̂``."""
        re = self.layout.re
        return np.asarray(self.model.exog, float) @ self.fe_params + np.asarray(re.Z() @ self.est.b).ravel()

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

    def profile_re(self, re_ix: int | str, vtype: str, num_low: int = 5, dist_low: float = 1.0, num_high: int = 5,
                   dist_high: float = 1.0, **fit_kwargs: Any) -> np.ndarray:
        """Profile log-likelihood of one variance parameter (MixedLM's ``profile_re``).

        The parameter is held at each of a grid of values and the model refitted over
        the others (``free=``, through a clone of the model); the grid runs from the
        estimate minus ``dist_low`` to the estimate plus ``dist_high`` (in the variance's
        own units), ``num_low`` and ``num_high`` points on either side.  As in MixedLM,
        what is held is the parameter divided by the scale (the profile
        parameterization) and the values reported are those times each refit's scale.

        Parameters
        ----------
        re_ix : int or str
            ``vtype="re"``: the index of the diagonal entry of ``cov_re``;
            ``vtype="vc"``: the name of the variance component.
        vtype : {"re", "vc"}
        num_low, num_high : int
        dist_low, dist_high : float
        **fit_kwargs
            Passed to each refit's ``fit``.

        Returns
        -------
        ndarray (num_low + num_high + 1, 2)
            The variance and the log-likelihood at each grid point.
        """
        from statsmodels.regression.mixed_linear_model import MixedLMParams

        if vtype not in ("re", "vc"):
            raise ValueError(f"vtype must be 're' or 'vc', got {vtype!r}")
        m = self.model
        k_fe, k_re, k_vc = self.k_fe, self.k_re, self.k_vc
        params = self.params_object.copy()
        if vtype == "re":
            j = int(re_ix)
            if not 0 <= j < k_re:
                raise ValueError(f"re_ix must be in 0..{k_re - 1}, got {re_ix!r}")
            ix = np.arange(k_re)
            ix[0], ix[j] = j, 0
            params.cov_re = params.cov_re[np.ix_(ix, ix)]
            ru0 = params.cov_re[0, 0]
            var = self.scale * ru0
            model = m.clone(exog_re=np.asarray(m.exog_re, float)[:, ix])
        else:
            names = list(m.exog_vc.names)
            if re_ix not in names:
                raise ValueError(f"no variance component {re_ix!r}: the model has {', '.join(map(repr, names))}")
            j = names.index(re_ix)
            ru0 = self.vcomp[j] / self.scale
            var = self.vcomp[j]
            model = m.clone()
        low, high = (var - dist_low) / self.scale, (var + dist_high) / self.scale
        if low <= 0:
            raise ValueError("dist_low is too large and would result in a negative variance. Try a smaller value.")
        rvalues = np.concatenate([np.linspace(low, ru0, num_low + 1), np.linspace(ru0, high, num_high + 1)[1:]])
        free = MixedLMParams(k_fe, k_re, k_vc)
        if self.freepat is None:
            free.fe_params, free.vcomp, mat = np.ones(k_fe), np.ones(k_vc), np.ones((k_re, k_re))
        else:
            fe_m, cov_m, vc_m = free_masks(self.freepat, k_fe, k_re, k_vc)
            free.fe_params, free.vcomp, mat = fe_m.astype(float), vc_m.astype(float), cov_m.astype(float)
            if vtype == "re":
                mat = mat[np.ix_(ix, ix)]
        if vtype == "re":
            mat[0, 0] = 0
        else:
            free.vcomp[j] = 0
        free.cov_re = mat
        out = []
        for x in rvalues:
            if vtype == "re":
                cov = params.cov_re.copy()
                cov[0, 0] = x
                params.cov_re = cov
            else:
                params.vcomp = np.array(params.vcomp, float)
                params.vcomp[j] = x
            r = model.fit(start_params=params, free=free, reml=self.reml, cov_pen=self.cov_pen, **fit_kwargs)._results
            out.append([x * r.scale, r.llf])
        return np.asarray(out)

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

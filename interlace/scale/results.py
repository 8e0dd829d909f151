"""The result of a chunked LMM fit: :class:`ChunkedLMEResult`.

Why not :class:`~interlace.results.lmm.CrossedLMEResult`: that class is a
statsmodels ``LikelihoodModelResults`` of a model that holds the rows (``exog``,
``endog``, the model frame), and much of it (fitted values, residuals,
simulation, bootstraps, profiles, Kenward-Roger, type III ANOVA) reads them.  A
chunked fit has no rows on the client, so it gets a lighter class with the same
names for everything that the cross-products determine, computed by the same
code (the shared properties of :class:`~interlace.results.base.MixedResultsBase`
and the Satterthwaite tests of :class:`~interlace.inference.ddf.FixedEffectsTests`
are reused, not re-implemented), and a clear :class:`~interlace.errors.InterlaceError`
for the row-level quantities: predict on the chunks instead
(``ddf.map_partitions(result.predict)``).

Satterthwaite degrees of freedom use lmerTest's analytic Hessian as in memory:
:class:`BlockMarginalDerivatives` gets ``V⁻¹``-products from ``ZᵀWZ``,
``ZᵀW[X y]`` and ``[X y]ᵀW[X y]`` alone (Woodbury, as the row version).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
import scipy.stats as st

from ..errors import InterlaceError
from ..inference.ddf import FixedEffectsTests
from ..inference.marginal import MarginalDerivatives, covariance_basis
from ..objective.lmm import LMMSolution
from ..optimize import OptSummary
from ..results.base import MixedResultsBase
from ..results.lmm import CrossedLMEResult
from ..results.varcorr import group_blocks
from .design import ChunkedDesign

__all__ = ["ChunkedLME", "ChunkedLMEResult", "BlockMarginalDerivatives", "assemble_gram"]

_NO_ROWS = ("{what} needs the rows, which a chunked fit does not keep on the client: compute it chunk by "
            "chunk, e.g. ``ddf.map_partitions(result.predict)`` for fitted values (``y - fitted`` for "
            "residuals), or fit in memory with interlace.fit")


def assemble_gram(re, parts: dict) -> tuple[sp.csc_matrix, np.ndarray, np.ndarray]:
    """``ZᵀWZ`` (sparse q × q), ``ZᵀW[X y]`` (q × (p + 1)) and ``[X y]ᵀW[X y]`` from the blocks."""
    t1 = re.terms[0]
    l1, p1 = t1.nlevels, t1.p
    r, c = np.meshgrid(np.arange(p1), np.arange(p1), indexing="ij")
    base = np.arange(l1)[:, None, None] * p1
    A11 = sp.csc_matrix((np.asarray(parts["A11"], float).reshape(l1, p1, p1).ravel(),
                         ((base + r).ravel(), (base + c).ravel())), shape=(t1.q, t1.q))
    if re.q > t1.q:
        A21 = sp.csr_matrix(parts["A21"])
        S = sp.bmat([[A11, A21.T], [A21, sp.csr_matrix(parts["A22"])]], format="csc")
        C = np.vstack([np.asarray(parts["A31"]).T, np.asarray(parts["A32"]).T])
    else:
        S, C = A11, np.asarray(parts["A31"]).T
    return S, np.ascontiguousarray(C), np.asarray(parts["A33"], float)


class ChunkedLME:
    """The model side of a chunked fit: structure, design and criterion, no rows.

    Attributes
    ----------
    formula : str
    random_effects_structure : RandomEffects
        Levels and templates; the terms hold no rows.
    reml : bool
    nobs : float
        Complete rows.
    exog_names : list of str
        Fixed-effect names (R's order, aliased columns dropped).
    offset_arg : str or None
        Offset column name.
    """

    def __init__(self, design: ChunkedDesign, keep: np.ndarray, dev, reml: bool) -> None:
        from types import SimpleNamespace

        self.design = design
        self.formula = design.plan.formula
        self.random_effects_structure = design.re
        self.reml = bool(reml)
        self.nobs = float(design.n)
        self.exog_names = [design.x_names[i] for i in keep]
        self.k_fe = len(self.exog_names)
        self.df_resid = self.nobs - self.k_fe
        self.endog_names = design.response
        #: what :meth:`predict` needs to encode new data as in fitting
        self._fixed = SimpleNamespace(design_info=design.x_info, keep=np.asarray(keep, np.intp))
        self.offset_arg = design.plan.offset
        self.offset = np.zeros(0) if design.plan.offset is not None else None
        self.weights_arg = design.plan.weights
        self._frame = None
        self._dev = dev

    def deviance_function(self):
        """The criterion of θ (built on the blocks)."""
        return self._dev

    @property
    def exog(self):
        raise InterlaceError(_NO_ROWS.format(what="the model matrix"))

    @property
    def endog(self):
        raise InterlaceError(_NO_ROWS.format(what="the response vector"))


class ChunkedLMEResult(FixedEffectsTests):
    """A linear mixed model fitted on chunked data (Dask, parquet); see the module docstring.

    The estimates are those of :func:`interlace.fit` on the same data in memory:
    ``fe_params``, ``fe_bse``, ``cov_fe``, ``fe_df``/``fe_pvalues``/``fe_conf_int``
    (Satterthwaite, lmerTest's, or Wald z with ``df_method="normal"``), ``contest``,
    ``variance_components``, ``random_effects_cov``/``_sd``/``_corr``, ``varcorr``,
    ``scale``/``sigma``, ``llf``, ``aic``, ``bic``, ``theta``, ``random_effects``
    (BLUPs) and their conditional variances, ``predict(newdata)`` (with intervals).

    Attributes
    ----------
    model : ChunkedLME
    theta : ndarray
    sol : LMMSolution
    opt_summary : OptSummary
    engine : str
        PLS engine ("blocked" or "cholmod").
    n_dropped : int
        Rows dropped for missing values.
    timings : dict
        Seconds spent in the levels pass, the blocks pass and the optimization.
    """

    _fe = slice(None)

    def __init__(self, design: ChunkedDesign, keep: np.ndarray, dropped: list[str], dev, sol: LMMSolution,
                 opt: OptSummary, df_method: str = "satterthwaite", min_w: float = 1.0) -> None:
        self.model = ChunkedLME(design, keep, dev, dev.reml)
        self.sol = sol
        self.opt_summary = opt
        self.theta = sol.theta
        self.reml = bool(dev.reml)
        self.params = np.asarray(sol.beta, float)
        self.scale = float(sol.sigma2)
        p = self.params.size
        if p:
            RXinv = np.linalg.inv(sol.RX)
            self.normalized_cov_params = RXinv.T @ RXinv
        else:
            self.normalized_cov_params = np.zeros((0, 0))
        self._names = list(self.model.exog_names)
        self._blocks = group_blocks(design.re)
        self.engine = dev.pls.engine
        self.dropped_columns = list(dropped)
        self.df_method = df_method
        self.df_resid = self.model.df_resid
        self._min_w = float(min_w)
        self.timings: dict = {}
        self.n_chunks: int | None = None

    # ------------------------------------------------------------ shared with the in-memory results
    _re_scale = property(lambda self: self.scale)
    _residual_variance = property(lambda self: self.scale)
    _series = MixedResultsBase._series
    _cov_of = MixedResultsBase._cov_of
    random_effects_cov = MixedResultsBase.random_effects_cov
    variance_components = MixedResultsBase.variance_components
    random_effects_sd = MixedResultsBase.random_effects_sd
    random_effects_corr = MixedResultsBase.random_effects_corr
    varcorr = MixedResultsBase.varcorr
    ngroups = MixedResultsBase.ngroups
    is_singular = MixedResultsBase.is_singular
    random_effects = MixedResultsBase.random_effects
    random_effects_condvar = MixedResultsBase.random_effects_condvar
    random_effects_condsd = MixedResultsBase.random_effects_condsd
    _condvar_terms = MixedResultsBase._condvar_terms
    _linear_predictor = MixedResultsBase._linear_predictor
    _eta_new = MixedResultsBase._eta_new
    llf = MixedResultsBase.llf
    aic = MixedResultsBase.aic
    bic = MixedResultsBase.bic
    converged = MixedResultsBase.converged
    objective = CrossedLMEResult.objective
    reml_criterion = CrossedLMEResult.reml_criterion
    deviance = CrossedLMEResult.deviance
    df_modelwc = CrossedLMEResult.df_modelwc
    sigma = CrossedLMEResult.sigma

    def _factored_pls(self):
        pls = self.model.deviance_function().pls
        pls.factor(self.theta)
        return pls

    # ------------------------------------------------------------ fixed effects
    def cov_params(self) -> np.ndarray:
        """Covariance matrix of β̂, ``σ² (RX RXᵀ)⁻¹`` (lme4's ``vcov``)."""
        return self.normalized_cov_params * self.scale

    @property
    def bse(self) -> np.ndarray:
        """Standard errors of β̂ (array; :attr:`fe_bse` is the labelled Series)."""
        return np.sqrt(np.diag(self.cov_params()))

    @property
    def tvalues(self) -> np.ndarray:
        """β̂ / SE."""
        return self.params / self.bse

    @property
    def pvalues(self) -> np.ndarray:
        """Wald z p-values (statsmodels' ``pvalues``)."""
        return 2 * st.norm.sf(np.abs(self.tvalues))

    @property
    def fe_params(self) -> pd.Series:
        """Fixed-effect estimates β̂."""
        return self._series(self.params, "fe_params")

    @property
    def fe_bse(self) -> pd.Series:
        """Standard errors of β̂."""
        return self._series(self.bse, "fe_bse")

    @property
    def fe_tvalues(self) -> pd.Series:
        """Wald statistics β̂ / SE."""
        return self._series(self.tvalues, "fe_tvalues")

    @property
    def cov_fe(self) -> pd.DataFrame:
        """Covariance matrix of β̂, labelled."""
        return pd.DataFrame(self.cov_params(), index=self._names, columns=self._names)

    def _marginal_derivatives(self):
        cache = self.__dict__.setdefault("_ddf_engines", {})
        if "_marginal" not in cache:
            cache["_marginal"] = BlockMarginalDerivatives(self)
        return cache["_marginal"]

    def anova(self, type=3, ddf=None):
        """Not available for chunked fits (the type III contrasts read the model matrix); use :meth:`contest`."""
        raise InterlaceError("anova() is not available for a chunked fit; test terms with contest(L) "
                             "(one row of L per coefficient of the term)")

    # ------------------------------------------------------------ fit information
    @property
    def nobs(self) -> int:
        """Complete rows used."""
        return int(self.model.nobs)

    @property
    def n_dropped(self) -> int:
        """Rows dropped for missing values."""
        return int(self.model.design.n_dropped)

    # ------------------------------------------------------------ prediction
    def predict(self, newdata: pd.DataFrame, include_re: bool = True, offset=None, interval: str | None = None,
                level: float = 0.95):
        """Predictions on new data (a pandas DataFrame, e.g. one chunk); see
        :meth:`interlace.results.lmm.CrossedLMEResult.predict`.  Unseen levels contribute 0.

        ``newdata`` is required: the training rows are not kept (for fitted values over a
        Dask DataFrame use ``ddf.map_partitions(result.predict)``).
        """
        if newdata is None:
            raise InterlaceError(_NO_ROWS.format(what="predict() without newdata"))
        return CrossedLMEResult.predict(self, newdata, include_re=include_re, offset=offset, interval=interval,
                                        level=level)

    @property
    def fittedvalues(self):
        raise InterlaceError(_NO_ROWS.format(what="fittedvalues"))

    @property
    def resid(self):
        raise InterlaceError(_NO_ROWS.format(what="resid"))

    @property
    def resid_pearson(self):
        raise InterlaceError(_NO_ROWS.format(what="resid_pearson"))

    def simulate(self, *args, **kwargs):
        raise InterlaceError(_NO_ROWS.format(what="simulate()"))

    def bootstrap(self, *args, **kwargs):
        raise InterlaceError(_NO_ROWS.format(what="bootstrap()"))

    def profile(self, *args, **kwargs):
        raise InterlaceError(_NO_ROWS.format(what="profile()"))

    # ------------------------------------------------------------ reporting
    def summary(self, alpha: float = 0.05):
        """statsmodels ``Summary``: fit information, random effects, fixed-effect t tests."""
        from statsmodels.iolib.summary2 import Summary

        from ..results.summary import (
            _LMM_FE_NOTES,
            _add_fixed_effects,
            _add_lmm_fixed_effects,
            lmm_info,
            random_effects_table,
        )

        s = Summary()
        s.add_title(f"Linear mixed model fit by {'REML' if self.reml else 'maximum likelihood'} "
                    "on chunked data (interlace.scale)")
        info = lmm_info(self)
        s.add_dict(info, ncols=2)
        s.add_df(random_effects_table(self), index=False)
        if self.df_method == "normal":
            _add_fixed_effects(s, self, alpha)
            note = _LMM_FE_NOTES["normal"]
        else:
            note = _add_lmm_fixed_effects(s, self, alpha)
        s.add_text("\n".join([note, "Scaled residuals are not shown: the rows are not kept on the client."]
                             + list(self.opt_summary.messages)))
        return s

    def __str__(self) -> str:
        return str(self.summary())

    def __repr__(self) -> str:
        return (f"<ChunkedLMEResult: {self.model.formula!r}, {'REML' if self.reml else 'ML'}, "
                f"n={self.nobs}, llf={self.llf:.4f}>")


class BlockMarginalDerivatives(MarginalDerivatives):
    """:class:`~interlace.inference.marginal.MarginalDerivatives` from cross-products alone.

    With ``F = [X, r]`` (r = y − Xβ̂), ``G = ZᵀWF``, ``H = FᵀWF``, ``S = ZᵀWZ`` and
    ``K = M⁻¹ΛᵀG`` (M = ΛᵀSΛ + I):

    * ``ZᵀV⁻¹F = σ⁻² (G − SΛK)``;
    * ``FᵀV⁻¹W⁻¹V⁻¹F = σ⁻⁴ (H − GᵀΛK − (ΛK)ᵀG + (ΛK)ᵀSΛK)``;

    and everything else lives in the q-dimensional space as in the row version.

    Parameters
    ----------
    result : ChunkedLMEResult
    chunk : int
        Columns of ZᵀV⁻¹Z formed at a time for the traces.
    """

    def __init__(self, result: ChunkedLMEResult, chunk: int = 256) -> None:  # noqa: D107
        model = result.model
        re = model.random_effects_structure
        self.re = re
        self.reml = bool(result.reml)
        theta = np.asarray(result.theta, float)
        self.sigma2 = s2 = float(result.scale)
        beta = np.asarray(result.params, float)
        p = beta.size
        n = int(result.nobs)
        self.n, self.p, self.q = n, p, re.q
        if result._min_w <= 0:
            raise InterlaceError("degrees of freedom need positive prior weights")
        pls = model.deviance_function().pls
        pls.factor(theta)
        self._pls = pls
        S, C, H0 = assemble_gram(re, _engine_parts(pls))
        Lam = re.Lambda(theta).tocsc()
        self._Z, self._Lam = None, Lam
        LtS = (Lam.T @ S).tocsc()
        self._S, self._LtS, self._SL = S, LtS, LtS.T.tocsc()
        T = np.eye(p + 1)
        T[:p, p] = -beta
        G = C @ T
        H = T.T @ H0 @ T
        self.Phi = np.asarray(result.cov_params(), float)
        LK = Lam @ pls.solve_M(np.asarray(Lam.T @ G))
        Ub = (G - np.asarray(S @ LK)) / s2  # Zᵀ V⁻¹ F
        UWU = (H - G.T @ LK - LK.T @ G + LK.T @ np.asarray(S @ LK)) / (s2 * s2)

        self._q_space_products(Ub, UWU, pls, Lam, chunk)

    def vinv(self, Y):
        raise InterlaceError(_NO_ROWS.format(what="V⁻¹ times an n-vector"))


def _engine_parts(pls) -> dict:
    """The blocks an engine was built on (as passed to ``from_blocks``)."""
    parts = getattr(pls, "_scale_parts", None)
    if parts is None:
        raise InterlaceError("the engine does not carry its cross-product blocks")
    return parts

"""The result of a chunked LMM fit: :class:`ChunkedLMEResult`.

Why not :class:`~interlace.results.lmm.CrossedLMEResult`: that class is a
statsmodels ``LikelihoodModelResults`` of a model that holds the rows (``exog``,
``endog``, the model frame), and much of it (fitted values, residuals,
simulation, bootstraps, profiles, Kenward-Roger, type III ANOVA) reads them.  A
chunked fit has no rows on the client, so it gets a lighter class with the same
names for everything that the cross-products determine, computed by the same
code (it shares :class:`~interlace.results.components.RandomEffectsFit`,
:class:`~interlace.results.lmm.LMMFit` and the Satterthwaite tests of
:class:`~interlace.inference.ddf.FixedEffectsTests`), and a clear :class:`~interlace.errors.InterlaceError`
for the row-level quantities: predict on the chunks instead
(``ddf.map_partitions(result.predict)``).

Satterthwaite degrees of freedom use lmerTest's analytic Hessian as in memory:
:class:`BlockMarginalDerivatives` gets ``V⁻¹``-products from ``ZᵀWZ``,
``ZᵀW[X y]`` and ``[X y]ᵀW[X y]`` alone (Woodbury, as the row version).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np
import numpy.typing as npt
import pandas as pd

from ..errors import InterlaceError
from ..inference.ddf import FixedEffectsTests
from ..inference.marginal import MarginalDerivatives
from ..objective.lmm import LMMDeviance, LMMSolution
from ..optimize import OptSummary
from ..results.components import RandomEffectsFit
from ..results.lmm import LMMFit
from .design import ChunkedDesign
from .model import ChunkedModel, RowlessResult

if TYPE_CHECKING:
    from statsmodels.iolib.summary2 import Summary

__all__ = ["ChunkedLME", "ChunkedLMEResult", "BlockMarginalDerivatives"]

_NO_ROWS = ("{what} needs the rows, which a chunked fit does not keep on the client: compute it chunk by "
            "chunk, e.g. ``ddf.map_partitions(result.predict)`` for fitted values (``y - fitted`` for "
            "residuals), or fit in memory with interlace.fit")


class ChunkedLME(ChunkedModel):
    """The model side of a chunked LMM: the design (:class:`~interlace.scale.model.ChunkedModel`)
    and the criterion, no rows.

    Attributes
    ----------
    reml : bool
        Besides :class:`~interlace.scale.model.ChunkedModel`'s.
    """

    no_rows = _NO_ROWS

    def __init__(self, design: ChunkedDesign, keep: np.ndarray, dev: LMMDeviance) -> None:
        super().__init__(design, keep)
        self.reml = bool(dev.reml)
        self._dev: LMMDeviance | None = dev
        #: what rebuilds the criterion after unpickling: the summed blocks, Σ log w, the engine
        self._products = (dev.pls.cp, dev.ldW, dev.pls.engine)

    def deviance_function(self) -> LMMDeviance:
        """The criterion of θ, on an engine built from the summed blocks (rebuilt after unpickling)."""
        if self._dev is None:
            from ..linalg.engines import engine_for_products
            from ..linalg.pls import HAVE_CHOLMOD

            cp, sum_log_w, engine = self._products
            if engine == "cholmod" and not HAVE_CHOLMOD:
                engine = "auto"  # the blocked engine gives the same numbers
            self._dev = LMMDeviance(engine_for_products(cp, engine), self.reml, sum_log_w)
        return self._dev

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_dev"] = None  # its engine is rebuilt from the blocks (a CHOLMOD factor does not pickle)
        return state



class ChunkedLMEResult(RowlessResult, FixedEffectsTests, LMMFit, RandomEffectsFit):
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

    def __init__(self, design: ChunkedDesign, keep: np.ndarray, dropped: list[str], dev: LMMDeviance,
                 sol: LMMSolution, opt: OptSummary, df_method: str = "satterthwaite", min_w: float = 1.0) -> None:
        self.model = ChunkedLME(design, keep, dev)
        self._objective = dev
        self.sol = sol
        self.opt_summary = opt
        self.theta = sol.theta
        self.reml = bool(dev.reml)
        self.scale = float(sol.sigma2)
        p = np.asarray(sol.beta).size
        if p:
            RXinv = np.linalg.inv(sol.RX)
            self.normalized_cov_params = RXinv.T @ RXinv
        else:
            self.normalized_cov_params = np.zeros((0, 0))
        self._init_shared(self.model)
        self.engine = dev.pls.engine
        self.dropped_columns = list(dropped)
        self.df_method = df_method
        self.df_resid = self.model.df_resid
        self._min_w = float(min_w)
        self.timings: dict = {}
        self.n_chunks: int | None = None

    def _rebuild_objective(self) -> LMMDeviance:
        return self.model.deviance_function()

    def save(self, fname: Any, remove_data: bool = False) -> None:
        """Pickle the result to ``fname`` (a path or a file handle), as statsmodels' results' ``save``.

        A chunked result keeps no rows, so ``remove_data`` changes nothing.
        """
        from statsmodels.iolib.smpickle import save_pickle

        save_pickle(self, fname)

    @classmethod
    def load(cls, fname: Any) -> ChunkedLMEResult:
        """Load a result saved with :meth:`save` (only from a trusted source: it is a pickle)."""
        from statsmodels.iolib.smpickle import load_pickle

        return load_pickle(fname)

    # ------------------------------------------------------------ fixed effects
    @property
    def params(self) -> pd.Series:
        """β̂, labelled (statsmodels' ``params``; the same as :attr:`fe_params`)."""
        return pd.Series(np.asarray(self.sol.beta, float), index=self._names)

    def cov_params(self) -> pd.DataFrame:
        """Covariance matrix of β̂, ``σ² (RX RXᵀ)⁻¹`` (lme4's ``vcov``), labelled."""
        return pd.DataFrame(self.normalized_cov_params * self.scale, index=self._names, columns=self._names)

    @property
    def bse(self) -> pd.Series:
        """Standard errors of β̂ from :meth:`cov_params` (lme4's)."""
        return pd.Series(np.sqrt(np.diag(self.normalized_cov_params * self.scale)), index=self._names)

    @property
    def tvalues(self) -> pd.Series:
        """β̂ / SE."""
        return self.params / self.bse

    @property
    def pvalues(self) -> pd.Series:
        """p-values of the fixed effects' tests with ``df_method``'s df (:attr:`fe_pvalues`)."""
        return self.fe_pvalues.rename(None)

    def conf_int(self, alpha: float = 0.05) -> pd.DataFrame:
        """Intervals of the fixed effects with ``df_method``'s t quantiles (:meth:`fe_conf_int`)."""
        return self.fe_conf_int(alpha)

    def summary2(self, alpha: float = 0.05, title: str | None = None) -> Summary:
        """statsmodels' ``summary2``: :meth:`summary` (already a ``summary2.Summary``), with another ``title``."""
        s = self.summary(alpha)
        if title is not None:
            s.add_title(title)
        return s

    def _marginal_derivatives(self):
        cache = self.__dict__.setdefault("_ddf_engines", {})
        if "_marginal" not in cache:
            cache["_marginal"] = BlockMarginalDerivatives(self)
        return cache["_marginal"]

    def anova(self, type: int | str = 3, df_method: str | None = None, *, ddf: str | None = None) -> NoReturn:
        """Not available for chunked fits (the type III contrasts read the model matrix); use :meth:`contest`."""
        raise InterlaceError("anova() is not available for a chunked fit; test terms with contest(L) "
                             "(one row of L per coefficient of the term)")

    # ------------------------------------------------------------ fit information
    @property
    def n_dropped(self) -> int:
        """Rows dropped for missing values."""
        return int(self.model.design.n_dropped)

    # ------------------------------------------------------------ prediction
    def predict(self, newdata: pd.DataFrame | None = None, include_re: bool = True,
                offset: npt.ArrayLike | None = None, interval: str | None = None, level: float = 0.95,
                exog: Any = None, transform: bool = True) -> pd.Series | pd.DataFrame:
        """Predictions on new data (a pandas DataFrame, e.g. one chunk); see
        :meth:`interlace.results.lmm.CrossedLMEResult.predict`.  Unseen levels contribute 0.

        ``newdata`` is required: the training rows are not kept (for fitted values over a
        Dask DataFrame use ``ddf.map_partitions(result.predict)``).
        """
        if newdata is None and exog is None:
            raise InterlaceError(_NO_ROWS.format(what="predict() without newdata"))
        return super().predict(newdata, include_re=include_re, offset=offset, interval=interval, level=level,
                               exog=exog, transform=transform)

    @property
    def resid_pearson(self) -> NoReturn:
        raise InterlaceError(_NO_ROWS.format(what="resid_pearson"))

    def simulate(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise InterlaceError(_NO_ROWS.format(what="simulate()"))

    def bootstrap(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise InterlaceError(_NO_ROWS.format(what="bootstrap()"))

    def profile(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise InterlaceError(_NO_ROWS.format(what="profile()"))

    # ------------------------------------------------------------ reporting
    def summary(self, alpha: float = 0.05) -> Summary:
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
        pls = result.factored_engine()
        self._pls = pls
        S, C = pls.cp.full()
        H0 = pls.cp.A33
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

    def vinv(self, Y: np.ndarray) -> NoReturn:
        raise InterlaceError(_NO_ROWS.format(what="V⁻¹ times an n-vector"))

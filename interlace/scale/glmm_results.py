"""The result of a chunked GLMM fit: :class:`ChunkedGLMMResult`.

It has the names and the summary of :class:`~interlace.results.glmm.GLMMResult`
for everything the fit determines without rows: ``fe_params``, ``fe_bse`` (from the
Hessian of the deviance, as lme4's ``vcov``), ``fe_pvalues``, ``fe_conf_int()``,
``cov_fe``, ``variance_components``, ``varcorr``, ``theta``, ``llf``, ``aic``, ``bic``,
``deviance``, ``random_effects`` (conditional modes) and ``random_effects_condsd``,
``summary()``, and ``predict(newdata)``; it shares their code
(:class:`~interlace.results.components.RandomEffectsFit`,
:func:`~interlace.results.summary.glmm_summary`).  What reads the rows is computed
chunk by chunk where it is a map over rows — ``predict(chunk)`` and
``residuals(chunk, type)``, e.g. ``ddf.map_partitions(result.residuals)`` — and
refused with an :class:`~interlace.errors.InterlaceError` where it needs all of them
at once (``fittedvalues``, ``resid``, ``simulate``, influence and hat values).
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.stats as st

from ..errors import InterlaceError
from ..families import GLMFamily
from ..linalg.crossprod import CrossProducts
from ..linalg.engines import make_engine
from ..linalg.pls import PLSSystem
from ..models.glmm import StagesFit
from ..optimize import OptSummary
from ..results.components import RandomEffectsFit
from .design import ChunkedDesign, complete_rows
from .encode import encode_chunk
from .model import ChunkedModel, RowlessResult
from .points import ChunkedPoint, chunk_response

if TYPE_CHECKING:
    from statsmodels.iolib.summary2 import Summary

__all__ = ["ChunkedGLMM", "ChunkedGLMMResult"]

_NO_ROWS = ("{what} needs the rows, which a chunked fit does not keep on the client: compute it chunk by "
            "chunk, e.g. ``ddf.map_partitions(result.predict)`` for fitted values or "
            "``ddf.map_partitions(result.residuals)`` for residuals, or fit in memory with interlace.glmer")


class ChunkedGLMM(ChunkedModel):
    """The model side of a chunked GLMM: the design (:class:`~interlace.scale.model.ChunkedModel`)
    and the family, no rows.

    Attributes
    ----------
    family : GLMFamily
    nAGQ : int
    """

    no_rows = _NO_ROWS

    def __init__(self, design: ChunkedDesign, keep: np.ndarray, family: GLMFamily, nAGQ: int) -> None:
        super().__init__(design, keep)
        self.family = family
        self.nAGQ = int(nAGQ)



class ChunkedGLMMResult(RowlessResult, RandomEffectsFit):
    """A generalized linear mixed model fitted on chunked data (Dask, parquet); see the module docstring.

    Attributes
    ----------
    model : ChunkedGLMM
    family : GLMFamily
    nAGQ : int
    theta : ndarray
    opt_summary : OptSummary
    engine : str
    passes : dict
        Passes over the data: ``levels`` (1), ``setup`` (1: the rank check and the engine's
        choice), ``joint`` (PIRLS over (β, u): stage 1, or the whole fit for nAGQ = 0),
        ``conditional`` (PIRLS over u: stage 2 and its checks), and ``total``; ``loglik``
        counts the PIRLS passes that only summed a log-likelihood at a point where PIRLS
        stopped unexpectedly (usually 0).
    n_chunks : int
        Chunks (parquet batches, Dask partitions) per pass.
    timings : dict
        Seconds spent in the levels pass, in the setup pass and in the optimization (its passes included).
    """

    passes: dict
    timings: dict
    n_chunks: int | None

    #: the summary and the analyses: this fit keeps no rows
    keeps_rows = False
    reml = False
    _re_scale = 1.0
    _residual_variance = None

    def __init__(self, design: ChunkedDesign, keep: np.ndarray, dropped: list[str], family: GLMFamily, nAGQ: int,
                 theta: np.ndarray, u: np.ndarray, beta: np.ndarray, vcov: np.ndarray, objective: float,
                 opt: OptSummary, engine: str, deviance: float, mode_products: tuple[bool, CrossProducts],
                 pirls_converged: bool = True) -> None:
        self.model = ChunkedGLMM(design, keep, family, nAGQ)
        self.family = family
        self.nAGQ = int(nAGQ)
        theta = np.asarray(theta, float)
        u = np.asarray(u, float)
        b = np.asarray(design.re.Lambda(theta) @ u).ravel()
        self.sol = SimpleNamespace(theta=theta, b=b, u=u)
        self.params = np.asarray(beta, float)
        self.normalized_cov_params = np.asarray(vcov, float)
        self.scale = 1.0
        self.objective = float(objective)
        self.opt_summary: OptSummary = opt
        self.engine = engine
        self.dropped_columns = list(dropped)
        self._deviance = float(deviance)
        #: the working weights' products at the modes (summed by the fit's last pass): the engine
        #: refactored from them gives the conditional variances
        self._mode_products = mode_products
        self.pirls_converged = bool(pirls_converged)
        self._init_shared(self.model)
        self.passes: dict = {}
        self.timings: dict = {}
        self.n_chunks: int | None = None

    @classmethod
    def from_fit(cls, design: ChunkedDesign, keep: np.ndarray, dropped: list[str], family: GLMFamily, nAGQ: int,
                 fit: StagesFit, engine: str) -> ChunkedGLMMResult:
        """The result of :func:`~interlace.models.glmm.fit_stages` on chunked rows (no pass is run)."""
        point: ChunkedPoint = fit.state.point
        flavour = bool(point.req.joint)
        return cls(design, keep, dropped, family, nAGQ, fit.theta, fit.state.u, fit.beta, fit.vcov, fit.objective,
                   fit.opt, engine, point.deviance, (flavour, point.products(flavour)), fit.state.converged)

    def __reduce__(self) -> tuple:
        """Pickled as plain values (the design as its first pass's summary): no patsy object, no rows, no
        cluster; ``ddf.map_partitions(result.residuals)`` sends the result to the workers this way."""
        joint, cp = self._mode_products
        b = cp.blocks()
        products = (joint, cp.n, {k: b[k] for k in ("A11", "A21", "A22", "A31", "A32")}, cp.A33)
        args = (self.model.design, self.model.fixed_design.keep, self.dropped_columns, self.family, self.nAGQ,
                self.sol.theta, self.sol.u, self.params, self.normalized_cov_params, self.objective,
                self.opt_summary, self.engine, self._deviance, products, self.pirls_converged)
        return (_rebuild, (args, self.passes, self.timings, self.n_chunks))

    # ------------------------------------------------------------ fixed effects (Wald z, lme4's glmer)
    def cov_params(self) -> np.ndarray:
        """Covariance matrix of β̂ (from the Hessian of the deviance, lme4's ``vcov``)."""
        return self.normalized_cov_params

    @property
    def bse(self) -> np.ndarray:
        """Standard errors of β̂ (array; :attr:`fe_bse` is the labelled Series)."""
        return np.sqrt(np.diag(self.cov_params()))

    @property
    def tvalues(self) -> np.ndarray:
        """β̂ / SE (Wald z)."""
        return self.params / self.bse

    @property
    def pvalues(self) -> np.ndarray:
        """Wald z p-values."""
        return 2 * st.norm.sf(np.abs(self.tvalues))

    # ------------------------------------------------------------ likelihood
    @property
    def deviance(self) -> float:
        """Conditional deviance Σ dᵢ(y, μ̂) at the modes (lme4's ``deviance`` for GLMMs)."""
        return self._deviance

    @property
    def minus2llf(self) -> float:
        """``-2 * llf`` (what lme4's summary prints as "deviance")."""
        return self.objective

    @property
    def df_modelwc(self) -> int:
        """Number of parameters: β and θ."""
        return len(self._names) + self.theta.size

    @property
    def n_dropped(self) -> int:
        """Rows dropped for missing values."""
        return int(self.model.design.n_dropped)

    @property
    def nb_theta(self) -> float:
        """NaN (no negative-binomial shape is estimated for chunked data)."""
        return float("nan")

    @property
    def sigma(self) -> float:
        """1 (binomial and Poisson families have no dispersion)."""
        return 1.0

    # ------------------------------------------------------------ conditional variances
    def factored_engine(self) -> PLSSystem:
        """An engine loaded with the working weights' products at the modes (summed in the fit's last
        pass) and factored at θ̂: the conditional variances of the modes."""
        joint, cp = self._mode_products
        eng = make_engine(self.model.random_effects_structure, cp.p, self.engine)
        eng.load(cp)
        eng.factor(self.theta)
        return eng

    # ------------------------------------------------------------ prediction and residuals, chunk by chunk
    def predict(self, newdata: pd.DataFrame, type: str = "response", include_re: bool = True,
                offset: npt.ArrayLike | None = None) -> pd.Series:
        """Predictions for new data (a pandas DataFrame, e.g. one chunk: ``ddf.map_partitions(result.predict)``),
        on the link or response scale; unseen levels contribute 0.  See
        :meth:`interlace.results.glmm.GLMMResult.predict`."""
        if newdata is None:
            raise InterlaceError(_NO_ROWS.format(what="predict() without newdata"))
        if type not in ("response", "link"):
            raise ValueError(f"type must be 'response' or 'link', got {type!r}")
        eta = self._eta_new(newdata, include_re, offset)
        out = eta if type == "link" else self.family.linkinv(eta)
        return pd.Series(out, index=newdata.index, name="predicted")

    def residuals(self, data: pd.DataFrame, type: str = "deviance") -> pd.Series:
        """Residuals of the complete rows of ``data`` (a chunk of the fitted data, with its response):
        ``"deviance"`` (lme4's default), ``"pearson"`` or ``"response"``, at the conditional modes.

        A map over rows: ``ddf.map_partitions(result.residuals, meta=("resid_deviance", "f8"))``.
        """
        if type not in ("deviance", "pearson", "response"):
            raise ValueError(f"type must be 'deviance', 'pearson' or 'response', got {type!r}")
        design = self.model.design
        frame, _, _ = complete_rows(data, design.plan)
        enc = encode_chunk(data, design)
        resp = chunk_response(enc, self.family, design.response)
        mu = self.family.linkinv(self._eta_new(frame, True, None))
        y, w = resp.y, resp.weights
        if type == "response":
            r = y - mu
        elif type == "pearson":
            r = (y - mu) * np.sqrt(w / self.family.variance(mu))
        else:
            r = np.sign(y - mu) * np.sqrt(np.maximum(self.family.dev_resid(y, mu, w, resp.constants), 0))
        return pd.Series(r, index=frame.index, name=f"resid_{type}")

    def resid_pearson(self) -> NoReturn:
        raise InterlaceError(_NO_ROWS.format(what="resid_pearson()"))

    def simulate(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise InterlaceError(_NO_ROWS.format(what="simulate()"))

    def hat_values(self) -> NoReturn:
        raise InterlaceError(_NO_ROWS.format(what="hat_values()"))

    def influence(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise InterlaceError(_NO_ROWS.format(what="influence()"))

    # ------------------------------------------------------------ reporting
    def summary(self, alpha: float = 0.05) -> Summary:
        """The summary of :meth:`interlace.results.glmm.GLMMResult.summary`, without the residual quantiles."""
        from ..results.summary import glmm_summary

        return glmm_summary(self, alpha)

    def __str__(self) -> str:
        return str(self.summary())

    def __repr__(self) -> str:
        return (f"<ChunkedGLMMResult: {self.model.formula!r}, {self.family.name}({self.family.link_name}), "
                f"nAGQ={self.nAGQ}, n={self.nobs}, llf={self.llf:.4f}, {self.passes.get('total', '?')} passes>")


def _rebuild(args: tuple, passes: dict, timings: dict, n_chunks: int | None) -> ChunkedGLMMResult:
    """A :class:`ChunkedGLMMResult` from :meth:`ChunkedGLMMResult.__reduce__`'s values."""
    design, keep, dropped, family, nAGQ, theta, u, beta, vcov, objective, opt, engine, deviance, products, conv = args
    joint, n, blocks, A33 = products
    cp = CrossProducts.from_blocks(design.re, n, blocks["A11"], blocks["A21"], blocks["A22"], blocks["A31"],
                                   blocks["A32"], A33)
    res = ChunkedGLMMResult(design, keep, dropped, family, nAGQ, theta, u, beta, vcov, objective, opt, engine,
                            deviance, (joint, cp), conv)
    res.passes, res.timings, res.n_chunks = dict(passes), dict(timings), n_chunks
    return res


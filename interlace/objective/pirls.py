"""Penalized iteratively reweighted least squares (PIRLS) on the shared PLS engines.

Each iteration forms the working weights and response of a
:class:`~interlace.response.base.Response` at the current point, loads their
cross-products into a PLS engine and solves.  Two flavours, as in lme4:

* joint (``nAGQ=0`` and lme4's first stage): PIRLS over (β, u) for given θ;
* conditional (the Laplace and quadrature objectives): PIRLS over u for given (θ, β).

The loop never reads rows itself: a :class:`PIRLSRows` source evaluates a point
(θ, β, u) — the linear predictor, the discrepancy PIRLS minimizes, and on demand
the cross-products ``[Z X z]ᵀW[Z X z]`` of the working weights and response there.
:class:`RowSource` does it on rows in memory; :mod:`interlace.scale` does it by one pass
over chunks of rows (a Dask cluster, a parquet file), with the same loop, engines and
numbers.

GLMMs and CLMMs both use it; their objectives are :mod:`interlace.objective.glmm` and
:mod:`interlace.objective.clmm`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
from scipy.linalg import qr

from ..linalg.crossprod import CrossProducts, RowProducts
from ..linalg.engines import RowEngines
from ..linalg.pls import PLSSystem
from ..response.base import Response

__all__ = ["combine_start_factors", "glm_start_beta", "glm_start_factor", "glm_start_rows", "PIRLS", "PIRLSState",
           "PIRLSPoint", "PIRLSRows", "RowPoint", "RowSource"]


def glm_start_rows(X: np.ndarray, resp: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """The rows of glm's first weighted least-squares step: ``√W₀ X`` and ``√W₀ z₀`` (None: no ``mustart``).

    W₀ and z₀ are the working weights and response at the family's starting means (R's
    ``mustart``: y + 0.1 for counts, ...); rows where they are not finite are left out.
    """
    family = getattr(resp, "family", None)
    if family is None or not hasattr(family, "mustart") or not hasattr(resp, "y"):
        return None
    y, prior = np.asarray(resp.y, dtype=float), np.asarray(resp.weights, dtype=float)
    with np.errstate(all="ignore"):
        mu0 = family.mustart(y, prior)
        eta0 = np.asarray(family.link(mu0), float)
        w, r = resp.working(eta0, mu0)
        z = eta0 - resp.offset + r
        X = np.asarray(X, float)
        ok = np.isfinite(w) & (w > 0) & np.isfinite(z) & np.all(np.isfinite(X), axis=1)
        sw = np.sqrt(w[ok])
        return X[ok] * sw[:, None], z[ok] * sw


def _qr_r(A: np.ndarray) -> np.ndarray:
    """The triangular factor of A's QR decomposition (min(m, n) × n)."""
    return qr(A, mode="r", check_finite=False)[0]


def glm_start_factor(X: np.ndarray, resp: Any) -> np.ndarray | None:
    """The triangular factor R of the QR decomposition of ``[√W₀X  √W₀z₀]`` (:func:`glm_start_rows`),
    or None without a ``mustart``.

    Factors of disjoint sets of rows combine into the factor of their union
    (:func:`combine_start_factors`): a least-squares problem solved by one pass over chunks
    (a tall-skinny QR), as well conditioned as least squares on the rows.
    """
    rows = glm_start_rows(X, resp)
    if rows is None:
        return None
    A = np.column_stack([rows[0], rows[1]])
    if A.shape[0] == 0:
        return np.zeros((0, A.shape[1]))
    with np.errstate(all="ignore"):
        return _qr_r(A)


def combine_start_factors(R1: np.ndarray | None, R2: np.ndarray | None) -> np.ndarray | None:
    """The factor of two sets of rows from theirs (one without rows leaves the other as it is)."""
    if R1 is None or R1.shape[0] == 0:
        return R2 if R2 is not None else R1
    if R2 is None or R2.shape[0] == 0:
        return R1
    with np.errstate(all="ignore"):
        return _qr_r(np.vstack([R1, R2]))


def glm_start_beta(R: np.ndarray | None, keep: np.ndarray | None = None) -> np.ndarray | None:
    """glm's first weighted least-squares β from the factor ``R`` of :func:`glm_start_factor`,
    on the columns ``keep`` of X (default all); None when it is not finite."""
    if R is None or R.shape[0] == 0 or not np.all(np.isfinite(R)):
        return None
    p = R.shape[1] - 1
    cols = np.r_[np.arange(p) if keep is None else np.asarray(keep, np.intp), p]
    k = cols.size - 1
    if k == 0:
        return None
    with np.errstate(all="ignore"):
        Rk = _qr_r(R[:, cols])
        if Rk.shape[0] < k:
            return None
        beta = np.linalg.lstsq(Rk[:k, :k], Rk[:k, k], rcond=None)[0]
    return beta if np.all(np.isfinite(beta)) else None


@runtime_checkable
class PIRLSPoint(Protocol):
    """A point (θ, β, u) evaluated on the rows.

    Attributes
    ----------
    deviance : float
        The discrepancy PIRLS minimizes together with ‖u‖² (the response's ``deviance``).
    eta, mu : ndarray or None
        Linear predictor and conditional mean per row (None when the rows are not in memory).
    """

    @property
    def deviance(self) -> float: ...

    @property
    def eta(self) -> np.ndarray | None: ...

    @property
    def mu(self) -> np.ndarray | None: ...

    def products(self, joint: bool) -> CrossProducts:
        """Cross-products of ``[Z X z]`` (``joint``) or ``[Z z]`` with the working weights and
        working response ``z`` at this point."""

    def cond_minus2ll(self, resp: Response) -> float:
        """−2 log p(y | u) at this point (the Laplace deviance's data term)."""

    def extremes(self, eps: float) -> tuple[int, int]:
        """Rows with μ < eps and with μ > 1 − eps (separation checks)."""


@runtime_checkable
class PIRLSRows(Protocol):
    """Where PIRLS's rows are: evaluates points and owns the engines.

    Attributes
    ----------
    re : RandomEffects
    p : int
        Fixed-effects columns.
    name : str
        The engine's name.
    """

    re: Any
    p: int
    name: str

    def point(self, theta: np.ndarray, beta: np.ndarray, u: np.ndarray, resp: Response,
              joint: bool, final: bool = False) -> PIRLSPoint:
        """Evaluate the point (θ, β, u) with the response ``resp``.

        ``final`` is a hint: PIRLS will likely stop at this point and ask for its conditional
        log-likelihood (a source that computes it on demand from rows may ignore it)."""

    def engine(self, joint: bool) -> PLSSystem:
        """The engine for (β, u) (``joint``) or for u alone."""


class RowPoint:
    """A point evaluated on rows in memory: η and μ, and the working cross-products on demand."""

    def __init__(self, source: RowSource, resp: Response, eta: np.ndarray, mu: np.ndarray, Xb: np.ndarray) -> None:
        self.source, self.resp = source, resp
        self.eta, self.mu, self._Xb = eta, mu, Xb
        self.deviance = resp.deviance(mu)
        self._products: dict[bool, CrossProducts] = {}

    def products(self, joint: bool) -> CrossProducts:
        """Cross-products of the working weights and response at this point (made once per flavour)."""
        if joint not in self._products:
            resp = self.resp
            w, r = resp.working(self.eta, self.mu)
            z = self.eta - resp.offset + r if joint else self.eta - resp.offset - self._Xb + r
            self._products[joint] = self.source.rows(joint)(z, w)
        return self._products[joint]

    def cond_minus2ll(self, resp: Response) -> float:
        return resp.cond_minus2ll(self.mu)

    def extremes(self, eps: float) -> tuple[int, int]:
        return int(np.sum(self.mu < eps)), int(np.sum(self.mu > 1 - eps))


class RowSource:
    """PIRLS's rows in memory: the model matrices (Z, X) and their engines.

    Parameters
    ----------
    engines : RowEngines
    """

    def __init__(self, engines: RowEngines) -> None:
        self.engines = engines
        self.re = engines.re
        self.X = engines.X
        self.Z = self.re.Z()
        self.n, self.p = self.X.shape
        self.name = engines.name
        self._made: dict[bool, tuple[PLSSystem, RowProducts]] = {False: engines.get(fixed=False)}
        self._lam: tuple[bytes, Any] | None = None

    def _engine_rows(self, joint: bool) -> tuple[PLSSystem, RowProducts]:
        if joint not in self._made:
            self._made[joint] = self.engines.get(fixed=joint)
        return self._made[joint]

    def engine(self, joint: bool) -> PLSSystem:
        return self._engine_rows(joint)[0]

    def rows(self, joint: bool) -> RowProducts:
        """The row products of ``[Z X z]`` (``joint``) or ``[Z z]``."""
        return self._engine_rows(joint)[1]

    def Lambda(self, theta: np.ndarray) -> Any:
        """Λθ (the last one kept: a PIRLS run evaluates many points at one θ)."""
        key = np.asarray(theta, float).tobytes()
        if self._lam is None or self._lam[0] != key:
            self._lam = (key, self.re.Lambda(theta))
        return self._lam[1]

    def point(self, theta: np.ndarray, beta: np.ndarray, u: np.ndarray, resp: Response,
              joint: bool, final: bool = False) -> RowPoint:
        Xb = self.X @ beta
        eta = resp.offset + Xb + self.Z @ (self.Lambda(theta) @ u)
        return RowPoint(self, resp, eta, resp.mean(eta), Xb)

    def glm_start(self, resp: Response) -> np.ndarray | None:
        """glm's first weighted least-squares β on these rows (see :mod:`interlace.objective.glmm`)."""
        return glm_start_beta(glm_start_factor(self.X, resp))


@dataclass
class PIRLSState:
    """Converged PIRLS quantities at one (θ, β).

    ``eta`` and ``mu`` are None when the rows are not in memory; ``point`` is the
    evaluated point (its working cross-products, conditional log-likelihood).
    """

    beta: np.ndarray
    u: np.ndarray
    eta: np.ndarray | None
    mu: np.ndarray | None
    ldL2: float
    pwrss: float
    converged: bool
    iterations: int
    point: Any = None


class PIRLS:
    """Penalized iteratively reweighted least squares on the shared PLS engines.

    Parameters
    ----------
    engines : RowEngines or PIRLSRows
        Engines for the rows (Z, X) in memory (one for u alone, one for (β, u), made on
        first use), or any other source of points (chunked rows: :mod:`interlace.scale`).
    resp : Response
        The response (:class:`~interlace.response.base.Response`); :meth:`run` may be given
        another one (the same data at other response parameters).
    tol : float
        Relative change of the penalized deviance at which iterations stop ...
    utol : float
        ... together with the largest change of u (and β) in an iteration.
    """

    def __init__(self, engines: RowEngines | PIRLSRows, resp: Response, tol: float = 1e-10, utol: float = 1e-9,
                 maxit: int = 100) -> None:
        self.source: PIRLSRows = RowSource(engines) if isinstance(engines, RowEngines) else engines
        self.re = self.source.re
        self.p = self.source.p
        self.resp = resp
        self.engine = self.source.name
        self.tol, self.utol, self.maxit = tol, utol, maxit
        self.u = np.zeros(self.re.q)

    def run(self, theta: np.ndarray, beta: np.ndarray, u0: np.ndarray | None = None, joint: bool = False,
            resp: Response | None = None) -> PIRLSState:
        """Iterate to the conditional mode at θ (and β unless ``joint``).

        Parameters
        ----------
        theta, beta : ndarray
        u0 : ndarray, optional
            Start (default: the last mode found, a warm start).
        joint : bool
            Iterate over (β, u) with ``beta`` the start, instead of over u at ``beta``.
        resp : Response, optional
            The response to use (default the one given at construction).
        """
        theta = np.asarray(theta, float)
        beta = np.asarray(beta, float).copy()
        u = (self.u if u0 is None else np.asarray(u0, float)).copy()
        resp = self.resp if resp is None else resp
        src = self.source
        pt = src.point(theta, beta, u, resp, joint)
        pls = src.engine(joint)
        old = pt.deviance + float(u @ u)
        converged = False
        it = 0
        for it in range(1, self.maxit + 1):  # noqa: B007 - the count is reported after the loop
            pls.load(pt.products(joint))
            f = pls.factor(theta)
            if not f.ok:
                break
            beta_new, u_new = pls.solve()
            du = u_new - u
            db = beta_new - beta if joint else np.zeros_like(beta)
            if not (np.all(np.isfinite(du)) and (not joint or np.all(np.isfinite(db)))):
                break
            step = 1.0
            improved = False
            size = float(np.max(np.abs(du), initial=0.0))
            if joint:
                size = max(size, float(np.max(np.abs(db), initial=0.0)))
            for _ in range(12):
                u_try = u + step * du
                b_try = beta + step * db if joint else beta
                # a step below utol ends the iteration: tell the source (a pass over chunks then sums
                # the conditional log-likelihood the objective reads at the mode)
                pt_try = src.point(theta, b_try, u_try, resp, joint, final=step * size < self.utol)
                new = pt_try.deviance + float(u_try @ u_try)
                if np.isfinite(new) and new <= old * (1 + 1e-12) + 1e-12:
                    improved = True
                    break
                step /= 2
            if not improved:  # no step lowers the penalized deviance: stay at the last iterate,
                # which is the mode when the proposed change is only rounding noise
                converged = size < 1e-6
                break
            u, pt = u_try, pt_try
            if joint:
                beta = b_try
            change = abs(old - new) / (abs(new) + 0.1)
            old = new
            # both the penalized deviance and the mode itself must settle: the Laplace
            # deviance is not stationary in u for families with a dispersion
            step_size = step * float(np.max(np.abs(du), initial=0.0))
            if joint:
                step_size = max(step_size, step * float(np.max(np.abs(db), initial=0.0)))
            if change < self.tol and step_size < self.utol:
                converged = True
                break
        # factor once more with the weights at the mode (the Laplace determinant)
        pls.load(pt.products(joint))
        f = pls.factor(theta)
        self.u = u
        return PIRLSState(beta, u, pt.eta, pt.mu, f.ldL2, old, converged, it, pt)

    def laplace(self, st: PIRLSState, resp: Response | None = None) -> float:
        """Laplace approximation to −2 log L at a PIRLS state (lme4's ``glmerLaplace``)."""
        resp = self.resp if resp is None else resp
        return st.point.cond_minus2ll(resp) + float(st.u @ st.u) + st.ldL2

    def factored(self, theta: np.ndarray, beta: np.ndarray, u: np.ndarray, resp: Response | None = None
                 ) -> PLSSystem:
        """The u-engine loaded with the working weights at the mode near ``u`` and factored at θ
        (conditional variances of the modes)."""
        self.run(theta, beta, u0=u, resp=resp)
        return self.source.engine(False)

    def joint_factored(self, theta: np.ndarray, st: PIRLSState, resp: Response | None = None
                       ) -> tuple[PLSSystem, np.ndarray | None]:
        """The (β, u) engine loaded with the working weights at the state ``st`` and factored at θ,
        and those weights (lme4's ``RX``; the GLMM hat matrix; None when the rows are not in memory)."""
        resp = self.resp if resp is None else resp
        pt = st.point
        if getattr(pt, "resp", resp) is not resp:  # another response at the same (β, u)
            pt = self.source.point(theta, st.beta, st.u, resp, True)
        pls = self.source.engine(True)
        pls.load(pt.products(True))
        pls.factor(theta)
        w = resp.working(st.eta, st.mu)[0] if st.eta is not None and st.mu is not None else None
        return pls, w

    def rx_vcov(self, theta: np.ndarray, st: PIRLSState, resp: Response | None = None) -> np.ndarray:
        """Covariance of β from the joint PLS factor at the state's working weights (lme4's ``RX``)."""
        RXinv = np.linalg.inv(self.joint_factored(theta, st, resp)[0].RX())
        return RXinv.T @ RXinv

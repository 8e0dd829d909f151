"""LMM criterion with a residual correlation/variance structure ``Cov(ε) = σ² R(ψ)``.

With a whitening transform A (``AᵀA = R⁻¹``, :mod:`interlace.correlation.whitening`)
the model ``Ay = AXβ + AZb + Aε`` has independent residuals.  A acts within
correlation groups, and each group lies in one level of every random-effects
term, so AZ keeps Z's pattern: each term's model matrix is replaced by its
whitened rows.  For parameters (θ, ψ) the criterion is the LMM criterion of the
whitened data plus ``log|R(ψ)|`` (the Jacobian of A), exactly as prior weights
add ``−Σ log w``:

* ML:   ``ldL2 + n (1 + log(2π r²/n)) + log|R| − Σ log w``
* REML: the same with ``n − p`` and ``+ ldRX2``

which is nlme's ``lme``/``gls`` (RE)ML criterion (its REML log-likelihood keeps
the ``−½ log|XᵀV⁻¹X|`` term, as lme4's).  The whitened PLS system is rebuilt when
ψ changes (O(n) work), so models with a structure cost more per evaluation than
those without; β and the random effects come out at the end as usual.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..correlation import ResidualModel
from ..design.terms import RandomEffects
from ..linalg.crossprod import RowProducts
from ..linalg.engines import choose_engine, make_engine, parse_engine
from ..linalg.pls import PLSSystem
from .lmm import LMMDeviance, LMMSolution, sum_log_weights

__all__ = ["CorrelatedLMMDeviance"]


class CorrelatedLMMDeviance(LMMDeviance):
    """The criterion as a function of ``params = (θ, ψ)`` (see module docstring).

    One engine is made for the structure; for each ψ the whitened rows give new
    cross-products (:class:`~interlace.linalg.crossprod.RowProducts`), loaded into it.

    Parameters
    ----------
    re : RandomEffects
        Random-effects structure on the original rows (may have no terms).
    X : ndarray (n, p)
    y : ndarray (n,)
        Response with any offset subtracted.
    weights : ndarray or None
        Prior weights (``Cov(ε) = σ² W^{-1/2} R W^{-1/2}``).
    reml : bool
    residual : ResidualModel
    engine : {"auto", "blocked", "cholmod"}
        PLS engine for the whitened system (the whitened Z has Z's pattern: chosen once).
    """

    analytic_gradient = False  # the residual structure's parameters have none

    def __init__(self, re: RandomEffects, X: np.ndarray, y: np.ndarray, weights: np.ndarray | None, reml: bool,
                 residual: ResidualModel, engine: str = "auto") -> None:
        parse_engine(engine)
        X = np.asarray(X, float)
        self.re = re
        self.residual = residual
        self.n_theta = re.n_theta
        self.n_psi = residual.n_params
        name = choose_engine(re) if engine == "auto" else engine
        self._layout = "full" if name == "cholmod" else "blocked"
        self.pls = make_engine(re, X.shape[1], name)
        sw = np.ones(X.shape[0]) if weights is None else np.sqrt(np.asarray(weights, float))
        term_cols = [t.X for t in re.terms]
        widths = [X.shape[1], 1] + [m.shape[1] for m in term_cols]
        self._cuts = np.cumsum(widths)[:-1]
        self._base = np.column_stack([X, np.asarray(y, float)] + term_cols) * sw[:, None]
        self._psi: np.ndarray | None = None
        self._prepare(residual.start)
        super().__init__(self.pls, reml, *sum_log_weights(weights))

    # ------------------------------------------------------------------ parameters
    @property
    def theta0(self) -> np.ndarray:
        return np.concatenate([self.re.theta0, self.residual.start])

    x0 = theta0

    @property
    def lower(self) -> np.ndarray:
        return np.concatenate([self.re.lower, np.full(self.n_psi, -np.inf)])

    def split(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(θ, ψ) from the parameter vector."""
        params = np.asarray(params, float)
        return params[:self.n_theta], params[self.n_theta:]

    def _prepare(self, psi: np.ndarray) -> None:
        """Whiten the data and load its cross-products for ψ (no-op when ψ is unchanged)."""
        psi = np.asarray(psi, float)
        if self._psi is not None and np.array_equal(psi, self._psi):
            return
        W = self.residual.whiten(self._base, psi)
        parts = np.split(W, self._cuts, axis=1)
        Xw, yw, tX = parts[0], parts[1][:, 0], parts[2:]
        terms = [replace(t, X=np.ascontiguousarray(m)) for t, m in zip(self.re.terms, tX)]
        rows = RowProducts(RandomEffects(terms, n=Xw.shape[0]), Xw, self._layout)
        self.pls.load(rows(yw, None))
        self._psi = psi.copy()
        self._logdet = self.residual.logdet(psi)

    def factored(self, sol: LMMSolution) -> PLSSystem:
        """The engine at the solution's ψ, factored at its θ."""
        assert sol.psi is not None
        self._prepare(sol.psi)
        self.pls.factor(sol.theta)
        return self.pls

    def __call__(self, params: np.ndarray) -> float:
        self.n_evals += 1
        theta, psi = self.split(params)
        try:
            self._prepare(psi)
        except (FloatingPointError, ValueError, np.linalg.LinAlgError):
            return np.inf
        if not np.isfinite(self._logdet):
            return np.inf
        return self._criterion(self.pls.factor(theta)) + self._logdet

    def solution(self, params: np.ndarray) -> LMMSolution:
        """β, u, b, σ² (and ψ) at ``params``."""
        theta, psi = self.split(params)
        self._prepare(psi)
        f = self.pls.factor(theta)
        obj = np.inf if self.zero_weights else self._criterion(f) + self._logdet
        beta, u = self.pls.solve()
        b = np.asarray(self.re.Lambda(theta) @ u).ravel() if self.re.terms else np.zeros(0)
        return LMMSolution(theta, beta, u, b, f.pwrss / self.dof, obj, f.pwrss, f.ldL2, f.ldRX2,
                           self.pls.RX().copy(), psi=psi.copy())

"""Mixed-effects Cox models: penalized partial likelihood, Newton-Raphson and the Laplace objective.

The random effects b = Λθ u live on the shared :class:`~interlace.design.terms.RandomEffects`
structure (Z, Λθ, θ layout).  For given θ the coefficients maximize the penalized
partial log-likelihood (coxme's PPL)

    PPL(β, u) = log PL(Xβ + ZΛθu) − ½‖u‖²

by Newton-Raphson with the (negative) Hessian

    H = [ΛᵀH̃_ZZΛ + I   ΛᵀH_ZX]        H_ZZ = ZᵀAZ, H_ZX = ZᵀAX, H_XX = XᵀAX,
        [H_XZΛ          H_XX  ]

A = −∂² log PL/∂η∂ηᵀ (:mod:`interlace.families.cox`: formed from risk-set sums, never
as an n × n matrix).  The integrated (Laplace) log-likelihood is

    ℓ_I(θ) = PPL(β̂, û) − ½ log|ΛᵀH̃_ZZΛ + I|,

which is coxme's PPL(β̂, b̂) − ½ log|Σ| − ½ log|H̃_bb| written in u (b = Λu).

coxme's sparse approximation (``sparse = c(50, .02)``)
--------------------------------------------------------
For the *first* random-effects term of the formula, when its grouping factor (for a
nested term ``(1 | a/b)`` the innermost one) has at least 50 levels (more than 50 for
a nested term) and some levels hold at most 2 % of the rows, coxme stores those
levels' intercepts in the block-diagonal part of its ``bdsmatrix``: in H̃_ZZ the
entries between two *different* sparse levels are 0.  Their diagonal, their cross
terms with every other random coefficient (slopes, other factors) and with β are
kept exactly.  The approximation changes the Newton steps (not their fixed point:
the gradient is exact), log|ΛᵀH̃_ZZΛ + I| (so the integrated likelihood), the
inverse Hessian (the standard errors) and the penalized degrees of freedom.
:class:`CoxLaplace` reproduces it; ``sparse=None`` uses the exact Hessian.

Factorization
-------------
The random-effects block M = ΛᵀH̃_ZZΛ + I is factored on its own (its log-determinant
is the Laplace term), β by the Schur complement H_XX − H_XZΛ M⁻¹ΛᵀH_ZX.  When the
sparse term is a scalar random intercept, M in the order (sparse levels, other
coefficients) is an arrowhead matrix — a diagonal block bordered by dense rows — and
is factored by eliminating the diagonal block (:class:`~interlace.linalg.arrowhead.ArrowheadSPD`,
or CHOLMOD with ``engine="cholmod"``); otherwise M is dense (LAPACK).

coxme's variance-parameter search
----------------------------------
:class:`CoxmeScale` and :func:`coxme_theta_search` reproduce how coxme 2.2 estimates θ,
whose estimates (not the exact maximizer of ℓ_I) are what R reports: parameters
log σ² for variances and log((1 + ρ)/(1 − ρ)) for correlations; starting values the
best of the grid ``varinit = c(.02, .1, .4, .8)^2`` (divided by the variance of a slope's
covariate) × ``corinit = c(0, .3)``; each evaluation of ℓ_I runs a *fixed* number of
Newton iterations (max(4, coxph's iterations + 1)) from the same start
(b = 0, β = 0.7 β̂_coxph), recentring each random intercept after every step; and
R's ``optim(method = "BFGS", reltol = 1e-5)`` (:func:`~interlace.optimize.vmmin.vmmin`).
"""
from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.linalg as sla
import scipy.sparse as sp

from ..design.terms import RandomEffects
from ..errors import InterlaceError
from ..linalg.arrowhead import ArrowheadSPD, CholmodSPD, DenseSPD, NotPositiveDefinite, cho_factor, cho_solve
from ..linalg.engines import ENGINES, parse_engine
from ..optimize.vmmin import vmmin
from ..response.survival import CoxData, CoxState
from .cox_products import CoxBlocks, CoxProducts
from .coxph import CoxPHFit, coxph_fit

__all__ = ["CoxHessian", "CoxLaplace", "CoxMEState", "CoxmeScale", "SparseBlock",
           "coxme_sparse_block", "coxme_theta_search"]


@dataclass
class SparseBlock:
    """The levels of one random intercept that coxme treats as sparse.

    Attributes
    ----------
    term : int
        Index of the term in ``RandomEffects.terms`` (fitting order).
    levels : ndarray of int
        Sparse levels (positions in the term's levels).
    cols : ndarray of int
        Their intercept columns in Z.
    codes : ndarray of int (n,)
        Level code of each row for the term.
    nlevels : int
    """

    term: int
    levels: np.ndarray
    cols: np.ndarray
    codes: np.ndarray
    nlevels: int


def coxme_sparse_block(re: RandomEffects, sparse: tuple[int, float] | None = (50, 0.02)) -> SparseBlock | None:
    """coxme's choice of sparse levels (see the module docstring), or None.

    The candidate is the first term the user wrote (for a nested ``(1 | a/b)`` its
    innermost factor): it needs an intercept and ``sparse[0]`` levels or more
    (strictly more for a nested term, as coxme); its levels holding a share of the
    rows ``<= sparse[1]`` become sparse.
    """
    if sparse is None:
        return None
    nmin, frac = sparse
    first = re.user_order[0]
    same = [t for t in re.user_order if t.spec.source == first.spec.source]
    nested = len({t.spec.group for t in same}) > 1
    cand = max(same, key=lambda t: len(t.spec.group)) if nested else first
    if "Intercept" not in cand.coef_names:
        return None
    L = cand.nlevels
    if L < nmin or (nested and L == nmin):
        return None
    share = np.bincount(cand.codes, minlength=L) / cand.codes.size
    lev = np.flatnonzero(share <= frac)
    if lev.size == 0:
        return None
    k = next(i for i, t in enumerate(re.terms) if t is cand)
    j = cand.coef_names.index("Intercept")
    if not np.all(cand.X[:, j] == 1.0):
        return None
    cols = re.col_offsets[k] + lev * cand.p + j
    return SparseBlock(k, lev, cols.astype(np.int64), cand.codes, L)


class CoxHessian:
    """H at one (θ, β, u): the factored random-effects block M and the Schur complement for β.

    Attributes
    ----------
    M : DenseSPD, ArrowheadSPD or CholmodSPD
        Factor of M = ΛᵀH̃_ZZΛ + I.
    Hub : ndarray (q, p)
        ΛᵀH_ZX.
    """

    def __init__(self, M: DenseSPD | ArrowheadSPD | CholmodSPD, Hub: np.ndarray, Hbb: np.ndarray) -> None:
        self.M = M
        self.Hub = Hub
        self.q, self.p = Hub.shape
        self.C = M.solve(Hub) if self.p else np.zeros((self.q, 0))
        Sb = Hbb - Hub.T @ self.C
        self.Lb = cho_factor(Sb) if self.p else np.zeros((0, 0))

    @property
    def ldL2(self) -> float:
        """log|M| = log|ΛᵀH̃_ZZΛ + I|."""
        return self.M.logdet

    def solve(self, g: np.ndarray) -> np.ndarray:
        """H⁻¹ g for g in (u, β) order."""
        q = self.q
        gu, gb = g[:q], g[q:]
        y = self.M.solve(gu)
        if not self.p:
            return y
        xb = cho_solve(self.Lb, gb - self.Hub.T @ y)
        return np.concatenate([y - self.C @ xb, xb])

    def vcov_beta(self) -> np.ndarray:
        """(H⁻¹)_ββ."""
        if not self.p:
            return np.zeros((0, 0))
        V = sla.cho_solve((self.Lb, True), np.eye(self.p), check_finite=False)
        return 0.5 * (V + V.T)

    def trace_inv_uu(self) -> float:
        """tr((H⁻¹)_uu) = tr(M⁻¹) + tr(C Vβ Cᵀ)."""
        t = self.M.trace_inv()
        if self.p:
            Y = sla.solve_triangular(self.Lb, self.C.T, lower=True, check_finite=False)
            t += float(np.sum(Y ** 2))
        return t

    def inv_uu_blocks(self, re: RandomEffects) -> list[np.ndarray]:
        """Per term, the ``(nlevels, p, p)`` diagonal blocks of (H⁻¹)_uu, without forming it
        when M is an arrowhead (its sparse term is then scalar: 1 × 1 blocks)."""
        Mf = self.M
        if isinstance(Mf, CholmodSPD):
            Mf = ArrowheadSPD(*Mf._parts)
        if not isinstance(Mf, ArrowheadSPD):
            full = self.inv_uu()
        else:
            diag_S = Mf.inv_diag_S()
            inv_D = Mf.inv_DD()
            pos_S = np.full(self.q, -1)
            pos_S[Mf.S] = np.arange(Mf.S.size)
            pos_D = np.full(self.q, -1)
            pos_D[Mf.D] = np.arange(Mf.D.size)
            CL: Any = sla.solve_triangular(self.Lb, self.C.T, lower=True, check_finite=False).T if self.p else None
        out = []
        for k, t in enumerate(re.terms):
            idx = re.col_offsets[k] + np.arange(t.nlevels)[:, None] * t.p + np.arange(t.p)
            if not isinstance(Mf, ArrowheadSPD):
                out.append(full[idx[:, :, None], idx[:, None, :]])
                continue
            if np.all(pos_S[idx] >= 0):
                blk = np.zeros((t.nlevels, t.p, t.p))
                for j in range(t.p):
                    blk[:, j, j] = diag_S[pos_S[idx[:, j]]]
            else:
                dpos = pos_D[idx]
                blk = inv_D[dpos[:, :, None], dpos[:, None, :]]
            if self.p:
                Ck = CL[idx]                          # (nlevels, p_term, p_fixed)
                blk = blk + np.einsum("iak,ibk->iab", Ck, Ck)
            out.append(blk)
        return out

    def inv_uu(self) -> np.ndarray:
        """(H⁻¹)_uu (dense q × q)."""
        out = self.M.inverse()
        if self.p:
            out = out + self.C @ self.vcov_beta() @ self.C.T
        return out


@dataclass
class CoxMEState:
    """Penalized fit at one θ.

    Attributes
    ----------
    theta, beta, u : ndarray
    eta : ndarray
        Linear predictor (offset included).
    loglik : float
        log PL at (β, u).
    ppl : float
        Penalized partial log-likelihood log PL − ½‖u‖².
    ldL2 : float
        log|ΛᵀH̃_ZZΛ + I| at (β, u).
    converged : bool
    iterations : int
    hessian : CoxHessian
    """

    theta: np.ndarray
    beta: np.ndarray
    u: np.ndarray
    eta: np.ndarray
    loglik: float
    ppl: float
    ldL2: float
    converged: bool
    iterations: int
    hessian: CoxHessian | None = field(repr=False, default=None)

    @property
    def laplace(self) -> float:
        """Integrated log-likelihood ℓ_I = PPL − ½ log|ΛᵀH̃_ZZΛ + I|."""
        return self.ppl - 0.5 * self.ldL2


class CoxLaplace:
    """The penalized Cox fit for given θ and the Laplace objective of θ.

    Parameters
    ----------
    re : RandomEffects
    X : ndarray (n, p)
        Fixed effects (no intercept).
    cd : CoxData
    offset : ndarray, optional
    sparse : tuple or None
        coxme's ``sparse = c(50, .02)`` rule; None for the exact Hessian.
    engine : {"auto", "blocked", "cholmod", "dense"}
        Factorization of the random-effects block (see the module docstring and
        :mod:`interlace.linalg.engines`): ``"blocked"`` (the arrowhead elimination) and
        ``"cholmod"`` need the arrowhead structure of a sparse scalar term.
    tol : float
        Newton stops when PPL changes by less than ``tol`` (relative) and the largest
        step is below ``sqrt(tol)``.
    """

    def __init__(self, re: RandomEffects, X: np.ndarray, cd: CoxData, offset: npt.ArrayLike | None = None,
                 sparse: tuple[int, float] | None = (50, 0.02), engine: str = "auto", tol: float = 1e-12,
                 maxit: int = 50) -> None:
        parse_engine(engine, ENGINES)
        self.re = re
        self.X = np.asarray(X, float)
        self.n, self.p = self.X.shape
        self.cd = cd
        self.offset = np.zeros(self.n) if offset is None else np.asarray(offset, float)
        self.q = re.q
        self.tol, self.maxit = tol, maxit
        self.sparse = coxme_sparse_block(re, sparse)
        q = self.q
        if self.sparse is not None:
            S = self.sparse.cols
            D = np.setdiff1d(np.arange(q), S)
            sb = self.sparse
            self.products = CoxProducts(re, self.X, S, sb.codes, sb.levels, sb.nlevels)
        else:
            S, D = np.zeros(0, np.int64), np.arange(q)
            self.products = CoxProducts(re, self.X, S)
        self.S, self.D = S, D
        # the arrowhead form needs Λ not to mix the sparse columns with the others
        arrow = False
        if S.size:
            Lc = re.Lambda(np.arange(1.0, re.n_theta + 1.0)).tocoo()
            mask = np.zeros(q, bool)
            mask[S] = True
            arrow = not np.any(mask[Lc.row] != mask[Lc.col])
        if engine == "dense":
            arrow = False
        self.arrow = arrow
        if engine == "auto":
            engine = "blocked" if arrow else "dense"
        if engine in ("blocked", "cholmod") and not arrow:
            raise InterlaceError(f"engine={engine!r} needs coxme's sparse block on a scalar random intercept; "
                                 "use engine='dense'")
        self.engine = engine
        self.n_evals = 0
        self._cholmod_pattern: CholmodSPD | None = None
        self._groups = self._intercept_groups()
        self._last_state: CoxState | None = None
        self._pinned: CoxState | None = None
        self._no_border = np.zeros((S.size, 0)) if not D.size else np.zeros((0, 0))
        self._block_cache: dict = {}
        self.u = np.zeros(q)
        self.beta = np.zeros(self.p)

    @property
    def x0(self) -> np.ndarray:
        """The identity templates."""
        return self.re.theta0

    @property
    def lower(self) -> np.ndarray:
        return self.re.lower

    @property
    def sparse_levels(self) -> int:
        """Number of levels coxme's sparse approximation applies to (0: none)."""
        return 0 if self.sparse is None else int(self.sparse.levels.size)

    @property
    def Z(self) -> sp.csc_matrix:
        """The random-effects design (n × q)."""
        return self.re.Z().tocsc()

    # ------------------------------------------------------------------ pieces
    def b(self, theta: np.ndarray, u: np.ndarray) -> np.ndarray:
        """b = Λθ u."""
        lam = self.products.lam(theta)
        return lam * u if isinstance(lam, np.ndarray) else np.asarray(lam @ u).ravel()

    def eta(self, theta: np.ndarray, beta: np.ndarray, u: np.ndarray) -> np.ndarray:
        out = self.offset + self.products.z_dot(self.b(theta, u))
        if self.p:
            out = out + self.X @ beta
        return out

    def _lam_parts(self, theta: np.ndarray):
        lam = self.products.lam(theta)
        D = self.D
        if isinstance(lam, np.ndarray):
            lamD = lam[D]

            def left(A):          # Λ_Dᵀ A
                return lamD[:, None] * A

            def both(A):          # Λ_Dᵀ A Λ_D
                return lamD[:, None] * A * lamD[None, :]
        else:
            LamD = lam[D][:, D]

            def left(A):
                return np.asarray(LamD.T @ A)

            def both(A):
                return np.asarray(LamD.T @ (LamD.T @ A).T).T
        return lam, left, both

    def _random_factor(self, theta: np.ndarray, blk: CoxBlocks) -> DenseSPD | ArrowheadSPD | CholmodSPD:
        """The factor of M = ΛᵀH̃_ZZΛ + I (arrowhead or dense, see the module docstring)."""
        q = self.q
        S, D = self.S, self.D
        if self.arrow and not D.size and self.engine != "cholmod":
            lam = self.products.lam(theta)
            lamS = lam[S] if isinstance(lam, np.ndarray) else np.asarray(lam[S, S]).ravel()
            return ArrowheadSPD(lamS ** 2 * blk.hS + 1.0, self._no_border, self._no_border, S, D)
        lam, left, both = self._lam_parts(theta)
        if self.arrow:
            lamS = lam[S] if isinstance(lam, np.ndarray) else np.asarray(lam[S, S]).ravel()
            a = lamS ** 2 * blk.hS + 1.0
            B = lamS[:, None] * left(blk.HSD.T).T
            C = both(blk.HDD) + np.eye(D.size)
            if self.engine == "cholmod":
                Mf = CholmodSPD(a, B, C, S, D, pattern=self._cholmod_pattern)
                self._cholmod_pattern = Mf
                return Mf
            return ArrowheadSPD(a, B, C, S, D)
        Ht = np.zeros((q, q))
        Ht[np.ix_(D, D)] = blk.HDD
        if S.size:
            Ht[S, S] = blk.hS
            Ht[np.ix_(S, D)] = blk.HSD
            Ht[np.ix_(D, S)] = blk.HSD.T
        if isinstance(lam, np.ndarray):
            M = lam[:, None] * Ht * lam[None, :] + np.eye(q)
        else:
            M = np.asarray((lam.T @ (lam.T @ Ht).T).T) + np.eye(q)
        return DenseSPD(M)

    def hessian(self, theta: np.ndarray, st: CoxState) -> CoxHessian:
        """Assemble and factor H at the risk-set state ``st`` (see the module docstring)."""
        q, p = self.q, self.p
        S, D = self.S, self.D
        blk = self._blocks(st)
        Mf = self._random_factor(theta, blk)
        lam, left, _ = self._lam_parts(theta)
        Hub = np.zeros((q, p))
        if p:
            if self.arrow:
                lamS = lam[S] if isinstance(lam, np.ndarray) else np.asarray(lam[S, S]).ravel()
                if D.size == 0 and isinstance(Mf, ArrowheadSPD) and Mf.diagonal:
                    Hub = lamS[:, None] * blk.HSX            # every random effect a sparse level, in order
                else:
                    Hub[S] = lamS[:, None] * blk.HSX
                    Hub[D] = left(blk.HDX)
            else:
                HZX = np.zeros((q, p))
                HZX[D] = blk.HDX
                if S.size:
                    HZX[S] = blk.HSX
                Hub = lam[:, None] * HZX if isinstance(lam, np.ndarray) else np.asarray(lam.T @ HZX)
        return CoxHessian(Mf, Hub, blk.HXX)

    def gradient(self, theta: np.ndarray, st: CoxState, u: np.ndarray) -> np.ndarray:
        """∂PPL/∂(u, β)."""
        zg = self.products.zt_dot(st.grad)
        lam = self.products.lam(theta)
        gu = (lam * zg if isinstance(lam, np.ndarray) else np.asarray(lam.T @ zg).ravel()) - u
        gb = self.X.T @ st.grad if self.p else np.zeros(0)
        return np.concatenate([gu, gb])

    def _state(self, theta, beta, u, pin: bool = False, with_x: bool = True):
        eta = self.eta(theta, beta, u)
        st = self._risk_state(eta, pin, with_x)
        return eta, st, st.loglik - 0.5 * float(u @ u)

    def _risk_state(self, eta: np.ndarray, pin: bool = False, with_x: bool = True) -> CoxState:
        """The risk-set state at η (with the risk-set sums of X unless ``with_x`` is False).  The state
        of the start of coxme's Newton runs is kept (``pin``): every evaluation of its search starts
        from the same (b = 0, β), so the same η."""
        for hit in (self._pinned, self._last_state):
            if hit is not None and np.array_equal(hit.eta, eta):
                return hit
        st = self.cd.state(eta, self.X if with_x else None)
        if pin:
            self._pinned = st
        else:
            self._last_state = st
        return st

    def _blocks(self, st: CoxState, with_x: bool = True) -> CoxBlocks:
        """The Hessian blocks at ``st`` (they do not depend on θ; kept for the pinned and last states)."""
        hit = self._block_cache.get(id(st))
        if hit is not None and hit[0] is st and (hit[2] or not with_x):
            return hit[1]
        blk = self.products.blocks(st, with_x)
        keep = {k: v for k, v in self._block_cache.items() if self._pinned is not None and v[0] is self._pinned}
        keep[id(st)] = (st, blk, with_x)
        self._block_cache = keep
        return blk

    def logdet(self, theta: np.ndarray, st: CoxState) -> float:
        """log|ΛᵀH̃_ZZΛ + I| alone (no β blocks): what the last Newton iteration of coxme's search needs."""
        return self._random_factor(theta, self._blocks(st, with_x=False)).logdet

    # ------------------------------------------------------------------ Newton
    def fit(self, theta: npt.ArrayLike, beta0: npt.ArrayLike | None = None, u0: npt.ArrayLike | None = None,
            maxit: int | None = None, min_iter: int = 0, coxme_steps: bool = False, eps: float = 1e-8,
            full_hessian: bool = True) -> CoxMEState:
        """Maximize PPL over (β, u) at θ by Newton-Raphson.

        Parameters
        ----------
        theta : ndarray
        beta0, u0 : ndarray, optional
            Starting values (default: the last solution).
        maxit : int, optional
        min_iter : int
            With ``coxme_steps``: do at least this many iterations.
        coxme_steps : bool
            Follow coxme's iteration (``coxfit6b``) exactly, see :meth:`_fit_coxme`;
            otherwise Newton with step halving to full convergence (``tol``).
        eps : float
            coxme's convergence criterion (relative change of PPL) with ``coxme_steps``.
        full_hessian : bool
            With ``coxme_steps``: False when only the integrated likelihood is needed (the
            last iteration then factors the random-effects block alone; ``hessian`` is None).
        """
        theta = np.asarray(theta, float)
        beta = (self.beta if beta0 is None else np.asarray(beta0, float)).copy()
        u = (self.u if u0 is None else np.asarray(u0, float)).copy()
        maxit = self.maxit if maxit is None else maxit
        if coxme_steps:
            return self._fit_coxme(theta, beta, u, maxit, min_iter, eps, full_hessian)
        q = self.q
        eta, st, ppl = self._state(theta, beta, u)
        converged = False
        it = 0
        for it in range(1, maxit + 1):  # noqa: B007 - the count is reported after the loop
            H = self.hessian(theta, st)
            step = H.solve(self.gradient(theta, st, u))
            if not np.all(np.isfinite(step)):
                break
            t = 1.0
            improved = False
            for _ in range(40):
                u_try, b_try = u + t * step[:q], beta + t * step[q:]
                eta_try, st_try, ppl_try = self._state(theta, b_try, u_try)
                if np.isfinite(ppl_try) and ppl_try >= ppl - 1e-13 * (1.0 + abs(ppl)):
                    improved = True
                    break
                t /= 2
            if not improved:  # no step raises PPL: the current point is the mode up to rounding
                converged = float(np.max(np.abs(step), initial=0.0)) < 1e-6
                break
            change = abs(ppl_try - ppl) / (abs(ppl_try) + 0.1)
            size = t * float(np.max(np.abs(step), initial=0.0))
            u, beta, eta, st, ppl = u_try, b_try, eta_try, st_try, ppl_try
            if change < self.tol and size < np.sqrt(self.tol):
                converged = True
                break
        H = self.hessian(theta, st)
        self.u, self.beta = u, beta
        return CoxMEState(theta, beta, u, eta, st.loglik, ppl, H.ldL2, converged, it, H)

    def _intercept_groups(self) -> list[np.ndarray]:
        """Z columns of each random intercept factor (coxme recentres them)."""
        out = []
        for k, t in enumerate(self.re.terms):
            if "Intercept" in t.coef_names:
                j = t.coef_names.index("Intercept")
                out.append(self.re.col_offsets[k] + np.arange(t.nlevels) * t.p + j)
        return out

    def _fit_coxme(self, theta, beta, u, maxit, min_iter, eps, full_hessian: bool = True) -> CoxMEState:
        """coxme's Newton-Raphson (its C routine ``coxfit6b``).

        Iteration k = 0, 1, … evaluates PPL at the current point.  If PPL fell (relative
        change > ``eps``) the point moves halfway back to the previous one and the
        iteration counts.  Otherwise H is factored; the loop stops once at least
        ``min_iter`` iterations are done and the relative change is ≤ ``eps``; else a full
        Newton step is taken and each random intercept's coefficients are recentred to
        mean zero (on the b scale; coxme's constraint, a no-op at the exact mode of a
        pure random-intercept model).  The log-determinant is that of the last factored H.
        Without ``full_hessian`` (coxme's search, which needs the integrated likelihood
        only) the last iteration factors the random-effects block alone.
        """
        q = self.q
        lam = self.products.lam(theta)
        old_u, old_b = u.copy(), beta.copy()
        prev = 0.0
        H = None
        it = 0
        eta: Any = None
        st: Any = None
        ppl = -np.inf
        ld = None
        for it in range(maxit + 1):
            # the last iteration of the search needs log|M| alone: no sums of X
            eta, st, ppl = self._state(theta, beta, u, pin=it == 0, with_x=full_hessian or it < maxit)
            if it > 0 and ppl < prev and abs(1 - prev / ppl) > eps:
                u, beta = 0.5 * (old_u + u), 0.5 * (old_b + beta)
                continue
            done = it >= min_iter and abs(1 - prev / ppl) <= eps
            if not full_hessian and (done or it == maxit):
                ld = self.logdet(theta, st)
                H = None
                if done:
                    break
                prev = ppl
                continue
            H = self.hessian(theta, st)
            if done:
                break
            prev = ppl
            if it < maxit:
                step = H.solve(self.gradient(theta, st, u))
                old_u, old_b = u.copy(), beta.copy()
                u, beta = u + step[:q], beta + step[q:]
                if self._groups:
                    b = self.b(theta, u)
                    for cols in self._groups:
                        b[cols] -= b[cols].mean()
                    if isinstance(lam, np.ndarray):
                        ok = lam != 0
                        u = np.where(ok, b / np.where(ok, lam, 1.0), u)
                    else:
                        u = _solve_lambda(lam, b, u)
        if H is None and ld is None:
            H = self.hessian(theta, st)
        converged = abs(1 - prev / ppl) <= eps
        self.u, self.beta = u, beta
        logdet = H.ldL2 if H is not None else float(ld if ld is not None else np.nan)
        return CoxMEState(theta, beta, u, eta, st.loglik, ppl, logdet, converged, it, H)

    def laplace(self, theta: np.ndarray, **kw: Any) -> float:
        """−2 ℓ_I(θ), the criterion minimized over θ (inf where H is not positive definite)."""
        try:
            st = self.fit(theta, **kw)
        except NotPositiveDefinite:
            return np.inf
        return -2.0 * st.laplace

    def __call__(self, theta: np.ndarray) -> float:
        self.n_evals += 1
        return self.laplace(theta)

    def solution(self, theta: np.ndarray) -> CoxMEState:
        """The penalized fit (β̂, û) at θ, to full convergence from the last solution."""
        return self.fit(theta)

    # ------------------------------------------------------------------ degrees of freedom
    def df_penalized(self, st: CoxMEState) -> float:
        """coxme's penalized degrees of freedom ``df[2]`` at a fit.

        coxme computes p + q − tr(H⁻¹_bb Σ⁻¹) (Therneau & Grambsch 2000, eq. 5.16) with H the
        sparse-approximated Hessian; in u this is p + q − tr((H⁻¹)_uu).  Its trace runs over
        the entries its ``bdsmatrix`` stores, which holds the penalty entries between a
        sparse intercept and a dense coefficient (a correlated slope of the same level)
        once instead of twice; that half is added back here so the number is coxme's.
        """
        H = st.hessian
        assert H is not None
        df = self.p + self.q - H.trace_inv_uu()
        return df + self._df_bds_correction(st)

    def _df_bds_correction(self, st: CoxMEState) -> float:
        if not self.S.size:
            return 0.0
        re = self.re
        sb = self.sparse
        assert sb is not None and st.hessian is not None
        k = sb.term
        t = re.terms[k]
        if t.p == 1:
            return 0.0
        T = t.cov.template(st.theta[re.theta_slice(k)])
        try:
            P = np.linalg.inv(T @ T.T)
        except np.linalg.LinAlgError:
            return 0.0
        j = t.coef_names.index("Intercept")
        others = [c for c in range(t.p) if c != j]
        if not np.any(P[j, others]):
            return 0.0
        Lam = re.Lambda(st.theta)
        Hb = np.asarray(Lam @ (Lam @ st.hessian.inv_uu()).T).T   # Λ (H⁻¹)_uu Λᵀ
        base = re.col_offsets[k] + sb.levels * t.p
        corr = 0.0
        for c in others:
            corr += float(np.sum(Hb[base + j, base + c]) * P[j, c])
        return corr


def _solve_lambda(Lam: sp.csc_matrix, b: np.ndarray, u_prev: np.ndarray) -> np.ndarray:
    """u with Λu = b (Λ lower triangular); columns of a zero diagonal keep ``u_prev``."""
    d = Lam.diagonal()
    if Lam.nnz == np.count_nonzero(d) and np.all(d != 0):
        return b / d
    from scipy.sparse.linalg import spsolve_triangular

    ok = d != 0
    if np.all(ok):
        return spsolve_triangular(Lam.tocsr(), b, lower=True)
    u = u_prev.copy()
    u[ok] = spsolve_triangular(Lam[ok][:, ok].tocsr(), b[ok], lower=True)
    return u


# ---------------------------------------------------------------------- coxme's θ search
class CoxmeScale:
    """coxme's variance parameters φ ↔ the shared θ layout.

    For each term (coxme's order: the terms of the formula as written; within a nested
    ``(1 | a/b)`` the innermost factor first) φ holds, column by column of the term's
    covariance, ``log σ²_j`` then ``log((1 + ρ_jk)/(1 − ρ_jk))`` for k > j (coxme's
    ``coxmeFull``).  θ is the Cholesky factor of each Σ (the shared templates).

    Parameters
    ----------
    re : RandomEffects
    varinit, corinit : sequence
        coxme.control's starting grids.
    """

    def __init__(self, re: RandomEffects, varinit: Sequence[float] = (0.02 ** 2, 0.1 ** 2, 0.4 ** 2, 0.8 ** 2),
                 corinit: Sequence[float] = (0.0, 0.3)) -> None:
        self.re = re
        order: list = []
        sources: dict = {}
        for t in re.user_order:
            sources.setdefault(t.spec.source, []).append(t)
        for ts in sources.values():
            order.extend(sorted(ts, key=lambda t: -len(t.spec.group)))
        self.order = [next(i for i, u in enumerate(re.terms) if u is t) for t in order]
        self.varinit, self.corinit = tuple(varinit), tuple(corinit)
        self.n_phi = sum(re.terms[k].p * (re.terms[k].p + 1) // 2 for k in self.order)
        for k in self.order:
            if not hasattr(re.terms[k].cov, "theta_from_covariance") or \
                    re.terms[k].cov.n_theta != re.terms[k].p * (re.terms[k].p + 1) // 2:
                raise ValueError("coxme's parameterization needs unstructured covariance terms")

    def _slices(self):
        pos = 0
        for k in self.order:
            p = self.re.terms[k].p
            m = p * (p + 1) // 2
            yield k, slice(pos, pos + m)
            pos += m

    def covariance(self, phi: np.ndarray, k_slice: tuple[int, slice]) -> np.ndarray:
        k, sl = k_slice
        p = self.re.terms[k].p
        x = np.exp(np.clip(np.asarray(phi, float)[sl], -36, 36))
        V = np.zeros((p, p))
        pos = 0
        for j in range(p):
            V[j, j] = x[pos]
            pos += 1
            for i in range(j + 1, p):
                r = (x[pos] - 1.0) / (x[pos] + 1.0)
                V[i, j] = V[j, i] = r
                pos += 1
        sd = np.sqrt(np.diag(V))
        R = V.copy()
        np.fill_diagonal(R, 1.0)
        return R * np.outer(sd, sd)

    def theta(self, phi: np.ndarray) -> np.ndarray | None:
        """θ of the shared layout, or None where some Σ is not positive definite."""
        re = self.re
        th = np.zeros(re.n_theta)
        for ks in self._slices():
            k = ks[0]
            C = self.covariance(phi, ks)
            try:
                T = np.linalg.cholesky(C)
            except np.linalg.LinAlgError:
                return None
            cov = re.terms[k].cov
            th[re.theta_slice(k)] = T[cov.rows, cov.cols]
        return th

    def phi(self, theta: np.ndarray) -> np.ndarray:
        """φ from θ (variances must be positive)."""
        re = self.re
        out = np.zeros(self.n_phi)
        for k, sl in self._slices():
            t = re.terms[k]
            C = t.cov.covariance(np.asarray(theta, float)[re.theta_slice(k)], 1.0)
            sd = np.sqrt(np.diag(C))
            vals = []
            for j in range(t.p):
                vals.append(np.log(C[j, j]))
                for i in range(j + 1, t.p):
                    r = C[i, j] / (sd[i] * sd[j])
                    vals.append(np.log((1 + r) / (1 - r)))
            out[sl] = vals
        return out

    def start_grid(self) -> list[np.ndarray]:
        """coxme's starting values, in R's ``expand.grid`` order (first parameter fastest)."""
        lists = []
        for k, _ in self._slices():
            t = self.re.terms[k]
            for j in range(t.p):
                col = t.X[:, j]
                if t.coef_names[j] == "Intercept":
                    vals = self.varinit
                else:
                    xv = float(np.var(col, ddof=1))
                    vals = tuple(v / xv for v in self.varinit) if xv > 0 else self.varinit
                lists.append([np.log(v) for v in vals])
                for _ in range(j + 1, t.p):
                    lists.append([np.log((1 + r) / (1 - r)) for r in self.corinit])
        grid = [np.array(c[::-1]) for c in itertools.product(*lists[::-1])]
        return grid


@dataclass
class CoxmeSearch:
    """Record of coxme's θ search.

    Attributes
    ----------
    phi : ndarray
        Final coxme parameters (log variances, transformed correlations).
    theta : ndarray
    inner_iter : int
        Newton iterations per evaluation.
    start : ndarray
        The grid point BFGS started from.
    opt : OptSummary
    fit0 : CoxPHFit
        The fixed-effects-only fit coxme starts from.
    """

    phi: np.ndarray
    theta: np.ndarray
    inner_iter: int
    start: np.ndarray
    opt: object
    fit0: object


def coxme_theta_search(lap: CoxLaplace, scale: CoxmeScale, fit0: CoxPHFit | None = None, reltol: float = 1e-5,
                       maxit: int = 100, start: npt.ArrayLike | None = None) -> CoxmeSearch:
    """Estimate θ as coxme 2.2 does (see the module docstring)."""
    if fit0 is None:
        fit0 = coxph_fit(lap.X, lap.cd, lap.offset)
    inner = max(4, fit0.iterations + 1)
    beta_init = 0.7 * fit0.coef
    u0 = np.zeros(lap.q)
    ll0 = fit0.loglik[1]

    def logfun(phi):
        th = scale.theta(phi)
        if th is None:
            return 0.0
        try:
            st = lap.fit(th, beta0=beta_init, u0=u0, maxit=inner, min_iter=inner, coxme_steps=True, eps=1e-8,
                         full_hessian=False)
        except NotPositiveDefinite:
            return np.inf
        return -(1.0 + st.laplace - ll0)

    if start is None:
        best, phi0 = None, None
        for cand in scale.start_grid():
            v = logfun(cand)
            if np.isfinite(v) and (best is None or v < best):
                best, phi0 = v, cand
        if phi0 is None:
            raise InterlaceError("no starting estimate was successful: the integrated likelihood is not finite "
                                 "at any of coxme's starting variances (coxme's own message); check the "
                                 "covariates for a perfect ordering of the events, or try method='bobyqa'")
    else:
        phi0 = np.asarray(start, float)
    opt = vmmin(logfun, phi0, reltol=reltol, maxit=maxit)
    theta = scale.theta(opt.x)
    if theta is None:
        raise InterlaceError("coxme's search ended where a covariance is not positive definite; "
                             "try method='bobyqa'")
    return CoxmeSearch(opt.x, theta, inner, phi0, opt, fit0)

"""The Cox partial likelihood in the linear predictor, with Efron or Breslow ties.

For right-censored data (time Tᵢ, status δᵢ, case weight wᵢ) and a linear predictor η,
with aᵢ = wᵢ exp(ηᵢ), the death times t₁ < … < t_m and Dₘ the rows dying at t_g:

* Breslow: one *pseudo-event* per death time, weight ω = Σ_{D_g} w, denominator
  d = S0(t_g) = Σ_{T ≥ t_g} a;
* Efron: d_g pseudo-events r = 0 … d_g − 1 per death time, weight ω = mean of the
  deaths' weights, denominator S0(t_g) − (r/d_g) Σ_{D_g} a (R's ``coxph`` and ``coxme``).

    log PL(η) = Σ_deaths wᵢ ηᵢ − Σ_k ω_k log d_k.

Every pseudo-event k defines probabilities π_k,i = c_k,i aᵢ / d_k over its risk set
(c = 1 − r/d_g for the rows dying at that time under Efron, 1 otherwise), and

    A = −∂² log PL / ∂η ∂ηᵀ = Σ_k ω_k (diag(π_k) − π_k π_kᵀ),

a dense n × n matrix (risk sets couple the rows) that is never formed.  What the
mixed model needs are products VᵀAV and UᵀAV with its design matrices; they come
from risk-set sums (reverse cumulative sums over the time-sorted rows, one per death
time), so their cost is linear in n:

* ``Vᵀ diag(s) V`` with sᵢ = Σ_k ω_k π_k,i (the cumulative hazard of row i);
* ``Σ_k ω_k m_k m_kᵀ`` with m_k = Vᵀπ_k the risk-set means of V (:meth:`CoxState.means`);
* for a sparse U, ``Σ_k ω_k (Uᵀπ_k) m_kᵀ = Uᵀ G`` with G a per-row cumulative sum
  (:meth:`CoxState.cross_rows`);
* for the indicator columns of a grouping factor, the diagonal of UᵀAU alone, from
  sums within each level (:meth:`CoxState.indicator_diag`): coxme's sparse approximation.

"""
from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from ..errors import DataError
from ..families.cox import TIES

__all__ = ["CoxData", "CoxState"]


class CoxData:
    """Risk-set bookkeeping of right-censored data, computed once.

    Parameters
    ----------
    time, status : array-like (n,)
        Follow-up times and 0/1 event indicators.
    weights : array-like, optional
        Case weights (default 1).
    ties : {"efron", "breslow"}

    Attributes
    ----------
    G : ndarray of int (n,)
        Number of death times ≤ Tᵢ: row i is in the risk sets of death times 0 … Gᵢ − 1.
    m : int
        Number of distinct death times.
    k_time, omega, rho : ndarray (K,)
        Per pseudo-event: its death-time index, weight ω and Efron fraction r/d (0 for Breslow).
    """

    def __init__(self, time: npt.ArrayLike, status: npt.ArrayLike, weights: npt.ArrayLike | None = None,
                 ties: str = "efron") -> None:
        if ties not in TIES:
            raise DataError(f"ties must be 'efron' or 'breslow', got {ties!r}")
        self.time = np.asarray(time, float)
        self.status = np.asarray(status, float)
        n = self.time.size
        self.n = n
        self.w = np.ones(n) if weights is None else np.asarray(weights, float)
        self.ties = ties
        dead = self.status == 1
        self.dead = dead
        self.death_times = np.unique(self.time[dead])
        m = self.death_times.size
        self.m = m
        self.G = np.searchsorted(self.death_times, self.time, side="right").astype(np.int64)
        gd = self.G[dead] - 1                      # death-time index of each death
        self.g_dead = np.full(n, -1, np.int64)
        self.g_dead[dead] = gd
        nd = np.bincount(gd, minlength=m).astype(float)
        wd = np.bincount(gd, weights=self.w[dead], minlength=m)
        self.n_dead = nd
        if ties == "breslow":
            self.k_time = np.arange(m)
            self.omega = wd
            self.rho = np.zeros(m)
        else:
            counts = nd.astype(np.int64)
            self.k_time = np.repeat(np.arange(m), counts)
            start = np.concatenate([[0], np.cumsum(counts)[:-1]])
            r = np.arange(self.k_time.size) - start[self.k_time]
            self.rho = r / nd[self.k_time]
            self.omega = (wd / nd)[self.k_time]
        self.K = self.k_time.size
        self.wdelta = self.w * self.status
        # rows by risk-set block G (block 0: before the first death, in no risk set)
        self._Pblock = sp.csr_matrix((np.ones(n), (self.G, np.arange(n))), shape=(m + 1, n))
        self._Pdead = sp.csr_matrix((np.ones(int(dead.sum())), (gd, np.flatnonzero(dead))), shape=(m, n))
        self.n_events = int(dead.sum())
        self._Pk = sp.csr_matrix((np.ones(self.K), (self.k_time, np.arange(self.K))), shape=(m, self.K))

    def level_plan(self, codes: np.ndarray, nlevels: int) -> dict:
        """Sort order of the rows by (level, risk-set block) and the (level, death time) groups
        with deaths, for :meth:`CoxState.indicator_diag` (computed once per factor)."""
        cache = self.__dict__.setdefault("_plans", {})
        key = (id(codes), nlevels)
        hit = cache.get(key)
        if hit is not None and hit["codes"] is codes:
            return hit
        order = np.lexsort((self.G, codes))
        cs, Gs = codes[order], self.G[order]
        last = np.flatnonzero(np.r_[cs[1:] != cs[:-1], True])
        plan = {"codes": codes, "order": order, "cs": cs, "Gs": Gs, "last": last,
                "efron": self.ties == "efron" and bool(np.any(self.rho > 0))}
        if plan["efron"]:
            new_grp = np.r_[True, (cs[1:] != cs[:-1]) | (Gs[1:] != Gs[:-1])]
            grp = np.cumsum(new_grp) - 1
            deads = self.dead[order]
            gidx = grp[deads]
            used = np.unique(gidx)
            first_pos = np.flatnonzero(new_grp)[used]
            plan.update(deads=deads, gidx=gidx, used=used, first_pos=first_pos, lev=cs[first_pos],
                        g=Gs[first_pos] - 1, ngrp=int(grp[-1]) + 1)
        cache[key] = plan
        return plan

    def state(self, eta: np.ndarray) -> CoxState:
        """Risk-set sums at the linear predictor η."""
        return CoxState(self, np.asarray(eta, float))

    def loglik(self, eta: np.ndarray) -> float:
        return self.state(eta).loglik


def _block_sums(P: sp.csr_matrix, V) -> np.ndarray:
    """``P @ V`` as a dense array (V dense or sparse)."""
    out = P @ V
    return out.toarray() if sp.issparse(out) else np.asarray(out)


class CoxState:
    """Partial likelihood, gradient and Hessian products at one η (see the module docstring)."""

    def __init__(self, cd: CoxData, eta: np.ndarray) -> None:
        self.cd = cd
        c = float(np.max(eta)) if eta.size else 0.0
        a = cd.w * np.exp(eta - c)          # PL is invariant to a common shift of η
        self.a = a
        m = cd.m
        blocks = np.bincount(cd.G, weights=a, minlength=m + 1)
        S0 = np.cumsum(blocks[::-1])[::-1][1:]           # S0[g] = Σ_{G > g} a = Σ_{T ≥ t_g} a
        S0D = np.bincount(cd.g_dead[cd.dead], weights=a[cd.dead], minlength=m)
        self.S0, self.S0D = S0, S0D
        kt = cd.k_time
        d2 = S0[kt] - cd.rho * S0D[kt]
        self.d2 = d2
        with np.errstate(divide="ignore"):
            self.loglik = float(np.sum(cd.wdelta * eta) - np.sum(cd.omega * (np.log(d2) + c)))
        # hazard increments per death time, and Efron's own-time corrections
        self._om_d = cd.omega / d2
        haz = np.bincount(kt, weights=self._om_d, minlength=m)
        cumhaz = np.concatenate([[0.0], np.cumsum(haz)])          # cumhaz[G] = Σ_{g < G}
        own = np.bincount(kt, weights=self._om_d * cd.rho, minlength=m)
        h = cumhaz[cd.G]
        h[cd.dead] -= own[cd.g_dead[cd.dead]]
        self.s = a * h                                  # diag(Σ_k ω_k π_k)
        self.grad = cd.wdelta - self.s                  # ∂ log PL / ∂η

    # ---------------------------------------------------------------- products
    def means(self, V: np.ndarray | sp.spmatrix) -> np.ndarray:
        """Risk-set means m_k = Vᵀπ_k, one row per pseudo-event (K × ncol(V))."""
        cd = self.cd
        aV = V.multiply(self.a[:, None]).tocsr() if sp.issparse(V) else np.asarray(V, float) * self.a[:, None]
        B = _block_sums(cd._Pblock, aV)
        S1 = np.cumsum(B[::-1], axis=0)[::-1][1:]
        kt = cd.k_time
        S1k = S1[kt]
        if cd.ties == "efron" and np.any(cd.rho > 0):
            S1D = _block_sums(cd._Pdead, aV)
            S1k = S1k - cd.rho[:, None] * S1D[kt]
        return S1k / self.d2[:, None]

    def gram(self, V: np.ndarray | sp.spmatrix, M: np.ndarray | None = None) -> np.ndarray:
        """VᵀAV (dense), V dense or sparse."""
        if M is None:
            M = self.means(V)
        if sp.issparse(V):
            first = (V.T @ V.multiply(self.s[:, None])).toarray()
        else:
            V = np.asarray(V, float)
            first = V.T @ (V * self.s[:, None])
        return first - M.T @ (M * self.cd.omega[:, None])

    def cross_rows(self, M: np.ndarray) -> np.ndarray:
        """Per-row G (n × ncol) with Σ_k ω_k (Uᵀπ_k) m_kᵀ = UᵀG for any U, given the means M of V."""
        cd = self.cd
        W = M * self._om_d[:, None]
        Wg = cd._Pk @ W
        cum = np.vstack([np.zeros((1, M.shape[1])), np.cumsum(Wg, axis=0)])
        Gr = cum[cd.G]
        if cd.ties == "efron" and np.any(cd.rho > 0):
            E = cd._Pk @ (W * cd.rho[:, None])
            Gr[cd.dead] -= E[cd.g_dead[cd.dead]]
        return Gr * self.a[:, None]

    def cross(self, U: np.ndarray | sp.spmatrix, V: np.ndarray | sp.spmatrix, M: np.ndarray | None = None
              ) -> np.ndarray:
        """UᵀAV (dense ncol(U) × ncol(V)); U may be sparse, M the means of V if known."""
        if M is None:
            M = self.means(V)
        Gr = self.cross_rows(M)
        Vd = V.toarray() if sp.issparse(V) else np.asarray(V, float)
        R = Vd * self.s[:, None] - Gr
        out = U.T @ R
        return np.asarray(out)

    def indicator_diag(self, codes: np.ndarray, nlevels: int) -> np.ndarray:
        """Diagonal of UᵀAU for the 0/1 indicator columns U of a factor (level codes per row).

        Per level j: Σ_{i∈j} sᵢ − Σ_k ω_k m_kj², with Σ_k ω_k m_kj² from sums within the level:
        pairs of rows (i, i') share the pseudo-events before min(Tᵢ, Tᵢ'), plus Efron's
        corrections at the level's own death times.  Linear in n.
        """
        cd = self.cd
        P = cd.level_plan(codes, nlevels)
        first = np.bincount(codes, weights=self.s, minlength=nlevels)
        kt = cd.k_time
        w2 = cd.omega / self.d2 ** 2
        cumQ = np.concatenate([[0.0], np.cumsum(np.bincount(kt, weights=w2, minlength=cd.m))])
        cs, Gs = P["cs"], P["Gs"]
        as_ = self.a[P["order"]]
        csum = np.cumsum(as_)
        level_end = np.zeros(nlevels)
        level_end[cs[P["last"]]] = csum[P["last"]]
        suffix = level_end[cs] - csum + as_                    # Σ a over rows at or after i in the level
        second = np.bincount(cs, weights=as_ * cumQ[Gs] * (2.0 * suffix - as_), minlength=nlevels)
        if P["efron"]:
            # at each (level, death time) with deaths: S1f = Σ a over the level's rows at risk,
            # S1D = Σ a over its deaths there; Efron's terms −2 α₁ S1f S1D + α₂ S1D²
            a1 = np.bincount(kt, weights=w2 * cd.rho, minlength=cd.m)
            a2 = np.bincount(kt, weights=w2 * cd.rho ** 2, minlength=cd.m)
            S1D = np.bincount(P["gidx"], weights=as_[P["deads"]], minlength=P["ngrp"])[P["used"]]
            g = P["g"]
            corr = -2.0 * a1[g] * suffix[P["first_pos"]] * S1D + a2[g] * S1D ** 2
            second = second + np.bincount(P["lev"], weights=corr, minlength=nlevels)
        return first - second

    def hessian_eta(self) -> np.ndarray:
        """The dense n × n matrix A (for tests on small data only)."""
        cd = self.cd
        n = cd.n
        A = np.zeros((n, n))
        for k in range(cd.K):
            g = cd.k_time[k]
            c = np.where(cd.G > g, 1.0, 0.0)
            own = cd.g_dead == g
            c[own] = 1.0 - cd.rho[k]
            pi = c * self.a / self.d2[k]
            A += cd.omega[k] * (np.diag(pi) - np.outer(pi, pi))
        return A

"""The Cox partial likelihood in the linear predictor, with Efron or Breslow ties, strata
and counting-process (start, stop] data.

Each row i has a stratum, an interval (startᵢ, stopᵢ], a status δᵢ (1: an event at
stopᵢ) and a case weight wᵢ; right-censored data have startᵢ = −∞.  For a linear
predictor η, aᵢ = wᵢ exp(ηᵢ).  The death times are taken per stratum and numbered
g = 0 … m − 1 in (stratum, time) order; row i is at risk at death time g when g is in
its stratum and startᵢ < t_g ≤ stopᵢ, which is the index range Eᵢ ≤ g < Gᵢ
(:attr:`CoxData.E`, :attr:`CoxData.G`).  Dₘ are the rows dying at t_g.

* Breslow: one *pseudo-event* per death time, weight ω = Σ_{D_g} w, denominator
  d = S0(t_g) = Σ_{at risk} a;
* Efron: d_g pseudo-events r = 0 … d_g − 1 per death time, weight ω = mean of the
  deaths' weights, denominator S0(t_g) − (r/d_g) Σ_{D_g} a (R's ``coxph`` and ``coxme``).

    log PL(η) = Σ_deaths wᵢ ηᵢ − Σ_k ω_k log d_k.

Every pseudo-event k defines probabilities π_k,i = c_k,i aᵢ / d_k over its risk set
(c = 1 − r/d_g for the rows dying at that time under Efron, 1 otherwise), and

    A = −∂² log PL / ∂η ∂ηᵀ = Σ_k ω_k (diag(π_k) − π_k π_kᵀ),

a dense n × n matrix (risk sets couple the rows) that is never formed.  What the
models need are products VᵀAV and UᵀAV with their design matrices; they come from
risk-set sums, and a risk-set sum is the difference of two reverse cumulative sums
over the death times (rows leaving at Gᵢ minus rows not yet entered at Eᵢ), so every
piece is linear in n and vectorized over the events (``numpy.bincount`` and
``numpy.cumsum``; no loop over death times):

* ``Vᵀ diag(s) V`` with sᵢ = Σ_k ω_k π_k,i (the cumulative hazard of row i);
* ``Σ_k ω_k m_k m_kᵀ`` with m_k = Vᵀπ_k the risk-set means of V (:meth:`CoxState.means`);
* for any U, ``Σ_k ω_k (Uᵀπ_k) m_kᵀ = Uᵀ G`` with G a per-row cumulative sum
  (:meth:`CoxState.cross_rows`);
* for the indicator columns of a grouping factor, the diagonal of UᵀAU alone, from
  sums within each level (:meth:`CoxState.indicator_diag`): coxme's sparse approximation.

Strata need nothing else: a row is never at risk outside its stratum's index range.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from ..errors import DataError
from ..families.cox import TIES

__all__ = ["CoxData", "CoxState"]


def _revcum(B: np.ndarray) -> np.ndarray:
    """Σ_{j > g} B[j] for g = 0 … len(B) − 2 (along the first axis)."""
    return np.cumsum(B[::-1], axis=0)[::-1][1:]


_KEYS: dict = {}


def _bincount2(idx: np.ndarray, W: np.ndarray, length: int) -> np.ndarray:
    """``out[j] = Σ_{idx_i = j} W[i]`` for the rows of a 2-D ``W`` (length × ncol).

    The flattened keys ``idx * ncol + column`` of an index array that is used again
    (the risk-set indices of a :class:`CoxData`) are kept in ``_KEYS``, by the array's identity.
    """
    c = W.shape[1]
    if c == 1:
        return np.bincount(idx, weights=W[:, 0], minlength=length)[:, None]
    hit = _KEYS.get((id(idx), c))
    if hit is None or hit[0] is not idx:
        hit = (idx, (idx[:, None] * c + np.arange(c)).ravel())
        if len(_KEYS) > 64:
            _KEYS.clear()
        _KEYS[(id(idx), c)] = hit
    return np.bincount(hit[1], weights=W.ravel(), minlength=length * c).reshape(length, c)


class CoxData:
    """Risk-set bookkeeping of survival data, computed once.

    Parameters
    ----------
    time, status : array-like (n,)
        Follow-up (stop) times and 0/1 event indicators.
    weights : array-like, optional
        Case weights (default 1).
    ties : {"efron", "breslow"}
    start : array-like (n,), optional
        Entry times of counting-process data ``(start, stop]`` (default: at risk from −∞).
    strata : array-like of int (n,), optional
        Stratum codes 0 … S − 1 (default: one stratum).

    Attributes
    ----------
    G, E : ndarray of int (n,)
        Row i is in the risk sets of death times Eᵢ … Gᵢ − 1.
    m : int
        Number of distinct (stratum, death time) pairs.
    death_times, death_strata : ndarray (m,)
    k_time, omega, rho : ndarray (K,)
        Per pseudo-event: its death-time index, weight ω and Efron fraction r/d (0 for Breslow).
    """

    def __init__(self, time: npt.ArrayLike, status: npt.ArrayLike, weights: npt.ArrayLike | None = None,
                 ties: str = "efron", start: npt.ArrayLike | None = None, strata: npt.ArrayLike | None = None
                 ) -> None:
        if ties not in TIES:
            raise DataError(f"ties must be 'efron' or 'breslow', got {ties!r}")
        self.time = np.asarray(time, float)
        self.status = np.asarray(status, float)
        n = self.time.size
        self.n = n
        self.w = np.ones(n) if weights is None else np.asarray(weights, float)
        self.ties = ties
        self.start = None if start is None else np.asarray(start, float)
        self.strata = np.zeros(n, np.int64) if strata is None else np.asarray(strata, np.int64)
        self.n_strata = int(self.strata.max()) + 1 if n else 0
        dead = self.status == 1
        self.dead = dead
        # (stratum, time) keys on integer time ranks, so searchsorted finds the index ranges
        times = self.time if self.start is None else np.concatenate([self.time, self.start])
        ut = np.unique(times)
        R = ut.size + 1
        key_stop = self.strata * R + np.searchsorted(ut, self.time)
        self._R, self._key_stop = R, key_stop
        self._key_start = None if self.start is None else self.strata * R + np.searchsorted(ut, self.start)
        dkeys = np.unique(key_stop[dead])
        m = dkeys.size
        self.m = m
        self.death_strata = dkeys // R
        self.death_times = ut[dkeys % R]
        self.G = np.searchsorted(dkeys, key_stop, side="right").astype(np.int64)
        self.E = self._entry_index(dkeys)
        self.has_entry = bool(np.any(self.E > 0))
        gd = self.G[dead] - 1                      # death-time index of each death
        self.g_dead = np.full(n, -1, np.int64)
        self.g_dead[dead] = gd
        self._dead_idx = np.flatnonzero(dead)
        self._gd = gd
        nd = np.bincount(gd, minlength=m).astype(float)
        wd = np.bincount(gd, weights=self.w[dead], minlength=m)
        self.n_dead = nd
        self.w_dead = wd
        if ties == "breslow":
            self.k_time = np.arange(m)
            self.omega = wd
            self.rho = np.zeros(m)
        else:
            counts = nd.astype(np.int64)
            self.k_time = np.repeat(np.arange(m), counts)
            first = np.concatenate([[0], np.cumsum(counts)[:-1]])
            r = np.arange(self.k_time.size) - first[self.k_time]
            self.rho = r / nd[self.k_time]
            self.omega = (wd / nd)[self.k_time]
        self.K = self.k_time.size
        self.efron = bool(np.any(self.rho > 0))
        self.wdelta = self.w * self.status
        self.n_events = int(dead.sum())
        self._plans: dict = {}

    def _entry_index(self, keys: np.ndarray) -> np.ndarray:
        """For sorted (stratum, time) ``keys``: the first index each row is at risk at (its stratum's
        first, or the first time after its entry)."""
        if self._key_start is None:
            return np.searchsorted(keys, self.strata * self._R, side="left").astype(np.int64)
        return np.searchsorted(keys, self._key_start, side="right").astype(np.int64)

    def time_grid(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every distinct (stratum, stop time), in order, and the index range of each row on it.

        Returns ``(strata, times, G, E)``: row i is at risk at grid points Eᵢ … Gᵢ − 1 (survival
        curves step at every stop time, censored or not, as R's ``survfit``).
        """
        hit = self._plans.get("grid")
        if hit is None:
            keys = np.unique(self._key_stop)
            ut_idx = keys % self._R
            times = np.unique(self.time if self.start is None else np.concatenate([self.time, self.start]))
            G = np.searchsorted(keys, self._key_stop, side="right").astype(np.int64)
            hit = (keys // self._R, times[ut_idx], G, self._entry_index(keys))
            self._plans["grid"] = hit
        return hit

    # ------------------------------------------------------------------ sums over risk sets
    def risk_sums(self, x: np.ndarray) -> np.ndarray:
        """Σ over the risk set of each death time of ``x`` (n,) or of the rows of ``x`` (n, c)."""
        m = self.m
        if x.ndim == 1:
            out = _revcum(np.bincount(self.G, weights=x, minlength=m + 1))
            if self.has_entry:
                out = out - _revcum(np.bincount(self.E, weights=x, minlength=m + 1))
            return out
        out = _revcum(_bincount2(self.G, x, m + 1))
        if self.has_entry:
            out = out - _revcum(_bincount2(self.E, x, m + 1))
        return out

    def interval_sums(self, per_time: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Σ_{Eᵢ ≤ g < Gᵢ} ``per_time[g]`` for each row i (``per_time`` (m,) or (m, c)), or for ``rows`` only."""
        z = np.zeros((1,) + per_time.shape[1:])
        cum = np.concatenate([z, np.cumsum(per_time, axis=0)])
        G, E = (self.G, self.E) if rows is None else (self.G[rows], self.E[rows])
        out = np.take(cum, G, axis=0)
        if self.has_entry:
            out = out - np.take(cum, E, axis=0)
        return out

    def level_plan(self, codes: np.ndarray, nlevels: int) -> dict:
        """Sums within the levels of a factor, for :meth:`CoxState.indicator_diag` (once per factor).

        Each row enters its level's running sum at Eᵢ and leaves it at Gᵢ: the events
        (row, ±1, position) sorted by (level, position); the running sum after an event
        holds up to the next event's position.
        """
        key = (id(codes), nlevels)
        hit = self._plans.get(key)
        if hit is not None and hit["codes"] is codes:
            return hit
        n, m = self.n, self.m
        codes = np.asarray(codes)
        if not np.any(self.E):
            # every row enters at position 0: the running sum of a level at g is the sum over its
            # rows with G > g, a suffix sum in (level, G) order (half the events)
            order = np.lexsort((self.G, codes))
            cs, Gs = codes[order], self.G[order]
            last = np.flatnonzero(np.r_[cs[1:] != cs[:-1], True])
            plan: dict[str, Any] = {"codes": codes, "entry": False, "order": order, "cs": cs, "Gs": Gs,
                                    "last": last}
            if self.efron:
                new_grp = np.r_[True, (cs[1:] != cs[:-1]) | (Gs[1:] != Gs[:-1])]
                grp = np.cumsum(new_grp) - 1
                deads = self.dead[order]
                gidx = grp[deads]
                used, ginv = np.unique(gidx, return_inverse=True)
                first_pos = np.flatnonzero(new_grp)[used]
                plan.update(deads=deads, grp=ginv, ngrp=used.size, at=first_pos, glev=cs[first_pos],
                            g=Gs[first_pos] - 1)
            self._plans[key] = plan
            return plan
        rows = np.concatenate([np.arange(n), np.arange(n)])
        sign = np.concatenate([np.ones(n), -np.ones(n)])
        pos = np.concatenate([self.E, self.G])
        lev = np.concatenate([codes, codes])
        order = np.lexsort((-sign, pos, lev))        # within a position, entries before exits
        rows, sign, pos, lev = rows[order], sign[order], pos[order], lev[order]
        nxt = np.empty_like(pos)
        nxt[:-1] = pos[1:]
        last = np.r_[lev[1:] != lev[:-1], True]
        nxt[last] = pos[last]
        plan = {"codes": codes, "entry": True, "rows": rows, "sign": sign, "pos": pos, "next": nxt, "lev": lev}
        if self.efron:
            # (level, death time) groups with deaths: the running sum at the death time
            d = self._dead_idx
            gkey = codes[d] * (m + 1) + self._gd
            ukey, grp = np.unique(gkey, return_inverse=True)
            ev_key = lev * (m + 1) + pos
            at = np.searchsorted(ev_key, ukey, side="right") - 1
            plan.update(grp=grp, ngrp=ukey.size, at=at, glev=ukey // (m + 1), g=ukey % (m + 1))
        self._plans[key] = plan
        return plan

    def state(self, eta: np.ndarray) -> CoxState:
        """Risk-set sums at the linear predictor η."""
        return CoxState(self, np.asarray(eta, float))

    def loglik(self, eta: np.ndarray) -> float:
        """log PL at η."""
        return self.state(eta).loglik


class CoxState:
    """Partial likelihood, gradient and Hessian products at one η (see the module docstring)."""

    def __init__(self, cd: CoxData, eta: np.ndarray) -> None:
        self.cd = cd
        self.eta = eta
        c = float(np.max(eta)) if eta.size else 0.0
        a = cd.w * np.exp(eta - c)          # PL is invariant to a common shift of η
        self.a = a
        self.shift = c
        m = cd.m
        S0 = cd.risk_sums(a)                                       # Σ_{at risk at t_g} a
        kt = cd.k_time
        if cd.efron:
            S0D = np.bincount(cd._gd, weights=a[cd._dead_idx], minlength=m)
            self.S0D = S0D
            d2 = S0[kt] - cd.rho * S0D[kt]
        else:
            d2 = S0[kt]
        self.S0 = S0
        self.d2 = d2
        with np.errstate(divide="ignore"):
            self.loglik = float(np.dot(cd.wdelta, eta) - np.dot(cd.omega, np.log(d2) + c))
        # hazard increments per death time, and Efron's own-time corrections
        om_d = cd.omega / d2
        self._om_d = om_d
        haz = np.bincount(kt, weights=om_d, minlength=m) if cd.efron else om_d
        self.hazard = haz
        h = cd.interval_sums(haz)
        if cd.efron:
            own = np.bincount(kt, weights=om_d * cd.rho, minlength=m)
            h[cd._dead_idx] -= own[cd._gd]
        self.s = a * h                                  # diag(Σ_k ω_k π_k)
        self.grad = cd.wdelta - self.s                  # ∂ log PL / ∂η

    # ---------------------------------------------------------------- products
    def means(self, V: np.ndarray | sp.spmatrix) -> np.ndarray:
        """Risk-set means m_k = Vᵀπ_k, one row per pseudo-event (K × ncol(V))."""
        if sp.issparse(V):
            V = V.toarray()
        aV = np.asarray(V, float) * self.a[:, None]
        return self._means_from(aV)

    def _means_from(self, aV: np.ndarray) -> np.ndarray:
        cd = self.cd
        S1 = cd.risk_sums(aV)
        kt = cd.k_time
        if cd.efron:
            S1D = _bincount2(cd._gd, np.take(aV, cd._dead_idx, axis=0), cd.m)
            S1k = np.take(S1, kt, axis=0) - cd.rho[:, None] * np.take(S1D, kt, axis=0)
        else:
            S1k = S1
        return S1k / self.d2[:, None]

    def means_coo(self, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, ncol: int) -> np.ndarray:
        """:meth:`means` of a sparse V given by its nonzeros (``rows``, ``cols``, ``vals``)."""
        cd = self.cd
        m = cd.m
        av = self.a[rows] * vals
        B = np.bincount(cd.G[rows] * ncol + cols, weights=av, minlength=(m + 1) * ncol).reshape(m + 1, ncol)
        S1 = _revcum(B)
        if cd.has_entry:
            S1 = S1 - _revcum(np.bincount(cd.E[rows] * ncol + cols, weights=av,
                                          minlength=(m + 1) * ncol).reshape(m + 1, ncol))
        kt = cd.k_time
        if cd.efron:
            dd = cd.dead[rows]
            S1D = np.bincount(cd.g_dead[rows[dd]] * ncol + cols[dd], weights=av[dd],
                              minlength=m * ncol).reshape(m, ncol)
            S1k = np.take(S1, kt, axis=0) - cd.rho[:, None] * np.take(S1D, kt, axis=0)
        else:
            S1k = S1
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

    def cross_rows(self, M: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Per-row G (n × ncol) with Σ_k ω_k (Uᵀπ_k) m_kᵀ = UᵀG for any U, given the means M of V
        (only the rows ``rows`` if given)."""
        cd = self.cd
        W = M * self._om_d[:, None]
        if cd.efron:
            Gr = cd.interval_sums(_bincount2(cd.k_time, W, cd.m), rows)
            E = _bincount2(cd.k_time, W * cd.rho[:, None], cd.m)
            if rows is None:
                Gr[cd._dead_idx] -= np.take(E, cd._gd, axis=0)
            else:
                gd = cd.g_dead[rows]
                dd = gd >= 0
                Gr[dd] -= np.take(E, gd[dd], axis=0)
        else:
            Gr = cd.interval_sums(W, rows)
        return Gr * (self.a if rows is None else np.take(self.a, rows))[:, None]

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

        Per level j: Σ_{i∈j} sᵢ − Σ_k ω_k m_kj², where m_kj d_k is the level's running sum
        of a over its rows at risk (piecewise constant between the entry and exit
        positions of its rows, see :meth:`CoxData.level_plan`), plus Efron's corrections at
        the level's own death times.  Linear in n.
        """
        cd = self.cd
        P = cd.level_plan(codes, nlevels)
        first = np.bincount(codes, weights=self.s, minlength=nlevels)
        w2 = cd.omega / self.d2 ** 2
        Q = np.bincount(cd.k_time, weights=w2, minlength=cd.m) if cd.efron else w2
        cumQ = np.concatenate([[0.0], np.cumsum(Q)])
        if P["entry"]:
            run = np.cumsum(P["sign"] * self.a[P["rows"]])
            second = np.bincount(P["lev"], weights=run ** 2 * (cumQ[P["next"]] - cumQ[P["pos"]]),
                                 minlength=nlevels)
            dead_a = self.a[cd._dead_idx] if cd.efron else None
        else:
            cs = P["cs"]
            as_ = self.a[P["order"]]
            csum = np.cumsum(as_)
            level_end = np.zeros(nlevels)
            level_end[cs[P["last"]]] = csum[P["last"]]
            run = level_end[cs] - csum + as_                # Σ a over rows at or after i in the level
            second = np.bincount(cs, weights=as_ * cumQ[P["Gs"]] * (2.0 * run - as_), minlength=nlevels)
            dead_a = as_[P["deads"]] if cd.efron else None
        if cd.efron:
            # at each (level, death time) with deaths: S = Σ a over the level's rows at risk,
            # S1D = Σ a over its deaths there; Efron's terms −2 α₁ S S1D + α₂ S1D²
            a1 = np.bincount(cd.k_time, weights=w2 * cd.rho, minlength=cd.m)
            a2 = np.bincount(cd.k_time, weights=w2 * cd.rho ** 2, minlength=cd.m)
            S1D = np.bincount(P["grp"], weights=dead_a, minlength=P["ngrp"])
            g = P["g"]
            corr = -2.0 * a1[g] * run[P["at"]] * S1D + a2[g] * S1D ** 2
            second = second + np.bincount(P["glev"], weights=corr, minlength=nlevels)
        return first - second

    # ---------------------------------------------------------------- residuals
    def score_residuals(self, X: np.ndarray) -> np.ndarray:
        """Weighted score residuals (n × p): row i's part of ∂ log PL/∂β, Σᵢ Uᵢ = Xᵀ grad.

        Uᵢ = wᵢδᵢ (xᵢ − x̄_{g(i)}) − Σ_k ω_k π_k,i (xᵢ − m_k), x̄_g the mean of the risk-set
        means over the pseudo-events of death time g (survival's ``residuals(type = "score")``).
        """
        cd = self.cd
        X = np.asarray(X, float)
        M = self._means_from(X * self.a[:, None])
        xbar = _bincount2(cd.k_time, M, cd.m) / np.bincount(cd.k_time, minlength=cd.m)[:, None]
        U = -(X * self.s[:, None] - self.cross_rows(M))
        d = cd._dead_idx
        U[d] += cd.wdelta[d, None] * (X[d] - xbar[cd._gd])
        return U

    @property
    def expected(self) -> np.ndarray:
        """Expected number of events of each row given η (its cumulative hazard, Efron-corrected):
        ``δ − martingale residual``."""
        return self.s / self.cd.w

    def hessian_eta(self) -> np.ndarray:
        """The dense n × n matrix A (for tests on small data only)."""
        cd = self.cd
        n = cd.n
        A = np.zeros((n, n))
        for k in range(cd.K):
            g = cd.k_time[k]
            c = np.where((cd.E <= g) & (cd.G > g), 1.0, 0.0)
            own = cd.g_dead == g
            c[own] = 1.0 - cd.rho[k]
            pi = c * self.a / self.d2[k]
            A += cd.omega[k] * (np.diag(pi) - np.outer(pi, pi))
        return A

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


def _revcum_t(B: np.ndarray) -> np.ndarray:
    """Σ_{j > g} B[:, j] for g = 0 … ncol − 2, as a C-contiguous array (BLAS products need one)."""
    out = np.empty((B.shape[0], B.shape[1] - 1))
    np.cumsum(B[:, :0:-1], axis=1, out=out[:, ::-1])
    return out


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
        self.unit_weights = bool(np.all(self.w == 1.0))
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
        self.rho_powers = np.stack([np.ones(self.K), self.rho, self.rho ** 2])
        self.wdelta = self.w * self.status
        self.n_events = int(dead.sum())
        self._plans: dict = {}

    def _entry_index(self, keys: np.ndarray) -> np.ndarray:
        """For sorted (stratum, time) ``keys``: the first index each row is at risk at (its stratum's
        first, or the first time after its entry)."""
        if self._key_start is None:
            return np.searchsorted(keys, self.strata * self._R, side="left").astype(np.int64)
        return np.searchsorted(keys, self._key_start, side="right").astype(np.int64)

    # ------------------------------------------------------------------ component-major sums
    # The hot path of the mixed model keeps several columns as rows of a (c, n) array, so that
    # each column is contiguous: one bincount over cached keys replaces c of them.
    def _tkeys(self, idx: np.ndarray, c: int, length: int) -> np.ndarray:
        key = ("tkeys", id(idx), c, length)
        hit = self._plans.get(key)
        if hit is None or hit[0] is not idx:
            hit = (idx, (np.arange(c)[:, None] * length + idx[None, :]).ravel())
            self._plans[key] = hit
        return hit[1]

    def bincount_t(self, idx: np.ndarray, WT: np.ndarray, length: int) -> np.ndarray:
        """``out[:, j] = Σ_{idx_i = j} WT[:, i]`` for a (c, n) ``WT`` (``idx`` an index array of this data)."""
        c = WT.shape[0]
        if c == 1:
            return np.bincount(idx, weights=WT[0], minlength=length)[None, :]
        return np.bincount(self._tkeys(idx, c, length), weights=WT.ravel(), minlength=c * length).reshape(c, length)

    def risk_sums_t(self, AT: np.ndarray) -> np.ndarray:
        """:meth:`risk_sums` of the rows of a (c, n) array: (c, m)."""
        m = self.m
        out = _revcum_t(self.bincount_t(self.G, AT, m + 1))
        if self.has_entry:
            out -= _revcum_t(self.bincount_t(self.E, AT, m + 1))
        return out

    def interval_sums_t(self, PT: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """:meth:`interval_sums` of the rows of a (c, m) array: (c, n) (or (c, len(rows)))."""
        cum = np.zeros((PT.shape[0], PT.shape[1] + 1))
        PT.cumsum(axis=1, out=cum[:, 1:])
        G, E = (self.G, self.E) if rows is None else self._rows_index(rows)[:2]
        out = cum.take(G, axis=1)
        if self.has_entry:
            out -= cum.take(E, axis=1)
        return out

    def _rows_index(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(G, E, death-time index or m) of ``rows`` (kept)."""
        key = ("rows", id(rows))
        hit = self._plans.get(key)
        if hit is None or hit[0] is not rows:
            gd = self.g_dead[rows]
            hit = (rows, (self.G[rows], self.E[rows], np.where(gd >= 0, gd, self.m)))
            self._plans[key] = hit
        return hit[1]

    @property
    def own_index(self) -> np.ndarray:
        """Death-time index of each row with an event, m for the others (Efron's own-time terms)."""
        hit = self._plans.get("own")
        if hit is None:
            hit = np.where(self.g_dead >= 0, self.g_dead, self.m)
            self._plans["own"] = hit
        return hit

    def ones_and(self, X: np.ndarray) -> np.ndarray:
        """[1; Xᵀ] as a contiguous (1 + p, n) array (kept for the last ``X``)."""
        hit = self._plans.get("ones_and")
        if hit is None or hit[0] is not X:
            hit = (X, np.ascontiguousarray(np.vstack([np.ones(self.n), np.asarray(X, float).T])))
            self._plans["ones_and"] = hit
        return hit[1]

    def dead_rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions within ``rows`` of the rows with an event, and their death-time indices (kept)."""
        key = ("dead_rows", id(rows))
        hit = self._plans.get(key)
        if hit is None or hit[0] is not rows:
            gd = self.g_dead[rows]
            pos = np.flatnonzero(gd >= 0)
            hit = (rows, pos, gd[pos])
            self._plans[key] = hit
        return hit[1], hit[2]

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
            starts = np.flatnonzero(np.r_[True, cs[1:] != cs[:-1]])
            plan: dict[str, Any] = {"codes": codes, "entry": False, "order": order, "cs": cs, "Gs": Gs,
                                    "last": last, "last_lev": cs[last], "starts": starts, "start_lev": cs[starts]}
            if self.efron:
                new_grp = np.r_[True, (cs[1:] != cs[:-1]) | (Gs[1:] != Gs[:-1])]
                grp = np.cumsum(new_grp) - 1
                deads = np.flatnonzero(self.dead[order])
                gidx = grp[deads]
                used, ginv = np.unique(gidx, return_inverse=True)
                first_pos = np.flatnonzero(new_grp)[used]
                plan.update(deads=deads, grp=ginv.ravel(), ngrp=used.size, at=first_pos, glev=cs[first_pos],
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

    def state(self, eta: np.ndarray, X: np.ndarray | None = None) -> CoxState:
        """Risk-set sums at the linear predictor η (and of the columns of ``X``, in the same pass)."""
        return CoxState(self, np.asarray(eta, float), X)

    def loglik(self, eta: np.ndarray) -> float:
        """log PL at η."""
        return self.state(eta).loglik


class CoxState:
    """Partial likelihood, gradient and Hessian products at one η (see the module docstring)."""

    def __init__(self, cd: CoxData, eta: np.ndarray, X: np.ndarray | None = None) -> None:
        self.cd = cd
        self.eta = eta
        c = float(eta.max()) if eta.size else 0.0
        a = np.exp(eta - c)                 # PL is invariant to a common shift of η
        if not cd.unit_weights:
            a *= cd.w
        self.a = a
        self.shift = c
        m = cd.m
        kt = cd.k_time
        # risk-set sums of a (and of a·X, stacked: one pass over the rows), component-major
        AT = a[None, :] if X is None or not X.shape[1] else cd.ones_and(X) * a
        ST = cd.risk_sums_t(AT)
        SDT = None
        if cd.efron:
            SDT = cd.bincount_t(cd._gd, AT.take(cd._dead_idx, axis=1), m)
            d2 = ST[0].take(kt)
            d2 -= cd.rho * SDT[0].take(kt)
            self.S0D = SDT[0]
        else:
            d2 = ST[0]
        self.S0 = ST[0]
        self.d2 = d2
        self._x_sums = None if AT.shape[0] == 1 else (ST[1:], None if SDT is None else SDT[1:])
        self._x_of = X
        with np.errstate(divide="ignore"):
            self.loglik = float(cd.wdelta @ eta - cd.omega @ (np.log(d2) + c))
        inv = 1.0 / d2
        om_d = cd.omega * inv
        self._om_d = om_d
        if cd.efron:
            # per death time (one slot more, left 0, for the rows without an event): the hazard
            # increment, Efron's own-time correction and α0, α1, α2
            rho_pow = cd.rho_powers
            Z = np.empty((5, kt.size))
            np.multiply(om_d, rho_pow[:2], out=Z[:2])
            np.multiply(om_d * inv, rho_pow, out=Z[2:])
            C = cd.bincount_t(kt, Z, m + 1)
            haz = C[0, :m]
            self._alphas = (C[2, :m], C[3, :m], C[4, :m])
            h = cd.interval_sums_t(haz[None, :])[0]
            h -= C[1].take(cd.own_index)
        else:
            haz = om_d
            self._alphas = (om_d * inv, None, None)
            h = cd.interval_sums_t(haz[None, :])[0]
        self.hazard = haz
        self.s = a * h                                  # diag(Σ_k ω_k π_k)
        self.grad = cd.wdelta - self.s                  # ∂ log PL / ∂η

    def x_sums(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`sums` of ``X`` (computed with the state when it was given ``X``)."""
        if self._x_sums is not None and self._x_of is X:
            return self._x_sums
        return self.sums(np.asarray(X, float).T * self.a)

    # ---------------------------------------------------------------- per death time
    # Efron's pseudo-events of one death time share the risk-set sums S1 and the deaths' sums
    # S1D; with m_k = (S1 − ρ_k S1D)/d_k every sum over k of a product of two means is
    # Σ_g α0 S1 S1ᵀ − α1 (S1 S1Dᵀ + S1D S1ᵀ) + α2 S1D S1Dᵀ, with α_j = Σ_{k at g} ω_k ρ_k^j / d_k².
    # The products below work at the death times (m) instead of the pseudo-events (K), on
    # component-major (c, m) arrays.
    @property
    def alphas(self) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """(α0, α1, α2) per death time (α1 = α2 = None under Breslow, or Efron without ties)."""
        return self._alphas

    def sums(self, AT: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(S1, S1D), each (c, m): risk-set sums and Efron's deaths' sums of the rows of
        ``AT`` = (a ⊙ V)ᵀ, a (c, n) array."""
        cd = self.cd
        S1 = cd.risk_sums_t(AT)
        S1D = cd.bincount_t(cd._gd, AT.take(cd._dead_idx, axis=1), cd.m) if cd.efron else None
        return S1, S1D

    def sums_coo(self, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, ncol: int
                 ) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`sums` of a sparse V given by its nonzeros (``rows``, ``cols``, ``vals``): (ncol, m)."""
        cd = self.cd
        m = cd.m
        av = self.a.take(rows) * vals

        def revcum(idx):
            B = np.bincount(cols * (m + 1) + idx, weights=av, minlength=ncol * (m + 1)).reshape(ncol, m + 1)
            return _revcum_t(B)

        S1 = revcum(cd.G.take(rows))
        if cd.has_entry:
            S1 -= revcum(cd.E.take(rows))
        S1D = None
        if cd.efron:
            dd = cd.dead[rows]
            S1D = np.bincount(cols[dd] * m + cd.g_dead[rows[dd]], weights=av[dd],
                              minlength=ncol * m).reshape(ncol, m)
        return S1, S1D

    def weights_of(self, A: tuple) -> tuple[np.ndarray, np.ndarray | None]:
        """(P, Q), each (c, m), for the sums A = (S1, S1D): P = Σ_{k at g} ω_k m_k / d_k
        = α0 S1 − α1 S1D and Q = Σ_{k at g} ρ_k ω_k m_k / d_k = α1 S1 − α2 S1D (Efron's own-time part)."""
        a0, a1, a2 = self._alphas
        S1, S1D = A
        if a1 is None:
            return S1 * a0, None
        return S1 * a0 - S1D * a1, S1 * a1 - S1D * a2

    def outer(self, A: tuple, B: tuple, PB: tuple | None = None) -> np.ndarray:
        """Σ_k ω_k m_k^A m_k^Bᵀ (c_A × c_B) from the :meth:`sums` of two designs (``PB``: :meth:`weights_of` B)."""
        P, Q = self.weights_of(B) if PB is None else PB
        out = A[0] @ P.T
        if Q is not None:
            out -= A[1] @ Q.T
        return out

    def cross_rows_sums(self, A: tuple, rows: np.ndarray | None = None, PA: tuple | None = None) -> np.ndarray:
        """:meth:`cross_rows` (transposed: (c, n), or (c, len(rows))) from the :meth:`sums` of V
        (``PA``: its :meth:`weights_of`)."""
        cd = self.cd
        P, Q = self.weights_of(A) if PA is None else PA
        Gr = cd.interval_sums_t(P, rows)
        if Q is not None:
            own = cd.own_index if rows is None else cd._rows_index(rows)[2]
            Gr -= np.concatenate([Q, np.zeros((Q.shape[0], 1))], axis=1).take(own, axis=1)
        Gr *= self.a if rows is None else self.a.take(rows)
        return Gr

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
        Q, a1, a2 = self.alphas
        cumQ = np.zeros(Q.size + 1)
        Q.cumsum(out=cumQ[1:])
        if P["entry"]:
            first = np.bincount(codes, weights=self.s, minlength=nlevels)
            run = np.cumsum(P["sign"] * self.a[P["rows"]])
            out = first - np.bincount(P["lev"], weights=run ** 2 * (cumQ[P["next"]] - cumQ[P["pos"]]),
                                      minlength=nlevels)
            dead_a = self.a[cd._dead_idx] if cd.efron else None
        else:
            # rows sorted by (level, G): per level, s minus a·cumQ(G)·(2·suffix − a), summed over the
            # level's contiguous rows
            order = P["order"]
            as_ = self.a.take(order)
            csum = as_.cumsum()
            level_end = np.zeros(nlevels)
            level_end[P["last_lev"]] = csum.take(P["last"])
            run = level_end.take(P["cs"])
            run -= csum
            run += as_                                   # Σ a over rows at or after i in the level
            w = self.s.take(order)
            w -= as_ * cumQ.take(P["Gs"]) * (2.0 * run - as_)
            out = np.zeros(nlevels)
            out[P["start_lev"]] = np.add.reduceat(w, P["starts"])
            dead_a = as_.take(P["deads"]) if cd.efron else None
        if cd.efron:
            # at each (level, death time) with deaths: S = Σ a over the level's rows at risk,
            # S1D = Σ a over its deaths there; Efron's terms −2 α₁ S S1D + α₂ S1D²
            assert a1 is not None and a2 is not None
            S1D = np.bincount(P["grp"], weights=dead_a, minlength=P["ngrp"])
            g = P["g"]
            corr = (a2.take(g) * S1D - 2.0 * a1.take(g) * run.take(P["at"])) * S1D
            out -= np.bincount(P["glev"], weights=corr, minlength=nlevels)
        return out

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

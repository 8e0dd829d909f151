"""Harrell's concordance of a Cox model's linear predictor and its standard error (survival's
``concordance``, as ``coxph`` reports it).

A pair is comparable when one row has an event at time t and the other is at risk then
(stop > t, or censored at t; entered before t; same stratum).  It is concordant when the
row with the event has the larger linear predictor, discordant when the smaller, tied in
x when equal; rows with events at the same time are tied in y (tied in x and y when their
predictors are equal too).  C = (concordant + tied.x / 2) / (concordant + discordant + tied.x),
with case weights multiplying pairs.

The standard error is survival's infinitesimal jackknife: each row's share of the
comparable pairs of each kind (as the row with the event and as the row at risk) gives
its influence on Somers' d, summed within clusters when a cluster is given.

Counting the pairs is a two-dimensional dominance count (time order × predictor order),
done for all rows at once by divide and conquer over the time order with vectorized
merges (:func:`_dominance`), O(n log² n) with no loop over rows.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..response.survival import CoxData

__all__ = ["Concordance", "concordance"]


@dataclass
class Concordance:
    """Concordance counts, C and its standard error (coxph's ``concordance`` vector)."""

    concordant: float
    discordant: float
    tied_x: float
    tied_y: float
    tied_xy: float
    concordance: float
    std: float

    def as_dict(self) -> dict[str, float]:
        """coxph's names: concordant, discordant, tied.x, tied.y, tied.xy, concordance, std."""
        return {"concordant": self.concordant, "discordant": self.discordant, "tied.x": self.tied_x,
                "tied.y": self.tied_y, "tied.xy": self.tied_xy, "concordance": self.concordance, "std": self.std}


def _dominance(ikey: np.ndarray, irank: np.ndarray, iw: np.ndarray, qkey: np.ndarray, qrank: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each query q: Σ w over items with key ≥ key_q and rank <, = and > rank_q.

    Items and queries are merged in descending key order (items first on equal keys); a
    query then needs the items before it.  Bottom-up over blocks of size 2^l, the queries
    of each odd block count the items of the even block before it, found by one
    ``searchsorted`` per level on the items sorted by (block pair, rank).
    """
    ni, nq = ikey.size, qkey.size
    less, leq, tot = np.zeros(nq), np.zeros(nq), np.zeros(nq)
    if ni == 0 or nq == 0:
        return less, leq - less, tot - leq
    key = np.concatenate([ikey, qkey])
    tag = np.concatenate([np.zeros(ni, np.int8), np.ones(nq, np.int8)])
    order = np.lexsort((tag, -key))
    pos = np.empty(ni + nq, np.int64)
    pos[order] = np.arange(ni + nq)
    ipos, qpos = pos[:ni], pos[ni:]
    R = int(max(irank.max(), qrank.max())) + 2
    by_rank = np.argsort(irank, kind="stable")
    levels = int(np.ceil(np.log2(ni + nq))) + 1
    for lev in range(levels):
        iblk = ipos >> lev
        qblk = qpos >> lev
        il = np.flatnonzero((iblk[by_rank] & 1) == 0)
        items = by_rank[il]
        qs = np.flatnonzero((qblk & 1) == 1)
        if items.size == 0 or qs.size == 0:
            continue
        pair_i = iblk[items] >> 1
        srt = np.argsort(pair_i, kind="stable")              # (pair, rank) order: rank order kept
        items = items[srt]
        ik = (iblk[items] >> 1) * R + irank[items]
        cw = np.concatenate([[0.0], np.cumsum(iw[items])])
        base = (qblk[qs] >> 1) * R
        lo = np.searchsorted(ik, base, side="left")
        lt = np.searchsorted(ik, base + qrank[qs], side="left")
        le = np.searchsorted(ik, base + qrank[qs], side="right")
        hi = np.searchsorted(ik, base + R, side="left")
        less[qs] += cw[lt] - cw[lo]
        leq[qs] += cw[le] - cw[lo]
        tot[qs] += cw[hi] - cw[lo]
    return less, leq - less, tot - leq


def _counts(ikey, irank, iw, qkey_hi, qkey_lo, qrank):
    """Σ w over items with qkey_lo > key ≥ qkey_hi … as three arrays (<, =, >), via two dominance counts."""
    a = _dominance(ikey, irank, iw, qkey_hi, qrank)
    b = _dominance(ikey, irank, iw, qkey_lo, qrank)
    return tuple(x - y for x, y in zip(a, b, strict=True))


def concordance(cd: CoxData, lp: np.ndarray, cluster: np.ndarray | None = None) -> Concordance:
    """coxph's concordance of ``lp`` with the survival data of ``cd`` (see the module docstring)."""
    (c_raw, d_raw, tx, ty_all, txy), imat = pair_counts(cd, lp)
    w = cd.w
    npair = c_raw + d_raw + tx
    somer = (c_raw - d_raw) / npair if npair > 0 else np.nan
    dfb = w * ((imat[:, 0] - imat[:, 1]) / npair - (somer / npair) * imat[:, :3].sum(axis=1))
    if cluster is not None:
        codes = np.unique(np.asarray(cluster), return_inverse=True)[1].ravel()
        dfb = np.bincount(codes, weights=dfb)
    var = float(np.sum(dfb ** 2)) / 4.0
    cval = 1.0 - (somer + 1.0) / 2.0
    return Concordance(d_raw, c_raw, tx, ty_all - txy, txy, cval, float(np.sqrt(var)))


def pair_counts(cd: CoxData, lp: np.ndarray) -> tuple[tuple[float, float, float, float, float], np.ndarray]:
    """Weighted pair counts (the event's predictor smaller, larger, tied; tied in time; tied in
    both) and each row's unweighted share of them (n × 5): survival's influence matrix before
    ``reverse``."""
    lp = np.asarray(lp, float)
    w = cd.w
    n = cd.n
    dead = cd.dead
    r = np.unique(lp, return_inverse=True)[1].ravel().astype(np.int64)
    times = cd.time if cd.start is None else np.concatenate([cd.time, cd.start])
    ut = np.unique(times)
    b = np.searchsorted(ut, cd.time).astype(np.int64)
    s = cd.strata.astype(np.int64)
    BIG = 2 * (ut.size + 2)
    cens = (~dead).astype(np.int64)
    key1 = s * BIG + 2 * b + cens                 # censored at t sort after events at t
    d = np.flatnonzero(dead)
    # (1) each event against the rows at risk at its time
    q_lo = (s[d] + 1) * BIG
    lt, eq, gt = _counts(key1, r, w, s[d] * BIG + 2 * b[d] + 1, q_lo, r[d])
    a = None
    if cd.start is not None:
        a = np.searchsorted(ut, cd.start).astype(np.int64)
        lt2, eq2, gt2 = _counts(s * BIG + 2 * a, r, w, s[d] * BIG + 2 * b[d], q_lo, r[d])
        lt, eq, gt = lt - lt2, eq - eq2, gt - gt2
    wd = w[d]
    c_raw = float(wd @ gt)        # the event's predictor smaller: survival's "concordant" before reverse
    d_raw = float(wd @ lt)
    tx = float(wd @ eq)
    imat = np.zeros((n, 5))
    imat[d, 0] += gt
    imat[d, 1] += lt
    imat[d, 2] += eq
    # (2) each row against the events it is at risk for (events before its stop, after its start)
    nkey = -key1[d]
    # events have key 2 b: a row censored at t is at risk for events at t, one with an event is not
    lt_, eq_, gt_ = _counts(nkey, r[d], wd, -(s * BIG + 2 * b + cens - 1), -(s * BIG - 1), r)
    if a is not None:
        lt2, eq2, gt2 = _counts(nkey, r[d], wd, -(s * BIG + 2 * a), -(s * BIG - 1), r)
        lt_, eq_, gt_ = lt_ - lt2, eq_ - eq2, gt_ - gt2
    imat[:, 0] += lt_
    imat[:, 1] += gt_
    imat[:, 2] += eq_
    # (3) events tied in time (and in x)
    gkey = s[d] * BIG + b[d]
    gi = np.unique(gkey, return_inverse=True)[1].ravel()
    dwt = np.bincount(gi, weights=wd)
    xi = np.unique(np.column_stack([gkey, r[d]]), axis=0, return_inverse=True)[1].ravel()
    dwt2 = np.bincount(xi, weights=wd)
    ty_all = 0.5 * float(np.sum(dwt ** 2) - np.sum(np.bincount(gi, weights=wd ** 2)))
    txy = 0.5 * float(np.sum(dwt2 ** 2) - np.sum(np.bincount(xi, weights=wd ** 2)))
    imat[d, 3] += (dwt[gi] - wd) - (dwt2[xi] - wd)
    imat[d, 4] += dwt2[xi] - wd
    return (c_raw, d_raw, tx, ty_all, txy), imat

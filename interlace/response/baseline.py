"""The baseline hazard of a Cox model: its increments at every stop time, per stratum (R's ``agsurv``).

Given the fitted linear predictor η (fixed part, frailties and offset), with risk
rᵢ = exp(ηᵢ − c), at each distinct stop time t of a stratum:

* Breslow (``ties="breslow"``): hazard increment dΛ = Σ_{deaths} w / Σ_{at risk} w r, its variance
  term dΛ / Σ w r, and x̄ dΛ with x̄ the risk-weighted mean of x over the risk set;
* Efron (``ties="efron"``): with d tied deaths, of weighted count e and risk sum ε,
  dΛ = e · (1/d) Σ_{j<d} 1/(S − (j/d) ε), the variance term e · (1/d) Σ 1/(S − (j/d) ε)²,
  and e · (1/d) Σ (S_x − (j/d) ε_x)/(S − (j/d) ε)² (S, S_x: sums of w r and w r x over the risk set).

These are what survival curves (:mod:`interlace.inference.survfit`) and the expected
numbers of events (``predict(type="expected")``) are made of.  The times are all stop
times (censored ones too), so a curve is a step function over the stratum's follow-up.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .survival import CoxData, _bincount2, _revcum

__all__ = ["BaselineHazard", "baseline_hazard"]


@dataclass
class BaselineHazard:
    """Increments of the baseline cumulative hazard at the stop times (per stratum, in order).

    Attributes
    ----------
    strata : ndarray of int (g,)
        Stratum of each time point.
    time : ndarray (g,)
    n_risk, n_event, n_censor : ndarray (g,)
        Weighted numbers at risk, of events and of censored rows at each time.
    hazard : ndarray (g,)
        Increments dΛ₀ of the cumulative hazard at risk exp(η − ``center``).
    varhaz : ndarray (g,)
        Increments of the first term of its variance.
    xbar : ndarray (g, p)
        Increments of ∫ x̄ dΛ₀ (the second term of the variance of a curve).
    center : float
    """

    strata: np.ndarray
    time: np.ndarray
    n_risk: np.ndarray
    n_event: np.ndarray
    n_censor: np.ndarray
    hazard: np.ndarray
    varhaz: np.ndarray
    xbar: np.ndarray
    center: float

    def cumulative(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Cumulative (hazard, varhaz, xbar) within each stratum."""
        out = []
        for x in (self.hazard, self.varhaz, self.xbar):
            c = np.cumsum(x, axis=0)
            first = np.flatnonzero(np.r_[True, self.strata[1:] != self.strata[:-1]])
            before = np.where(first > 0, first - 1, 0)
            base = np.where((first > 0)[(slice(None),) + (None,) * (x.ndim - 1)], c[before], 0.0)
            seg = np.cumsum(np.r_[True, self.strata[1:] != self.strata[:-1]]) - 1
            out.append(c - base[seg])
        return out[0], out[1], out[2]

    def at(self, strata: np.ndarray, times: np.ndarray) -> np.ndarray:
        """Index of the last time point ≤ ``times`` in each row's stratum (−1 before the first)."""
        strata = np.asarray(strata)
        pos = np.searchsorted(_grid_keys(self.strata, self.time), _grid_keys(strata, times), side="right") - 1
        ok = pos >= 0
        ok[ok] = self.strata[pos[ok]] == strata[ok]
        return np.where(ok, pos, -1)


def _grid_keys(strata: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Sortable (stratum, time) pairs as complex numbers (real part stratum, imaginary part time)."""
    return np.asarray(strata, float) + 1j * np.asarray(times, float)


def baseline_hazard(cd: CoxData, eta: np.ndarray, X: np.ndarray | None = None, center: float = 0.0
                    ) -> BaselineHazard:
    """The baseline hazard increments of ``cd`` at the linear predictor ``eta`` (see the module docstring).

    Parameters
    ----------
    cd : CoxData
    eta : ndarray (n,)
        Fitted linear predictor (with frailties and offset).
    X : ndarray (n, p), optional
        Covariates whose x̄ terms the variance of a curve needs.
    center : float
        Subtracted from η (R centres at the means of the covariates).
    """
    strata, times, G, E = cd.time_grid()
    g = times.size
    X = np.zeros((cd.n, 0)) if X is None else np.asarray(X, float)
    p = X.shape[1]
    w = cd.w
    wr = w * np.exp(np.asarray(eta, float) - center)

    def at_risk(x):
        B = _bincount2(G, x, g + 1) if x.ndim == 2 else np.bincount(G, weights=x, minlength=g + 1)
        out = _revcum(B)
        if np.any(E):             # rows not yet entered, or in a later stratum
            BE = _bincount2(E, x, g + 1) if x.ndim == 2 else np.bincount(E, weights=x, minlength=g + 1)
            out = out - _revcum(BE)
        return out

    nrisk = at_risk(wr)
    irisk = at_risk(w)
    dead = cd.dead
    dg = G[dead] - 1
    cg = G[~dead] - 1
    nevent = np.bincount(dg, weights=w[dead], minlength=g)
    ncens = np.bincount(cg, weights=w[~dead], minlength=g)
    ndeath = np.bincount(dg, minlength=g)
    wrX = X * wr[:, None]
    xsum = at_risk(wrX) if p else np.zeros((g, 0))
    has = ndeath > 0
    hazard = np.zeros(g)
    varhaz = np.zeros(g)
    xbar = np.zeros((g, p))
    if cd.ties == "breslow":
        hazard[has] = nevent[has] / nrisk[has]
        varhaz[has] = nevent[has] / nrisk[has] ** 2
        xbar[has] = xsum[has] * (nevent[has] / nrisk[has] ** 2)[:, None]
    else:
        erisk = np.bincount(dg, weights=wr[dead], minlength=g)
        xsum2 = _bincount2(dg, wrX[dead], g) if p else np.zeros((g, 0))
        # one pseudo-event per tied death: j = 0 … d − 1
        idx = np.repeat(np.arange(g), ndeath)
        j = np.arange(idx.size) - np.repeat(np.cumsum(ndeath) - ndeath, ndeath)
        frac = j / ndeath[idx]
        den = nrisk[idx] - frac * erisk[idx]
        d = ndeath.astype(float)
        s1 = np.bincount(idx, weights=1.0 / den, minlength=g)
        s2 = np.bincount(idx, weights=1.0 / den ** 2, minlength=g)
        hazard[has] = nevent[has] * s1[has] / d[has]
        varhaz[has] = nevent[has] * s2[has] / d[has]
        if p:
            num = (xsum[idx] - frac[:, None] * xsum2[idx]) / (den ** 2)[:, None]
            xb = _bincount2(idx, num, g)
            xbar[has] = xb[has] * (nevent[has] / d[has])[:, None]
    return BaselineHazard(strata, times, irisk, nevent, ncens, hazard, varhaz, xbar, float(center))

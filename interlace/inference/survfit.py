"""Survival curves of a fitted Cox model at given covariate values (R's ``survfit.coxph``).

For a covariate pattern x₀ with linear predictor η₀ = x₀ᵀβ̂ (+ offset), in stratum s,
with the baseline hazard increments of :func:`interlace.response.baseline.baseline_hazard`
(Breslow's or Efron's estimator, as the fit's ties):

    Λ(t | x₀) = exp(η₀ − c) Λ₀(t),          S(t | x₀) = exp(−Λ(t | x₀)),
    var Λ(t | x₀) = exp(η₀ − c)² [Σ_{u≤t} dV(u) + d(t)ᵀ V_β d(t)],   d(t) = x₀ Λ₀(t) − ∫₀ᵗ x̄ dΛ₀,

(survival's ``coxsurv.fit``; V_β the variance of β̂ the fit reports).  ``std_err`` is the
standard error of Λ (of −log S), and the intervals are R's ``conf.type = "log"`` by default:
S exp(∓ z se), the upper end capped at 1.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.stats as st

from ..errors import InterlaceError
from ..response.baseline import BaselineHazard

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["CONF_TYPES", "SurvivalCurves", "survival_curves"]

#: confidence-interval transformations, as R's ``conf.type``
CONF_TYPES = ("log", "log-log", "plain", "none")


def _conf(surv: np.ndarray, se: np.ndarray, conf_type: str, level: float) -> tuple[np.ndarray, np.ndarray]:
    """R's ``survfit_confint`` with ``logse = TRUE`` (se is the standard error of the cumulative hazard)."""
    z = st.norm.isf((1 - level) / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        if conf_type == "log":
            s = np.where(surv == 0, np.nan, surv)
            return np.exp(np.log(s) - z * se), np.minimum(np.exp(np.log(s) + z * se), 1.0)
        if conf_type == "log-log":
            s = np.where((surv == 0) | (surv == 1), np.nan, surv)
            w = z * se / np.log(s)
            return np.exp(-np.exp(np.log(-np.log(s)) - w)), np.exp(-np.exp(np.log(-np.log(s)) + w))
        if conf_type == "plain":
            w = z * se * surv
            return np.maximum(surv - w, 0.0), np.minimum(surv + w, 1.0)
    raise InterlaceError(f"conf_type must be one of {CONF_TYPES}, got {conf_type!r}")


@dataclass
class SurvivalCurves:
    """Survival curves of a Cox model (R's ``survfit.coxph``), one per covariate pattern and stratum.

    Attributes
    ----------
    table : DataFrame
        Long format, one row per curve and time: ``curve`` (the pattern's label), ``strata``,
        ``time``, ``n_risk``, ``n_event``, ``n_censor`` (weighted), ``surv``, ``cumhaz``,
        ``std_err`` (of the cumulative hazard), ``lower``, ``upper``.
    conf_int : float
    conf_type : str
    """

    table: pd.DataFrame
    conf_int: float = 0.95
    conf_type: str = "log"

    @property
    def curves(self) -> list[tuple[str, str]]:
        """The (pattern, stratum) pairs, in order."""
        pairs = self.table[["curve", "strata"]].drop_duplicates()
        return list(pairs.itertuples(index=False, name=None))

    def curve(self, curve: Any, strata: str | None = None) -> pd.DataFrame:
        """The rows of one curve (``strata`` needed when the pattern has a curve in several strata)."""
        t = self.table
        sel = t["curve"] == str(curve)
        if strata is not None:
            sel &= t["strata"] == strata
        out = t.loc[sel]
        if out.empty:
            raise InterlaceError(f"no curve {curve!r}{'' if strata is None else f' in stratum {strata!r}'}; "
                                 f"curves: {self.curves}")
        if out["strata"].nunique() > 1:
            raise InterlaceError(f"pattern {curve!r} has a curve in each stratum: give strata=")
        return out.reset_index(drop=True)

    def at(self, times: Sequence[float]) -> pd.DataFrame:
        """Each curve at the given times (the step function: its last value at or before each time)."""
        rows = []
        for (c, s), grp in self.table.groupby(["curve", "strata"], sort=False):
            tt = grp["time"].to_numpy()
            for t in times:
                i = int(np.searchsorted(tt, t, side="right")) - 1
                if i < 0:
                    rows.append({"curve": c, "strata": s, "time": t, "surv": 1.0, "cumhaz": 0.0, "std_err": 0.0,
                                 "lower": 1.0, "upper": 1.0})
                else:
                    r = grp.iloc[i]
                    rows.append({"curve": c, "strata": s, "time": t, **{k: r[k] for k in
                                                                           ("surv", "cumhaz", "std_err", "lower",
                                                                            "upper")}})
        return pd.DataFrame(rows)

    def plot(self, ax: Axes | None = None, conf_int: bool = True, **kwargs: Any) -> Figure:
        """Step plot of every curve, with its confidence band (matplotlib).

        Parameters
        ----------
        ax : matplotlib Axes, optional
        conf_int : bool
            Shade the confidence intervals.
        **kwargs
            Passed to ``Axes.step``.
        """
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=(6.5, 4.2))
        else:
            fig = ax.figure
        # name the stratum only when a pattern has a curve in several strata
        several = bool(self.table.groupby("curve")["strata"].nunique().max() > 1)
        for c, s in self.curves:
            d = self.curve(c, s)
            t = np.r_[0.0, d["time"].to_numpy()]
            label = f"{c}, {s}" if several and s else str(c)
            line = ax.step(t, np.r_[1.0, d["surv"].to_numpy()], where="post", label=label, **kwargs)[0]
            if conf_int and self.conf_type != "none":
                ax.fill_between(t, np.r_[1.0, d["lower"].to_numpy()], np.r_[1.0, d["upper"].to_numpy()],
                                step="post", alpha=0.15, color=line.get_color(), linewidth=0)
        ax.set_xlabel("time")
        ax.set_ylabel("survival")
        ax.set_ylim(0, 1.02)
        ax.legend(frameon=False)
        return fig


def survival_curves(bh: BaselineHazard, x0: np.ndarray, eta0: np.ndarray, vcov: np.ndarray,
                    strata0: Sequence[int | None] | None = None, labels: Sequence[str] | None = None,
                    strata_labels: Sequence[str] | None = None, conf_int: float = 0.95, conf_type: str = "log",
                    se_fit: bool = True) -> SurvivalCurves:
    """Curves at the patterns ``x0`` (k × p) with linear predictors ``eta0`` (see the module docstring).

    Parameters
    ----------
    bh : BaselineHazard
    x0 : ndarray (k, p)
    eta0 : ndarray (k,)
        x₀ᵀβ̂ (+ offset), on the scale of the fit's linear predictor (not centred).
    vcov : ndarray (p, p)
        Variance of β̂.
    strata0 : sequence, optional
        Each pattern's stratum code; None (or a None entry) for a curve in every stratum.
    labels : sequence of str, optional
        Names of the patterns (default "1", "2", ...).
    strata_labels : sequence of str, optional
    conf_int : float
    conf_type : {"log", "log-log", "plain", "none"}
    se_fit : bool
        Compute standard errors and intervals.
    """
    if conf_type not in CONF_TYPES:
        raise InterlaceError(f"conf_type must be one of {CONF_TYPES}, got {conf_type!r}")
    if not 0 < conf_int < 1:
        raise InterlaceError(f"conf_int must be in (0, 1), got {conf_int!r}")
    x0 = np.atleast_2d(np.asarray(x0, float))
    eta0 = np.asarray(eta0, float)
    k = eta0.size
    labels = [str(i + 1) for i in range(k)] if labels is None else [str(v) for v in labels]
    cumhaz, cumvar, cumxbar = bh.cumulative()
    codes = np.unique(bh.strata)
    slab = list(strata_labels) if strata_labels else []
    parts = []
    for i in range(k):
        s_i = None if strata0 is None else strata0[i]
        for s in (codes if s_i is None else [s_i]):
            sel = np.flatnonzero(bh.strata == s)
            risk = np.exp(eta0[i] - bh.center)
            H = cumhaz[sel] * risk
            surv = np.exp(-H)
            out = {"curve": labels[i], "strata": slab[s] if s < len(slab) else "", "time": bh.time[sel],
                   "n_risk": bh.n_risk[sel], "n_event": bh.n_event[sel], "n_censor": bh.n_censor[sel],
                   "surv": surv, "cumhaz": H}
            if se_fit:
                dt = cumhaz[sel, None] * x0[i][None, :] - cumxbar[sel]
                var = (cumvar[sel] + np.einsum("ij,jk,ik->i", dt, vcov, dt)) * risk ** 2
                se = np.sqrt(np.maximum(var, 0.0))
                out["std_err"] = se
                if conf_type != "none":
                    out["lower"], out["upper"] = _conf(surv, se, conf_type, conf_int)
            parts.append(pd.DataFrame(out))
    table = pd.concat(parts, ignore_index=True)
    return SurvivalCurves(table, conf_int, conf_type)

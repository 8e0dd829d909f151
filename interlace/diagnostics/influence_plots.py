"""Influence plots of fitted mixed models (matplotlib).

=====================================  =============================================================
function                               what it shows
=====================================  =============================================================
:func:`plot_cooks`                     Cook's distance of each deleted group or observation (lme4's
                                       ``cooks.distance(influence(m, groups = g))``) as an index
                                       plot, a dashed line at 4/k (k deleted units), the largest
                                       labelled
:func:`plot_leverage`                  standardized residuals against leverage (lme4's
                                       ``hatvalues``), linear mixed models
=====================================  =============================================================

Both take ``ax=`` and return the ``Figure``; the artists carry a ``gid``
(``"points"``, ``"stems"``, ``"refline"``, ``"zero"``, ``"hatline"``, ``"label"``) as
in :mod:`interlace.diagnostics.plots`.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import InterlaceError
from .plots import LINE_COLOR, POINT_COLOR, REF_COLOR, _one_axes

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from .influence import InfluenceResult

__all__ = ["INFLUENCE_PLOT_KINDS", "plot_cooks", "plot_influence", "plot_leverage", "standardized_residuals"]


def _top(values: np.ndarray, n: int) -> np.ndarray:
    """Positions of the ``n`` largest finite values, largest first."""
    v = np.where(np.isfinite(values), values, -np.inf)
    order = np.argsort(-v, kind="stable")
    return order[:max(0, min(n, int(np.sum(np.isfinite(values)))))]


def _label_points(ax, x, y, labels, which, fontsize="small") -> None:
    for i in which:
        ax.annotate(str(labels[i]), (x[i], y[i]), xytext=(4, 3), textcoords="offset points",
                    fontsize=fontsize, gid="label")


def plot_cooks(result: Any, groups: str | Sequence[str] | None = None, obs: bool = False,
               influence: InfluenceResult | None = None, approx: bool = False, n_labels: int = 3,
               ax: Axes | None = None, progress: bool = False) -> Figure:
    """Cook's distance of each deleted group or observation, as an index plot.

    One stem and point per unit in level (row) order; the dashed line is the usual
    reference 4/k, k the number of deleted units; the ``n_labels`` largest are labelled.

    Parameters
    ----------
    result : fitted LMM or GLMM result
    groups, obs, approx
        What to delete (see :func:`interlace.diagnostics.influence.influence`); ignored
        when ``influence`` is given.
    influence : InfluenceResult, optional
        From ``result.influence(...)``, to avoid refitting.
    n_labels : int
        How many of the largest distances to label.
    ax : matplotlib Axes, optional
    progress : bool
        Progress bar while refitting.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if influence is None:
        from .influence import influence as compute

        influence = compute(result, groups=groups, obs=obs, approx=approx, progress=progress)
    d = influence.cooks_distance
    k = len(d)
    x, y = np.arange(k), d.to_numpy(float)
    labels = [str(v) for v in d.index]
    fig, ax = _one_axes(ax, (6.5, 3.8))
    ax.vlines(x, 0.0, y, color=POINT_COLOR, lw=1.0, gid="stems")
    ax.plot(x, y, "o", color=POINT_COLOR, ms=4 if k <= 60 else 2.5, gid="points")
    ax.axhline(influence.cutoff, color=LINE_COLOR, lw=1.0, ls="--", gid="refline",
               label=f"4 / {k} = {influence.cutoff:.3g}")
    _label_points(ax, x, y, labels, _top(y, n_labels))
    if k <= 30:
        crowded = k * max(len(s) for s in labels) > 36
        ax.set_xticks(x, labels, rotation=90 if crowded else 0, fontsize="small")
    ax.set_ylim(bottom=0.0)
    unit = influence.unit
    ax.set_xlabel(unit if unit != "observation" else "observation (row position)")
    ax.set_ylabel("Cook's distance")
    method = " (one-step approximation)" if influence.method == "one-step" else ""
    ax.set_title(f"Cook's distance, deleting one {unit} at a time{method}", fontsize="medium")
    ax.legend(loc="best", fontsize="small", frameon=False)
    return fig


def standardized_residuals(result: Any, hat: pd.Series | None = None) -> pd.Series:
    """Internally studentized residuals of a linear mixed model: √wᵢ eᵢ / (σ̂ √(1 − hᵢ)),
    eᵢ = yᵢ − ŷᵢ the conditional residual and hᵢ the leverage (as R's ``rstandard`` for lm).

    Parameters
    ----------
    result : fitted LMM result
    hat : Series, optional
        ``result.hat_values()``, if already computed.
    """
    res = getattr(result, "_results", result)
    if getattr(res, "family", None) is not None or not hasattr(res, "sigma") or not hasattr(res, "reml"):
        raise InterlaceError("standardized residuals against leverage are drawn for linear mixed models: "
                             "lme4's GLMM hat values are not leverages in [0, 1] (they carry the prior weights)")
    from .influence import hat_values

    h = hat_values(res) if hat is None else hat
    r = np.asarray(res.resid_pearson, float) / np.sqrt(1.0 - np.asarray(h, float))
    return pd.Series(r, index=res.model.data.row_labels, name="standardized_resid")


def plot_leverage(result: Any, n_labels: int = 3, ax: Axes | None = None) -> Figure:
    """Standardized residuals against leverage (linear mixed models).

    x: the hat values hᵢ (lme4's ``hatvalues``); y: √wᵢ eᵢ / (σ̂ √(1 − hᵢ))
    (:func:`standardized_residuals`).  Dotted lines at ±2 and 0, a dashed vertical line at
    twice the mean leverage (2 × trace / n).  The ``n_labels`` points with the largest
    hᵢ rᵢ² / (1 − hᵢ) (high leverage and a large residual together) are labelled with
    their row labels.

    Parameters
    ----------
    result : fitted LMM result
    n_labels : int
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    from .influence import hat_values

    res = getattr(result, "_results", result)
    if getattr(res, "family", None) is not None:
        standardized_residuals(res)  # raises with the reason
    h = hat_values(res)
    r = standardized_residuals(res, hat=h).to_numpy()
    hv = h.to_numpy()
    fig, ax = _one_axes(ax, (5.5, 4.2))
    ax.axhline(0.0, color=REF_COLOR, lw=0.8, gid="zero")
    for v in (-2.0, 2.0):
        ax.axhline(v, color=REF_COLOR, lw=0.8, ls=":", gid="refline")
    ax.axvline(2 * hv.mean(), color=LINE_COLOR, lw=1.0, ls="--", gid="hatline",
               label=f"2 × mean leverage = {2 * hv.mean():.3g}")
    ax.scatter(hv, r, s=14, color=POINT_COLOR, alpha=0.8, linewidths=0, gid="points")
    _label_points(ax, hv, r, [str(v) for v in h.index], _top(hv * r * r / (1 - hv), n_labels))
    ax.set_xlabel("leverage (hat value)")
    ax.set_ylabel("standardized residual")
    ax.set_title("Residuals against leverage", fontsize="medium")
    ax.legend(loc="best", fontsize="small", frameon=False)
    return fig


INFLUENCE_PLOT_KINDS = {"cooks": plot_cooks, "leverage": plot_leverage}


def plot_influence(result: Any, kind: str = "cooks", **kwargs: Any) -> Figure:
    """Draw the influence plot ``kind`` (``"cooks"`` or ``"leverage"``) of ``result``;
    ``kwargs`` go to :func:`plot_cooks` or :func:`plot_leverage`."""
    try:
        fn = INFLUENCE_PLOT_KINDS[kind]
    except (KeyError, TypeError):
        raise ValueError(f"kind must be one of {list(INFLUENCE_PLOT_KINDS)}, got {kind!r}") from None
    return fn(result, **kwargs)

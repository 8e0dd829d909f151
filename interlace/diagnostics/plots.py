"""Diagnostic plots of fitted mixed models (matplotlib).

Every function takes a fitted result (:func:`interlace.fit`, :func:`interlace.glmer`)
and returns the matplotlib ``Figure`` it drew on.  Single-panel plots take ``ax=`` to
draw into an existing ``Axes``; multi-panel plots (one panel per random-effect
coefficient, per profiled parameter or per group) take a sequence of Axes, one per
panel, or make their own figure.

matplotlib is imported inside the functions: importing :mod:`interlace` does not need
it (install it with the ``plots`` extra).

=====================================  =============================================================
function                               lme4 / R equivalent
=====================================  =============================================================
:func:`plot_resid_fitted`              ``plot(m)`` (scaled / Pearson residuals against fitted values)
:func:`plot_qq`                        ``qqnorm(resid(m, scaled = TRUE))``; ``qqmath(ranef(m))``
:func:`plot_scale_location`            ``plot(m, sqrt(abs(resid(., scaled = TRUE))) ~ fitted(.))``
:func:`plot_caterpillar`               ``dotplot(ranef(m, condVar = TRUE))``
:func:`plot_profile`                   ``xyplot(profile(m))``
:func:`plot_group_fits`                ``xyplot(y ~ x | g)`` with the fitted lines per group
=====================================  =============================================================

The drawn artists carry a ``gid`` (``"points"``, ``"zero"``, ``"smoother"``,
``"refline"``, ``"estimates"``, ``"intervals"``, ``"zeta"``, ``"zcrit"``,
``"estimate"``, ``"fit"``, ``"population"``) so that they can be found again with
``[a for a in ax.get_children() if a.get_gid() == "points"]``.
"""
from __future__ import annotations

import math
import re
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.stats as st

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["PLOT_KINDS", "plot", "plot_caterpillar", "plot_group_fits", "plot_profile", "plot_qq",
           "plot_resid_fitted", "plot_scale_location"]

POINT_COLOR = "C0"
LINE_COLOR = "C1"
REF_COLOR = "0.35"


# ----------------------------------------------------------------------------- helpers
def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("interlace's plots need matplotlib: pip install 'interlace[plots]'") from exc
    return plt


def _one_axes(ax, figsize):
    """``(fig, ax)``: the given Axes and its figure, or a new single-panel figure."""
    if ax is None:
        fig, ax = _pyplot().subplots(figsize=figsize, layout="constrained")
        return fig, ax
    if isinstance(ax, (list, tuple, np.ndarray)):
        raise TypeError("this plot has one panel: pass a single matplotlib Axes as ax")
    return ax.figure, ax


def _panel_axes(ax, n: int, ncols: int, panel_size, sharex=False, sharey=False):
    """``(fig, axes)`` for ``n`` panels: the given Axes (one, or a sequence of ``n``), or a new grid.

    In a new grid, cells beyond ``n`` are hidden and the tick labels of the panels above
    them shown (shared x axes hide them otherwise).
    """
    if ax is not None:
        axes = list(np.ravel(ax)) if isinstance(ax, (list, tuple, np.ndarray)) else [ax]
        if len(axes) != n:
            raise ValueError(f"this plot has {n} panel{'s' if n != 1 else ''}: pass {n} Axes as ax, "
                             f"got {len(axes)}")
        return axes[0].figure, axes
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, grid = _pyplot().subplots(nrows, ncols, figsize=(panel_size[0] * ncols, panel_size[1] * nrows),
                                   sharex=sharex, sharey=sharey, squeeze=False, layout="constrained")
    cells = list(grid.ravel())
    for k in range(n, len(cells)):
        cells[k].set_visible(False)
        if sharex and k - ncols >= 0:
            cells[k - ncols].xaxis.set_tick_params(labelbottom=True)
    return fig, cells[:n]


def _is_glmm(result) -> bool:
    return getattr(result, "family", None) is not None


def _fitted(result) -> tuple[np.ndarray, str]:
    label = "fitted mean (response scale)" if _is_glmm(result) else "fitted values"
    return np.asarray(result.fittedvalues, float), label


def _residuals(result, kind: str) -> tuple[np.ndarray, str]:
    """Residuals of a kind and their axis label.

    ``"pearson"``: LMM scaled residuals √w (y − ŷ)/σ̂, GLMM Pearson residuals;
    ``"response"``: y − ŷ; ``"deviance"``: GLMM deviance residuals.
    """
    glmm = _is_glmm(result)
    if kind == "pearson":
        r, label = result.resid_pearson, ("Pearson residuals" if glmm else "scaled residuals")
    elif kind == "response":
        r, label = (result.resid_response if glmm else result.resid), "response residuals"
    elif kind == "deviance":
        if not glmm:
            raise ValueError("kind='deviance' is for GLMMs; a linear mixed model's deviance residuals are "
                             "its response residuals (kind='response')")
        r, label = result.resid_deviance, "deviance residuals"
    else:
        raise ValueError(f"kind must be 'pearson', 'response' or 'deviance', got {kind!r}")
    if callable(r):  # GLMM residuals are methods, LMM ones properties
        r = r()
    return np.asarray(r, float), label


def _bin_means(x: np.ndarray, y: np.ndarray, bins: int | None):
    """A running-mean smoother without lowess: the means of x and y in ``bins`` groups of
    (nearly) equal count along x.  Default: one bin per 20 points, 3 to 12 bins.
    None when there are fewer than two points per bin or ``bins == 0``."""
    n = x.size
    if bins is None:
        bins = int(np.clip(n // 20, 3, 12))
    if bins <= 0 or n < 2 * bins:
        return None
    parts = np.array_split(np.argsort(x, kind="stable"), bins)
    return np.array([x[p].mean() for p in parts]), np.array([y[p].mean() for p in parts])


def _draw_smoother(ax, x, y, bins):
    sm = _bin_means(x, y, bins)
    if sm is not None:
        ax.plot(sm[0], sm[1], "-o", color=LINE_COLOR, lw=1.6, ms=3.5, gid="smoother", label="bin means")
        ax.legend(loc="best", fontsize="small", frameon=False, handlelength=1.5)


def _block_names(result) -> list[str]:
    return list(result.random_effects.keys())


def _random_effects_frames(result, term: str | None) -> tuple[str, pd.DataFrame, pd.DataFrame]:
    """Name, BLUPs / conditional modes and their conditional SDs of one grouping factor, as DataFrames."""
    names = _block_names(result)
    if term is None:
        term = names[0]
    if term not in names:
        raise ValueError(f"no random-effects term for {term!r}; the grouping factors are {names}")
    est, sd = result.random_effects[term], result.random_effects_condsd[term]
    if isinstance(est, pd.Series):  # an intercept-only factor
        est, sd = est.to_frame("Intercept"), sd.to_frame("Intercept")
    return term, est, sd


def _level_labels_fontsize(n: int) -> float | None:
    """Tick-label size for ``n`` level names; None: too many to label."""
    if n <= 30:
        return 9.0
    if n <= 60:
        return 7.0
    if n <= 100:
        return 5.0
    return None


def _norm_quantiles(n: int) -> np.ndarray:
    """Normal quantiles of the plotting positions (i − a)/(n + 1 − 2a), a = 3/8 for n ≤ 10 else 1/2
    (R's ``ppoints``, used by ``qqnorm``)."""
    a = 0.375 if n <= 10 else 0.5
    return st.norm.ppf((np.arange(1, n + 1) - a) / (n + 1 - 2 * a))


def qq_line(values: npt.ArrayLike) -> tuple[float, float]:
    """Slope and intercept of the reference line through the first and third quartiles of the
    values and of the standard normal (R's ``qqline``)."""
    v = np.asarray(values, float)
    qy = np.quantile(v[np.isfinite(v)], [0.25, 0.75])
    qz = st.norm.ppf([0.25, 0.75])
    slope = (qy[1] - qy[0]) / (qz[1] - qz[0])
    return float(slope), float(qy[0] - slope * qz[0])


def _qq_panel(ax, values, ylabel: str, title: str) -> None:
    v = np.asarray(values, float)
    y = np.sort(v[np.isfinite(v)])
    z = _norm_quantiles(y.size)
    ax.scatter(z, y, s=14, color=POINT_COLOR, alpha=0.75, linewidths=0, gid="points")
    slope, intercept = qq_line(y)
    ends = np.array([z[0], z[-1]])
    ax.plot(ends, intercept + slope * ends, color=REF_COLOR, lw=1.0, ls="--", gid="refline")
    ax.set_xlabel("standard normal quantiles")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize="medium")


# ----------------------------------------------------------------------------- residual plots
def plot_resid_fitted(result: Any, ax: Axes | None = None, kind: str = "pearson", bins: int | None = None
                      ) -> Figure:
    """Residuals against fitted values, with a zero line and a running-mean smoother.

    The smoother is not lowess: it joins the means of the fitted values and of the
    residuals in ``bins`` groups of equal count along the fitted values (default one
    group per 20 observations, 3 to 12 groups; ``bins=0`` leaves it out).  A trend in it
    suggests a missing term or a wrong link.

    Parameters
    ----------
    result : fitted LMM or GLMM result
    ax : matplotlib Axes, optional
    kind : {"pearson", "response", "deviance"}
        ``"pearson"``: scaled residuals √w (y − ŷ)/σ̂ for an LMM (lme4's
        ``resid(m, scaled = TRUE)``), Pearson residuals for a GLMM; ``"response"``:
        y − ŷ; ``"deviance"``: deviance residuals (GLMMs).  Fitted values of a GLMM are
        the conditional means on the response scale (lme4's ``fitted``).
    bins : int, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, ax = _against_fitted(result, kind, ax, bins, None, "Residuals vs fitted")
    ax.axhline(0.0, color=REF_COLOR, lw=1.0, ls="--", gid="zero")
    return fig


def _against_fitted(result: Any, kind: str, ax: Axes | None, bins: int | None, transform: Any, title: str
                    ) -> tuple[Figure, Axes]:
    """Residuals of ``kind`` (optionally transformed, e.g. √|r|) against fitted values, with the smoother."""
    fitted, xlabel = _fitted(result)
    resid, label = _residuals(result, kind)
    y = resid if transform is None else transform(resid)
    fig, ax = _one_axes(ax, (5.5, 4.0))
    ax.scatter(fitted, y, s=14, color=POINT_COLOR, alpha=0.6, linewidths=0, gid="points")
    _draw_smoother(ax, fitted, y, bins)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(label if transform is None else f"√|{label}|")
    ax.set_title(title, fontsize="medium")
    return fig, ax


def plot_scale_location(result: Any, ax: Axes | None = None, kind: str = "pearson", bins: int | None = None
                        ) -> Figure:
    """√|residuals| against fitted values, with the running-mean smoother of
    :func:`plot_resid_fitted` (bin means, not lowess).  A rising or falling smoother
    suggests a variance that changes with the mean.

    Parameters
    ----------
    result : fitted LMM or GLMM result
    ax : matplotlib Axes, optional
        Axes to draw in (default a new figure).
    kind : {"pearson", "response", "deviance"}
        As in :func:`plot_resid_fitted`; the default (scaled / Pearson residuals) is
        the usual choice.
    bins : int, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, ax = _against_fitted(result, kind, ax, bins, lambda r: np.sqrt(np.abs(r)), "Scale-location")
    ax.set_ylim(bottom=0.0)
    return fig


def plot_qq(result: Any, which: str = "resid", ax: Axes | Sequence[Axes] | None = None, kind: str = "pearson"
            ) -> Figure:
    """Normal QQ plot of the residuals or of the random effects of one grouping factor.

    Points are the sorted values against the normal quantiles of R's ``ppoints``; the
    dashed reference line passes through the first and third quartiles (R's
    ``qqline``; slope and intercept from :func:`qq_line`).

    Parameters
    ----------
    result : fitted LMM or GLMM result
    which : str
        ``"resid"``: the residuals of ``kind`` (one panel).  A grouping-factor name (a
        key of ``result.random_effects``): its BLUPs / conditional modes, one panel per
        coefficient (lme4's ``qqmath(ranef(m))``).
    ax : matplotlib Axes or sequence of Axes, optional
        One Axes per panel.
    kind : {"pearson", "response", "deviance"}
        Residuals for ``which="resid"`` (see :func:`plot_resid_fitted`).

    Returns
    -------
    matplotlib.figure.Figure
    """
    if which == "resid":
        resid, label = _residuals(result, kind)
        fig, ax = _one_axes(ax, (4.5, 4.0))
        _qq_panel(ax, resid, label, f"Normal Q-Q: {label}")
        return fig
    if which not in _block_names(result):
        raise ValueError(f"which must be 'resid' or a grouping factor {_block_names(result)}, got {which!r}")
    term, est, _ = _random_effects_frames(result, which)
    fig, axes = _panel_axes(ax, est.shape[1], ncols=3, panel_size=(3.8, 3.6))
    for a, coef in zip(axes, est.columns):
        _qq_panel(a, est[coef].to_numpy(float), "conditional mode", f"{term}: {coef}")
    return fig


# ----------------------------------------------------------------------------- random effects
def plot_caterpillar(result: Any, term: str | None = None, ax: Axes | Sequence[Axes] | None = None,
                     level: float = 0.95, order: bool | str = True) -> Figure:
    """Caterpillar plot of one grouping factor's random effects (lme4's
    ``dotplot(ranef(m, condVar = TRUE))``).

    Each level's BLUP / conditional mode b̂ is a dot with the bar b̂ ± z·sd, where sd is
    its conditional standard deviation (``result.random_effects_condsd``) and z the
    normal quantile of ``(1 + level) / 2``.  One panel per coefficient; the panels share
    the level axis, so a row is one level throughout.

    Parameters
    ----------
    result : fitted LMM or GLMM result
    term : str, optional
        Grouping factor (a key of ``result.random_effects``); default the first.
    ax : matplotlib Axes or sequence of Axes, optional
        One Axes per coefficient.
    level : float
        Coverage of the bars under normality (0.95: ±1.96 sd).
    order : bool or str
        True: levels sorted by the first coefficient's estimate, smallest at the bottom
        (as lme4's dotplot); a coefficient name: sorted by that coefficient; False: in the
        factor's level order, the first at the top.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    term, est, sd = _random_effects_frames(result, term)
    n, k = est.shape
    if order is True:
        rows = np.argsort(est.iloc[:, 0].to_numpy(float), kind="stable")
    elif order is False or order is None:
        rows = np.arange(n)[::-1]
    elif order in est.columns:
        rows = np.argsort(est[order].to_numpy(float), kind="stable")
    else:
        raise ValueError(f"order must be True, False or a coefficient of {term!r} {list(est.columns)}, "
                         f"got {order!r}")
    est, sd = est.iloc[rows], sd.iloc[rows]
    z = float(st.norm.ppf(0.5 + level / 2))
    height = float(np.clip(0.9 + 0.2 * n, 2.8, 14.0))
    fig, axes = _panel_axes(ax, k, ncols=k, panel_size=(3.4 if k > 1 else 4.8, height), sharey=True)
    ypos = np.arange(n)
    size = _level_labels_fontsize(n)
    for j, (a, coef) in enumerate(zip(axes, est.columns)):
        b, s = est[coef].to_numpy(float), sd[coef].to_numpy(float)
        a.axvline(0.0, color=REF_COLOR, lw=0.8, ls="--", gid="zero")
        a.hlines(ypos, b - z * s, b + z * s, color=POINT_COLOR, lw=1.3, gid="intervals")
        a.plot(b, ypos, "o", color=POINT_COLOR, ms=4 if n <= 60 else 2.5, gid="estimates")
        a.set_title(f"{term}: {coef}", fontsize="medium")
        a.set_ylim(-0.7, n - 0.3)
        a.grid(axis="y", color="0.92", lw=0.6)
        a.set_axisbelow(True)
        if j == 0 or ax is not None:
            if size is None:
                a.set_yticks([])
            else:
                a.set_yticks(ypos, [str(v) for v in est.index], fontsize=size)
            if j == 0:
                a.set_ylabel(term)
    label = f"conditional mode ± {z:.2f} conditional SD"
    if len(axes) > 1 and ax is None:
        fig.supxlabel(label, fontsize="medium")
    else:
        for a in axes:
            a.set_xlabel(label)
    return fig


# ----------------------------------------------------------------------------- profiles
def plot_profile(result: Any, parm: str | int | Sequence[str | int] | None = None, level: float = 0.95,
                 profile: pd.DataFrame | None = None, old_names: bool = False,
                 ax: Axes | Sequence[Axes] | None = None, ncols: int = 3) -> Figure:
    """Likelihood profiles: ζ against each parameter's value (lme4's ``xyplot(profile(m))``).

    ζ is the signed square root of the ML deviance increase when the parameter is fixed
    at the value (``result.profile()``).  Horizontal dotted lines at ±z, z the normal
    quantile of ``(1 + level) / 2`` (±1.96): where the profile crosses them are the
    profile confidence limits (marked by thin vertical lines, from the same
    interpolation as ``conf_int_all``); the solid vertical line is the ML estimate.  A
    straight profile means a Wald interval would do; a curved one, that it would not.

    Parameters
    ----------
    result : fitted LMM result (profiles are computed for linear mixed models)
    parm : str, int or list, optional
        Parameters to draw (passed to ``result.profile``; with ``profile`` given, names
        to keep).  Default: all.
    level : float
    profile : DataFrame, optional
        A table from ``result.profile()``, to avoid computing it again.
    old_names : bool
        Parameter names ``.sig01`` … (True) or ``sd_Intercept|Subject`` … (False, the
        default here: they make readable panel titles).  Used when the profile is computed.
    ax : sequence of Axes, optional
        One per parameter.
    ncols : int
        Panels per row.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if profile is None:
        if not hasattr(result, "profile"):
            raise TypeError(f"{type(result).__name__} has no profile(): profiles are computed for linear "
                            "mixed models (interlace.fit)")
        profile = result.profile(parm=parm, old_names=old_names)
    elif parm is not None:
        keep = [parm] if isinstance(parm, str) else list(parm)
        missing = [p for p in keep if p not in set(profile["parameter"])]
        if missing:
            raise ValueError(f"parameters {missing} are not in the profile table")
        profile = profile[profile["parameter"].isin(keep)]
    present = list(dict.fromkeys(profile["parameter"]))
    names = [n for n in (profile.attrs.get("names") or present) if n in present]
    if not names:
        raise ValueError("the profile table is empty")
    z = float(st.norm.ppf(0.5 + level / 2))
    estimates = profile.attrs.get("estimates", {})
    try:
        from ..inference.profile import profile_conf_int

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            limits = profile_conf_int(profile, level, parm=names)
    except Exception:  # noqa: BLE001 - the limits only decorate the plot
        limits = None
    fig, axes = _panel_axes(ax, len(names), ncols=ncols, panel_size=(3.2, 2.7), sharey=True)
    cols = min(ncols, len(names))
    for i, (a, name) in enumerate(zip(axes, names)):
        sub = profile[profile["parameter"] == name].sort_values("value")
        sub = sub[np.isfinite(sub["zeta"].to_numpy(float))]
        a.axhline(z, color=REF_COLOR, lw=0.9, ls=":", gid="zcrit")
        a.axhline(-z, color=REF_COLOR, lw=0.9, ls=":", gid="zcrit")
        a.plot(sub["value"], sub["zeta"], "-o", color=POINT_COLOR, lw=1.4, ms=2.5, gid="zeta")
        if name in estimates:
            a.axvline(estimates[name], color=REF_COLOR, lw=0.9, gid="estimate")
        if limits is not None and name in limits.index:
            for v in limits.loc[name].to_numpy(float):
                if np.isfinite(v):
                    a.axvline(v, color=LINE_COLOR, lw=0.8, ls="--", gid="limit")
        a.set_title(name, fontsize="medium")
        a.tick_params(labelsize="small")
        if ax is not None or i % cols == 0:
            a.set_ylabel("ζ", rotation=0, labelpad=8)
    return fig


# ----------------------------------------------------------------------------- per-group fits
def _model_rows(result) -> pd.DataFrame:
    """The data rows used in the fit (after dropping missing values)."""
    model = result.model
    frame = getattr(model, "model_frame", None)
    data = frame.data if frame is not None else getattr(model.data, "frame", None)
    if data is None:
        raise ValueError("the model keeps no data frame (was it fitted from arrays?)")
    return data


def _group_codes(result, data: pd.DataFrame, group: str | None):
    """Per-row codes and level labels of ``group``: a grouping factor of the model, or a column."""
    terms = result.model.random_effects_structure.terms
    names = [t.name for t in terms]
    if group is None:
        group = names[0]
    if group in names:
        t = terms[names.index(group)]
        return group, np.asarray(t.codes), [str(v) for v in t.levels]
    if group in data.columns:
        codes, levels = pd.factorize(data[group], sort=True)
        return group, np.asarray(codes), [str(v) for v in levels]
    raise ValueError(f"group must be a grouping factor {names} or a column of the data, got {group!r}")


def _response_label(result) -> str:
    """The response as the model holds it: a binomial ``cbind(a, n - a)`` response is the
    proportion ``a / n`` (``a / (a + b)`` for ``cbind(a, b)``)."""
    formula = getattr(result.model, "formula", None)
    lhs = formula.split("~")[0].strip() if isinstance(formula, str) and "~" in formula else ""
    m = re.fullmatch(r"cbind\(\s*(.+?)\s*,\s*(.+?)\s*\)", lhs)
    if m is None:
        return lhs or str(result.model.endog_names)
    a, b = m.groups()
    total = re.fullmatch(rf"(.+?)\s*-\s*{re.escape(a)}", b)
    return f"{a} / {total.group(1) if total else f'({a} + {b})'}"


def plot_group_fits(result: Any, x: str, group: str | None = None, max_groups: int = 16, ncols: int | None = None,
                    levels: Sequence[Any] | None = None) -> Figure:
    """Per-group fitted lines over the data: small multiples, one panel per level.

    Each panel shows the observations of one level (response against ``x``), the
    conditional fit (solid: fixed effects plus that level's random effects, lme4's
    ``fitted``) and the population fit (dashed: fixed effects only).  With more than one
    observation at an ``x`` value the lines join the mean fitted value there, so with
    other covariates varying within a group the line is that average, not a
    straight line.  For GLMMs both fits are on the response scale.  With a categorical
    ``x`` the fits are drawn as short ticks per category, not joined by lines (the
    categories have no order to interpolate along).

    Parameters
    ----------
    result : fitted LMM or GLMM result
    x : str
        Column for the horizontal axis; numeric, or categorical (its categories in
        sorted order, equally spaced).
    group : str, optional
        A grouping factor of the model (default the first) or a column of the data.
    max_groups : int
        Draw the first ``max_groups`` levels (in level order); the title says how many
        are shown.
    ncols : int, optional
        Panels per row (default about the square root of the number of panels).
    levels : list, optional
        The levels to draw, in this order (instead of the first ``max_groups``), e.g. the
        groups an influence or caterpillar plot singled out.

    Returns
    -------
    matplotlib.figure.Figure
    """
    data = _model_rows(result)
    if x not in data.columns:
        raise ValueError(f"x must be a column of the data {list(data.columns)}, got {x!r}")
    wanted = levels
    group, codes, levels = _group_codes(result, data, group)
    xs = data[x]
    ticks = None
    if pd.api.types.is_numeric_dtype(xs) and not pd.api.types.is_bool_dtype(xs):
        xv = xs.to_numpy(float)
    else:
        xcodes, cats = pd.factorize(xs, sort=True)
        xv, ticks = xcodes.astype(float), [str(c) for c in cats]
    y = np.asarray(result.model.endog, float)
    fit = np.asarray(result.fittedvalues, float)
    pop = np.asarray(result.predict(include_re=False), float)
    seen = [c for c in range(len(levels)) if np.any(codes == c)]
    shown = seen[:max(1, int(max_groups))]
    if wanted is not None:
        by_label = {str(v): i for i, v in enumerate(levels)}
        unknown = [v for v in wanted if str(v) not in by_label]
        if unknown:
            raise ValueError(f"level(s) {unknown} are not levels of {group!r}")
        shown = [by_label[str(v)] for v in wanted]
    n = len(shown)
    ncols = ncols or math.ceil(math.sqrt(n))
    fig, axes = _panel_axes(None, n, ncols=ncols, panel_size=(2.3, 1.9), sharex=True, sharey=True)
    for a, c in zip(axes, shown):
        rows = codes == c
        a.scatter(xv[rows], y[rows], s=10, color=POINT_COLOR, alpha=0.75, linewidths=0, gid="points")
        ux, inv = np.unique(xv[rows], return_inverse=True)
        mean_fit = np.bincount(inv, fit[rows]) / np.bincount(inv)
        mean_pop = np.bincount(inv, pop[rows]) / np.bincount(inv)
        # one x, or categories: ticks, not a line
        ticked = ux.size == 1 or ticks is not None
        mark = {"marker": "_", "ms": 9, "clip_on": False, "ls": "none"} if ticked else {}
        a.plot(ux, mean_pop, color=REF_COLOR, lw=1.0, gid="population", **({"ls": "--"} | mark))
        a.plot(ux, mean_fit, color=LINE_COLOR, lw=1.5, gid="fit", **mark)
        a.set_title(levels[c], fontsize="small", pad=2)
        a.tick_params(labelsize="small")
        if ticks is not None:
            a.set_xticks(range(len(ticks)), ticks)
    ylabel = _response_label(result)
    title = f"{ylabel} by {group}: data, conditional fit (solid), population fit (dashed)"
    if wanted is not None:
        title += f"; {n} chosen of {len(seen)} levels"
    elif n < len(seen):
        title += f"; first {n} of {len(seen)} levels"
    fig.suptitle(title, fontsize="medium")
    fig.supxlabel(x, fontsize="medium")
    fig.supylabel(ylabel, fontsize="medium")
    return fig


# ----------------------------------------------------------------------------- dispatch
PLOT_KINDS = {
    "resid_fitted": plot_resid_fitted,
    "qq": plot_qq,
    "scale_location": plot_scale_location,
    "caterpillar": plot_caterpillar,
    "profile": plot_profile,
    "group_fits": plot_group_fits,
}


def plot(result: Any, kind: str = "resid_fitted", **kwargs: Any) -> Figure:
    """Draw the diagnostic plot ``kind`` of ``result``: one of :data:`PLOT_KINDS`
    (``"resid_fitted"``, ``"qq"``, ``"scale_location"``, ``"caterpillar"``,
    ``"profile"``, ``"group_fits"``); ``kwargs`` go to that ``plot_<kind>`` function."""
    try:
        fn = PLOT_KINDS[kind]
    except (KeyError, TypeError):
        raise ValueError(f"kind must be one of {list(PLOT_KINDS)}, got {kind!r}") from None
    return fn(result, **kwargs)

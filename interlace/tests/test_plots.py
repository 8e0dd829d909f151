"""Diagnostic plots: what is drawn is the data it claims to show.

Every check reads the drawn artists back (found by their ``gid``) and compares them
with the result's own numbers, computed here independently where the plot computes
something (plotting positions, the QQ reference line, bin means, interval ends).
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import scipy.stats as st

import interlace

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from interlace.diagnostics import (
    plot_caterpillar,
    plot_group_fits,
    plot_profile,
    plot_qq,
    plot_resid_fitted,
    plot_scale_location,
)

Z975 = st.norm.ppf(0.975)


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def sleep():
    data = interlace.datasets.load("sleepstudy")
    return interlace.fit("Reaction ~ Days", data, random="(Days|Subject)")


@pytest.fixture(scope="module")
def penicillin():
    data = interlace.datasets.load("Penicillin")
    return interlace.fit("diameter ~ 1", data, random=["(1|plate)", "(1|sample)"])


@pytest.fixture(scope="module")
def cbpp():
    data = interlace.datasets.load("cbpp")
    data["period"] = data["period"].astype(str)
    return interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", data, family="binomial")


@pytest.fixture(scope="module")
def sleep_profile(sleep):
    return sleep.profile(old_names=False)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def by_gid(ax, gid):
    return [a for a in ax.get_children() if a.get_gid() == gid]


def one(ax, gid):
    found = by_gid(ax, gid)
    assert len(found) == 1, f"{len(found)} artists with gid {gid!r}"
    return found[0]


def visible_axes(fig):
    return [a for a in fig.axes if a.get_visible()]


def fig_text(fig, which):
    """The figure's suptitle / supxlabel / supylabel text (getters exist from matplotlib 3.8)."""
    getter = getattr(fig, f"get_{which}", None)
    if getter is not None:
        return getter()
    t = getattr(fig, f"_{which}", None)
    return t.get_text() if t is not None else ""


def ppoints(n):
    a = 3 / 8 if n <= 10 else 1 / 2
    return (np.arange(1, n + 1) - a) / (n + 1 - 2 * a)


# ----------------------------------------------------------------------------- import
def test_importing_interlace_does_not_import_matplotlib():
    code = ("import sys, interlace, interlace.diagnostics, interlace.diagnostics.plots; "
            "assert 'matplotlib' not in sys.modules, 'matplotlib imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# ----------------------------------------------------------------------------- residuals
def test_resid_fitted_lmm_draws_the_scaled_residuals(sleep):
    fig = plot_resid_fitted(sleep)
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    pts = one(ax, "points").get_offsets()
    assert pts.shape == (180, 2)
    np.testing.assert_allclose(pts[:, 0], sleep.fittedvalues.to_numpy())
    np.testing.assert_allclose(pts[:, 1], sleep.resid_pearson.to_numpy())
    np.testing.assert_allclose(one(ax, "zero").get_ydata(), [0, 0])
    assert ax.get_xlabel() == "fitted values" and ax.get_ylabel() == "scaled residuals"


def test_resid_fitted_smoother_is_equal_count_bin_means(sleep):
    ax = plot_resid_fitted(sleep).axes[0]
    x, y = sleep.fittedvalues.to_numpy(), sleep.resid_pearson.to_numpy()
    o = np.argsort(x, kind="stable")
    bins = np.array_split(o, 9)  # 180 points: 180 // 20 = 9 bins of 20
    sm = one(ax, "smoother").get_xydata()
    np.testing.assert_allclose(sm[:, 0], [x[b].mean() for b in bins])
    np.testing.assert_allclose(sm[:, 1], [y[b].mean() for b in bins])
    assert by_gid(plot_resid_fitted(sleep, bins=0).axes[0], "smoother") == []
    assert len(one(plot_resid_fitted(sleep, bins=4).axes[0], "smoother").get_xdata()) == 4


def test_resid_fitted_kinds_and_given_axes(sleep, cbpp):
    fig, axes = plt.subplots(1, 3)
    for a, kind, r, label in [(axes[0], "pearson", cbpp.resid_pearson(), "Pearson residuals"),
                              (axes[1], "deviance", cbpp.resid_deviance(), "deviance residuals"),
                              (axes[2], "response", cbpp.resid_response(), "response residuals")]:
        assert plot_resid_fitted(cbpp, ax=a, kind=kind) is fig
        pts = one(a, "points").get_offsets()
        assert pts.shape == (56, 2)
        np.testing.assert_allclose(pts[:, 0], cbpp.fittedvalues.to_numpy())
        np.testing.assert_allclose(pts[:, 1], r.to_numpy())
        assert a.get_ylabel() == label and a.get_xlabel() == "fitted mean (response scale)"
    np.testing.assert_allclose(one(plot_resid_fitted(sleep, kind="response").axes[0], "points").get_offsets()[:, 1],
                               sleep.resid.to_numpy())
    with pytest.raises(ValueError, match="deviance"):
        plot_resid_fitted(sleep, kind="deviance")
    with pytest.raises(ValueError, match="kind must be"):
        plot_resid_fitted(sleep, kind="studentized")
    with pytest.raises(TypeError, match="one panel"):
        plot_resid_fitted(sleep, ax=axes)


def test_scale_location(sleep, cbpp):
    ax = plot_scale_location(sleep).axes[0]
    pts = one(ax, "points").get_offsets()
    np.testing.assert_allclose(pts[:, 0], sleep.fittedvalues.to_numpy())
    np.testing.assert_allclose(pts[:, 1], np.sqrt(np.abs(sleep.resid_pearson.to_numpy())))
    assert ax.get_ylabel() == "√|scaled residuals|"
    assert ax.get_ylim()[0] == 0
    ax = plot_scale_location(cbpp).axes[0]
    np.testing.assert_allclose(one(ax, "points").get_offsets()[:, 1], np.sqrt(np.abs(cbpp.resid_pearson())))
    assert ax.get_ylabel() == "√|Pearson residuals|"


# ----------------------------------------------------------------------------- QQ plots
def _check_qq_panel(ax, values):
    y = np.sort(np.asarray(values, float))
    z = st.norm.ppf(ppoints(y.size))
    pts = one(ax, "points").get_offsets()
    np.testing.assert_allclose(pts[:, 0], z)
    np.testing.assert_allclose(pts[:, 1], y)
    # the reference line passes through the quartiles (R's qqline)
    q1, q3 = np.percentile(y, [25, 75])
    slope = (q3 - q1) / (st.norm.ppf(0.75) - st.norm.ppf(0.25))
    intercept = q1 - slope * st.norm.ppf(0.25)
    (x0, x1), (y0, y1) = one(ax, "refline").get_data()
    assert (x0, x1) == (z[0], z[-1])
    np.testing.assert_allclose((y1 - y0) / (x1 - x0), slope)
    np.testing.assert_allclose(y0 - x0 * (y1 - y0) / (x1 - x0), intercept)
    assert ax.get_xlabel() == "standard normal quantiles"


def test_qq_residuals(sleep, cbpp):
    ax = plot_qq(sleep).axes[0]
    _check_qq_panel(ax, sleep.resid_pearson)
    assert ax.get_ylabel() == "scaled residuals"
    # n > 10: plotting positions (i - 1/2) / n, as scipy's probplot would not give
    assert one(ax, "points").get_offsets()[0, 0] == pytest.approx(st.norm.ppf(0.5 / 180))
    _check_qq_panel(plot_qq(cbpp, kind="deviance").axes[0], cbpp.resid_deviance())


def test_qq_random_effects_one_panel_per_coefficient(sleep, penicillin):
    fig = plot_qq(sleep, "Subject")
    axes = visible_axes(fig)
    assert len(axes) == 2
    blups = sleep.random_effects["Subject"]
    for ax, coef in zip(axes, ["Intercept", "Days"]):
        _check_qq_panel(ax, blups[coef])
        assert ax.get_title() == f"Subject: {coef}"
    # six levels: R's ppoints uses a = 3/8
    ax = plot_qq(penicillin, "sample").axes[0]
    _check_qq_panel(ax, penicillin.random_effects["sample"])
    assert one(ax, "points").get_offsets()[0, 0] == pytest.approx(st.norm.ppf((1 - 3 / 8) / (6 + 1 - 3 / 4)))
    with pytest.raises(ValueError, match="grouping factor"):
        plot_qq(sleep, "subject")


# ----------------------------------------------------------------------------- caterpillar
def _check_caterpillar_panel(ax, est, sd, z):
    dots = one(ax, "estimates").get_xydata()
    segs = np.array(one(ax, "intervals").get_segments())
    np.testing.assert_allclose(dots[:, 1], np.arange(len(est)))
    np.testing.assert_allclose(dots[:, 0], est)
    np.testing.assert_allclose(segs[:, 0, 0], est - z * sd)
    np.testing.assert_allclose(segs[:, 1, 0], est + z * sd)
    np.testing.assert_allclose(segs[:, 0, 1], np.arange(len(est)))
    np.testing.assert_allclose(one(ax, "zero").get_xdata(), [0, 0])


def test_caterpillar_slopes_ordered_by_intercept(sleep):
    fig = plot_caterpillar(sleep, "Subject")
    axes = visible_axes(fig)
    assert [a.get_title() for a in axes] == ["Subject: Intercept", "Subject: Days"]
    est, sd = sleep.random_effects["Subject"], sleep.random_effects_condsd["Subject"]
    order = np.argsort(est["Intercept"].to_numpy())
    for ax, coef in zip(axes, ["Intercept", "Days"]):
        _check_caterpillar_panel(ax, est[coef].to_numpy()[order], sd[coef].to_numpy()[order], Z975)
    # smallest intercept at the bottom, and the rows are levels throughout
    assert np.all(np.diff(one(axes[0], "estimates").get_xdata()) >= 0)
    labels = [t.get_text() for t in axes[0].get_yticklabels()]
    assert labels == [str(v) for v in est.index[order]]
    assert labels[0] == str(est["Intercept"].idxmin()) and labels[-1] == str(est["Intercept"].idxmax())
    assert axes[0].get_ylabel() == "Subject"
    assert "1.96" in fig_text(fig, "supxlabel")


def test_caterpillar_order_and_level(sleep):
    est, sd = sleep.random_effects["Subject"], sleep.random_effects_condsd["Subject"]
    z90 = st.norm.ppf(0.95)
    axes = visible_axes(plot_caterpillar(sleep, "Subject", level=0.9, order="Days"))
    order = np.argsort(est["Days"].to_numpy())
    for ax, coef in zip(axes, ["Intercept", "Days"]):
        _check_caterpillar_panel(ax, est[coef].to_numpy()[order], sd[coef].to_numpy()[order], z90)
    assert np.all(np.diff(one(axes[1], "estimates").get_xdata()) >= 0)
    axes = visible_axes(plot_caterpillar(sleep, "Subject", order=False))
    rev = np.arange(len(est))[::-1]  # level order, the first level at the top
    _check_caterpillar_panel(axes[0], est["Intercept"].to_numpy()[rev], sd["Intercept"].to_numpy()[rev], Z975)
    assert axes[0].get_yticklabels()[-1].get_text() == str(est.index[0])
    with pytest.raises(ValueError, match="order"):
        plot_caterpillar(sleep, "Subject", order="days")
    with pytest.raises(ValueError, match="level"):
        plot_caterpillar(sleep, "Subject", level=95)


def test_caterpillar_intercepts_crossed_and_glmm(penicillin, cbpp):
    fig, (a1, a2) = plt.subplots(1, 2)
    for ax, term, n in [(a1, "plate", 24), (a2, "sample", 6)]:
        assert plot_caterpillar(penicillin, term, ax=ax) is fig
        est, sd = penicillin.random_effects[term], penicillin.random_effects_condsd[term]
        order = np.argsort(est.to_numpy())
        _check_caterpillar_panel(ax, est.to_numpy()[order], sd.to_numpy()[order], Z975)
        assert len(ax.get_yticklabels()) == n and ax.get_ylabel() == term
        assert ax.get_title() == f"{term}: Intercept"
    ax = plot_caterpillar(cbpp).axes[0]  # default: the first grouping factor
    est, sd = cbpp.random_effects["herd"], cbpp.random_effects_condsd["herd"]
    order = np.argsort(est.to_numpy())
    _check_caterpillar_panel(ax, est.to_numpy()[order], sd.to_numpy()[order], Z975)
    with pytest.raises(ValueError, match="1 panel: pass 1 Axes"):
        plot_caterpillar(penicillin, "plate", ax=[a1, a2])


# ----------------------------------------------------------------------------- profile
def test_profile_zeta_equals_the_profile_table(sleep, sleep_profile):
    fig = plot_profile(sleep, profile=sleep_profile)
    axes = visible_axes(fig)
    names = sleep_profile.attrs["names"]
    assert [a.get_title() for a in axes] == names
    for ax, name in zip(axes, names):
        sub = sleep_profile[sleep_profile["parameter"] == name].sort_values("value")
        line = one(ax, "zeta")
        np.testing.assert_allclose(line.get_xdata(), sub["value"].to_numpy())
        np.testing.assert_allclose(line.get_ydata(), sub["zeta"].to_numpy())
        crit = sorted(ln.get_ydata()[0] for ln in by_gid(ax, "zcrit"))
        np.testing.assert_allclose(crit, [-Z975, Z975])
        assert one(ax, "estimate").get_xdata()[0] == pytest.approx(sleep_profile.attrs["estimates"][name])
        # the marked limits are where the profile crosses ±z
        limits = sorted(ln.get_xdata()[0] for ln in by_gid(ax, "limit"))
        assert len(limits) == 2
        np.testing.assert_allclose(np.interp(limits, line.get_xdata(), line.get_ydata()), [-Z975, Z975], atol=0.05)
    assert axes[0].get_ylabel() == "ζ" and axes[3].get_ylabel() == "ζ"


def test_profile_subset_computed_or_given(sleep, sleep_profile, cbpp):
    ax = visible_axes(plot_profile(sleep, parm=["Days"], profile=sleep_profile))
    assert len(ax) == 1 and ax[0].get_title() == "Days"
    own = sleep.profile(parm="Days", old_names=True)
    (ax,) = visible_axes(plot_profile(sleep, parm="Days", old_names=True, level=0.9))
    np.testing.assert_allclose(one(ax, "zeta").get_ydata(), own.sort_values("value")["zeta"].to_numpy())
    np.testing.assert_allclose(sorted(ln.get_ydata()[0] for ln in by_gid(ax, "zcrit")),
                               [-st.norm.ppf(0.95), st.norm.ppf(0.95)])
    with pytest.raises(ValueError, match="not in the profile"):
        plot_profile(sleep, parm="days", profile=sleep_profile)
    with pytest.raises(TypeError, match="profile"):
        plot_profile(cbpp)


# ----------------------------------------------------------------------------- group fits
def test_group_fits_sleepstudy(sleep):
    fig = plot_group_fits(sleep, "Days", "Subject")
    axes = visible_axes(fig)
    assert len(axes) == 16
    assert "first 16 of 18 levels" in fig_text(fig, "suptitle")
    assert fig_text(fig, "supxlabel") == "Days" and fig_text(fig, "supylabel") == "Reaction"
    data = interlace.datasets.load("sleepstudy")
    fitted = sleep.fittedvalues.to_numpy()
    pop = sleep.fe_params["Intercept"] + sleep.fe_params["Days"] * data["Days"].to_numpy()
    levels = sorted(data["Subject"].unique())
    for ax, subj in zip(axes, levels[:16]):
        rows = (data["Subject"] == subj).to_numpy()
        assert ax.get_title() == str(subj)
        pts = one(ax, "points").get_offsets()
        np.testing.assert_allclose(pts[:, 0], data["Days"][rows])
        np.testing.assert_allclose(pts[:, 1], data["Reaction"][rows])
        o = np.argsort(data["Days"].to_numpy()[rows])
        np.testing.assert_allclose(one(ax, "fit").get_ydata(), fitted[rows][o])
        np.testing.assert_allclose(one(ax, "population").get_ydata(), pop[rows][o])
    assert len(visible_axes(plot_group_fits(sleep, "Days", max_groups=18))) == 18
    chosen = plot_group_fits(sleep, "Days", levels=[337, 308])
    assert [a.get_title() for a in visible_axes(chosen)] == ["337", "308"]
    assert "2 chosen of 18 levels" in fig_text(chosen, "suptitle")
    with pytest.raises(ValueError, match=r"\[999\] are not levels of 'Subject'"):
        plot_group_fits(sleep, "Days", levels=[999])


def test_group_fits_categorical_x_glmm(cbpp):
    fig = plot_group_fits(cbpp, "period", "herd")
    axes = visible_axes(fig)
    assert len(axes) == 15 and "first" not in fig_text(fig, "suptitle")
    assert fig_text(fig, "supylabel") == "incidence / size"  # the proportion the model fits
    assert [t.get_text() for t in axes[-1].get_xticklabels()] == ["1", "2", "3", "4"]
    herd8 = axes[[a.get_title() for a in axes].index("8")]
    assert one(herd8, "fit").get_marker() == "_"  # one observation: a tick instead of a line
    herd1 = axes[[a.get_title() for a in axes].index("1")]
    assert one(herd1, "fit").get_linestyle() == "None"  # categories are not joined by lines
    assert one(herd1, "fit").get_xdata().size == 4
    herd8_rows = cbpp.model.model_frame.data["herd"] == 8
    np.testing.assert_allclose(one(herd8, "fit").get_ydata(), cbpp.fittedvalues[herd8_rows])
    with pytest.raises(ValueError, match="column"):
        plot_group_fits(cbpp, "Period")
    with pytest.raises(ValueError, match="grouping factor"):
        plot_group_fits(cbpp, "period", "farm")


# ----------------------------------------------------------------------------- result.plot
def test_result_plot_dispatches(sleep, penicillin):
    default = sleep.plot()
    np.testing.assert_allclose(one(default.axes[0], "points").get_offsets()[:, 1], sleep.resid_pearson)
    fig = penicillin.plot("caterpillar", term="sample", level=0.5)
    est, sd = penicillin.random_effects["sample"], penicillin.random_effects_condsd["sample"]
    order = np.argsort(est.to_numpy())
    _check_caterpillar_panel(fig.axes[0], est.to_numpy()[order], sd.to_numpy()[order], st.norm.ppf(0.75))
    assert len(visible_axes(sleep.plot("qq", which="Subject"))) == 2
    assert visible_axes(sleep.plot("scale_location"))[0].get_title() == "Scale-location"
    with pytest.raises(ValueError, match="kind must be one of"):
        sleep.plot("dotplot")

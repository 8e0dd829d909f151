"""Influence plots (``plot_cooks``, ``plot_influence``): what is drawn is the data it claims to show.

Separate from ``test_influence`` so that a missing matplotlib skips only these tests,
not the lme4 comparisons there.  The fits are ``test_influence``'s reference cases.
"""
from __future__ import annotations

import numpy as np
import pytest

from interlace.errors import InterlaceError
from interlace.tests.test_influence import _fit

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")


@pytest.fixture(scope="module")
def sleep():
    return _fit("sleepstudy_subject")


@pytest.fixture(scope="module")
def sleep_subject(sleep):
    return sleep[1].influence(groups="Subject", progress=False)


@pytest.fixture(scope="module")
def cbpp():
    return _fit("cbpp_herd")


@pytest.fixture(scope="module")
def cbpp_herd(cbpp):
    return cbpp[1].influence(groups="herd", progress=False)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def _gid(ax, gid):
    return [a for a in ax.get_children() if a.get_gid() == gid]


def test_cooks_plot_draws_the_distances(sleep, sleep_subject):
    from interlace.diagnostics import plot_cooks

    fig = plot_cooks(sleep[1], influence=sleep_subject)
    (ax,) = fig.axes
    (pts,) = _gid(ax, "points")
    np.testing.assert_allclose(pts.get_xdata(), np.arange(18))
    np.testing.assert_allclose(pts.get_ydata(), sleep_subject.cooks_distance.to_numpy())
    (ref,) = _gid(ax, "refline")
    np.testing.assert_allclose(ref.get_ydata(), [4 / 18, 4 / 18])
    labels = [t.get_text() for t in _gid(ax, "label")]
    assert labels == [str(v) for v in sleep_subject.cooks_distance.nlargest(3).index]
    assert [t.get_text() for t in ax.get_xticklabels()] == [str(v) for v in sleep_subject.cooks_distance.index]
    assert ax.get_ylabel() == "Cook's distance" and ax.get_xlabel() == "Subject"


def test_cooks_plot_via_result_and_given_axes(cbpp, cbpp_herd):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2)
    assert cbpp[1].plot_influence("cooks", influence=cbpp_herd, ax=axes[1], n_labels=5) is fig
    (pts,) = _gid(axes[1], "points")
    assert len(pts.get_ydata()) == 15
    assert len(_gid(axes[1], "label")) == 5
    fig = cbpp[1].plot_influence(groups="herd", approx=False)  # computes the influence itself
    np.testing.assert_allclose(_gid(fig.axes[0], "points")[0].get_ydata(), cbpp_herd.cooks_distance, rtol=1e-6)
    with pytest.raises(ValueError, match="kind must be"):
        cbpp[1].plot_influence("dfbetas")


def test_leverage_plot(sleep):
    res = sleep[1]
    fig = res.plot_influence("leverage")
    (ax,) = fig.axes
    (pts,) = _gid(ax, "points")
    xy = pts.get_offsets()
    h = res.hat_values().to_numpy()
    r = res.resid.to_numpy() / (res.sigma * np.sqrt(1 - h))
    assert xy.shape == (180, 2)
    np.testing.assert_allclose(xy[:, 0], h)
    np.testing.assert_allclose(xy[:, 1], r)
    assert sorted(line.get_ydata()[0] for line in _gid(ax, "refline")) == [-2.0, 2.0]
    np.testing.assert_allclose(_gid(ax, "hatline")[0].get_xdata(), [2 * h.mean()] * 2)
    score = h * r * r / (1 - h)
    assert [t.get_text() for t in _gid(ax, "label")] == [str(i) for i in np.argsort(-score)[:3]]
    assert ax.get_xlabel() == "leverage (hat value)"


def test_leverage_plot_refuses_glmms(cbpp):
    with pytest.raises(InterlaceError, match="linear mixed models"):
        cbpp[1].plot_influence("leverage")



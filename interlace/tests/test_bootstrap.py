"""``result.bootstrap_se``: the cluster bootstrap over levels of the primary grouping factor.

Reference (hand derivation): with G clusters of equal size m, the mean of a cluster
resample is the mean of the G drawn cluster means, so the cluster bootstrap of the
mean is the ordinary bootstrap of the G cluster means, whose exact standard error is

    SE* = sqrt((G - 1) / G) * sd(cluster means, ddof=1) / sqrt(G).

sleepstudy has G = 18 subjects with m = 10 days each.  With B = 4000 replicates the
Monte-Carlo relative error of the estimated SE is about 1 / sqrt(2 (B - 1)) = 1.1 %;
the test allows 5 % (about 4.5 Monte-Carlo standard deviations).
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import interlace


@pytest.fixture(scope="module")
def res(sleep):
    return interlace.fit("Reaction ~ Days", sleep, random=["(Days | Subject)"])


def test_equal_clusters(sleep):
    sizes = sleep.groupby("Subject").size()
    assert len(sizes) == 18 and set(sizes) == {10}


def test_same_seed_same_value_different_seed_different(res):
    a = res.bootstrap_se(statistic="median", n_bootstrap=300, seed=1)
    b = res.bootstrap_se(statistic="median", n_bootstrap=300, seed=1)
    c = res.bootstrap_se(statistic="median", n_bootstrap=300, seed=2)
    assert a == b
    assert a != c
    assert a > 0 and c > 0


@pytest.mark.parametrize("name, func", [("mean", lambda df: df["Reaction"].mean()),
                                        ("median", lambda df: float(np.median(df["Reaction"])))])
def test_string_statistic_equals_callable(res, name, func):
    a = res.bootstrap_se(statistic=name, n_bootstrap=200, seed=11)
    b = res.bootstrap_se(statistic=func, n_bootstrap=200, seed=11)
    assert a == pytest.approx(b, rel=1e-12)


def test_mean_matches_analytic_cluster_bootstrap_se(res, sleep):
    cm = sleep.groupby("Subject")["Reaction"].mean().to_numpy()
    G = cm.size
    analytic = np.sqrt((G - 1) / G) * np.std(cm, ddof=1) / np.sqrt(G)
    se = res.bootstrap_se(statistic="mean", n_bootstrap=4000, seed=123)
    assert se == pytest.approx(analytic, rel=0.05)


def test_column_argument_constant_within_cluster_pattern(res):
    # every subject has Days 0..9 once, so every resample has mean Days 4.5: SE exactly 0
    assert res.bootstrap_se(statistic="mean", column="Days", n_bootstrap=50, seed=0) == 0.0


def test_bootstrap_uses_the_rows_of_the_fit(sleep):
    d = sleep.copy()
    d["Reaction"] = d["Reaction"].astype(float)
    d.loc[[4, 40, 77], "Reaction"] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", interlace.MissingDataWarning)
        r_na = interlace.fit("Reaction ~ Days", d, groups="Subject")
    r_clean = interlace.fit("Reaction ~ Days", d.dropna(), groups="Subject")
    a = r_na.bootstrap_se(statistic="median", n_bootstrap=200, seed=5)
    b = r_clean.bootstrap_se(statistic="median", n_bootstrap=200, seed=5)
    assert np.isfinite(a) and a == b


@pytest.mark.parametrize("statistic", ["mode", "Mean", 3])
def test_invalid_statistic(res, statistic):
    with pytest.raises(ValueError, match=f"statistic must be 'median', 'mean' or a callable, got {statistic!r}"):
        res.bootstrap_se(statistic=statistic, n_bootstrap=10, seed=0)


def test_too_few_replicates(res):
    with pytest.raises(ValueError, match="n_bootstrap must be at least 2"):
        res.bootstrap_se(statistic="mean", n_bootstrap=1, seed=0)

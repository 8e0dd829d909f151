"""Power by simulation against the analytic power of a balanced design (a hand derivation).

Design: g = 12 groups of m = 5 rows, a between-group indicator x (6 groups each), a
random intercept per group.  With balanced data the REML estimate of β_x is the
difference of the two arms' group means, and when σ̂_b² > 0 its t statistic (with
Satterthwaite's df, here exactly g − 2) is the two-sample t test on the group means:
under the simulation model (the fitted σ̂_b, σ̂ and the effect β) it is noncentral t
with g − 2 df and noncentrality β / √(τ² · 4/g), τ² = σ̂_b² + σ̂²/m.  The fitted
σ̂_b/σ̂ is large, so a simulated fit on the boundary (which would break the identity)
has probability below 1e-4.  The simulated power must lie within 4 Monte-Carlo
standard errors √(π(1 − π)/nsim) of the analytic π (a false failure about once in
15 000 runs).
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.stats as st

import interlace
from interlace.errors import InterlaceError

G, M = 12, 5


@pytest.fixture(scope="module")
def balanced():
    rng = np.random.default_rng(20240517)
    g = np.repeat(np.arange(G), M)
    x = (g % 2).astype(float)
    y = 1.0 + 0.5 * x + 2.0 * rng.standard_normal(G)[g] + rng.standard_normal(G * M)
    data = pd.DataFrame({"y": y, "x": x, "g": [f"g{i:02d}" for i in g]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return interlace.fit("y ~ x", data, random=["(1 | g)"])


def _analytic(res, beta):
    tau2 = res.variance_components["g"] + res.scale / M
    nc = beta / np.sqrt(tau2 * 4 / G)
    df = G - 2
    q = st.t.isf(0.025, df)
    return st.nct.sf(q, df, nc) + st.nct.cdf(-q, df, nc)


@pytest.mark.parametrize("beta", [0.0, 2.2])
def test_power_matches_noncentral_t(balanced, beta):
    res = balanced
    assert np.isclose(res.fe_df["x"], G - 2)
    nsim = 600
    pw = res.power_sim("x", nsim=nsim, fixef={"x": beta}, seed=11, progress=False)
    pi = _analytic(res, beta)
    se = np.sqrt(pi * (1 - pi) / nsim)
    assert abs(pw.power - pi) <= 4 * se, (pw.power, pi, se)
    assert pw.lower <= pw.power <= pw.upper and not pw.errors
    assert pw.fixef["x"] == beta and pw.method == "satterthwaite"


def test_seed_reproducible_parallel_and_curve(balanced):
    res = balanced
    a = res.power_sim("x", nsim=40, fixef={"x": 2.2}, seed=3, progress=False)
    b = res.power_sim("x", nsim=40, fixef={"x": 2.2}, seed=3, progress=False, n_jobs=2)
    np.testing.assert_allclose(a.pvalues, b.pvalues)
    pc = res.power_curve("x", along="g", breaks=[4, 12], nsim=40, fixef={"x": 2.2}, seed=3, progress=False)
    assert list(pc.table["levels"]) == [4, 12] and list(pc.table["nrows"]) == [4 * M, 12 * M]
    np.testing.assert_allclose(pc.pvalues[:, 1], a.pvalues)  # all levels: the same fits as power_sim
    assert pc.table["power"].iloc[0] <= pc.table["power"].iloc[1]


def test_glmm_and_lr(balanced):
    d = interlace.datasets.load("cbpp")
    d["period"] = d["period"].astype(str)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", d, family="binomial")
    pw = g.power_sim("period", nsim=10, fixef={"period[T.2]": 0.0, "period[T.3]": 0.0, "period[T.4]": 0.0},
                     seed=1, progress=False)
    assert pw.method == "z" and 0 <= pw.power <= 1
    lr = balanced.power_sim("x", nsim=10, method="lr", progress=False)
    assert lr.method == "lr" and lr.pvalues.size == 10


def test_errors(balanced):
    with pytest.raises(InterlaceError, match="neither"):
        balanced.power_sim("z", nsim=2)
    with pytest.raises(InterlaceError, match="not a coefficient"):
        balanced.power_sim("x", nsim=2, fixef={"w": 1.0})
    with pytest.raises(InterlaceError, match="alpha"):
        balanced.power_sim("x", nsim=2, alpha=5)
    with pytest.raises(InterlaceError, match="breaks"):
        balanced.power_curve("x", along="g", breaks=[40], nsim=2)

"""simulate(): reproducible by seed, and with the moments the fitted model implies.

Hand derivation for the LMM: with new random effects, y ~ N(Xβ, Z Σ Zᵀ + σ² I), so each
yᵢ has mean xᵢβ and variance zᵢᵀ Σ zᵢ + σ²; conditioning on the BLUPs (use_u=True) leaves
mean xᵢβ + zᵢb̂ and variance σ².  For a binomial GLMM with use_u=True, yᵢ·nᵢ ~ Bin(nᵢ, μ̂ᵢ).
Monte-Carlo tolerances: 4000 draws, so the relative SE of a variance estimate is
√(2/4000) ≈ 2.2 %; we allow 5 sigma (11 %) on each variance averaged over groups of rows.
"""
import numpy as np
import pandas as pd
import pytest

import interlace


@pytest.fixture(scope="module")
def sleep():
    df = interlace.datasets.load("sleepstudy")
    return interlace.fit("Reaction ~ Days", df, random="(Days | Subject)")


def test_seed_reproducible(sleep):
    a = sleep.simulate(3, seed=1)
    b = sleep.simulate(3, seed=1)
    c = sleep.simulate(3, seed=2)
    assert a.shape == (180, 3) and list(a.columns) == ["sim_1", "sim_2", "sim_3"]
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a.to_numpy(), c.to_numpy())


def test_lmm_unconditional_moments(sleep):
    sims = sleep.simulate(4000, seed=7).to_numpy()
    days = sleep.model.exog[:, 1]
    Sigma = sleep.random_effects_cov["Subject"].to_numpy()
    var = Sigma[0, 0] + 2 * days * Sigma[0, 1] + days ** 2 * Sigma[1, 1] + sleep.scale
    mean = sleep.model.exog @ sleep.fe_params.to_numpy()
    assert np.all(np.abs(sims.mean(axis=1) - mean) < 5 * np.sqrt(var / 4000))
    ratio = sims.var(axis=1, ddof=1) / var
    for d in range(10):  # pool the 18 rows with the same Days value
        assert abs(ratio[days == d].mean() - 1) < 0.11


def test_lmm_conditional_moments(sleep):
    sims = sleep.simulate(4000, seed=8, use_u=True).to_numpy()
    np.testing.assert_allclose(sims.mean(axis=1), sleep.fittedvalues.to_numpy(),
                               atol=5 * np.sqrt(sleep.scale / 4000))
    assert abs(sims.var(axis=1, ddof=1).mean() / sleep.scale - 1) < 0.05


def test_glmm_binomial_conditional_moments():
    df = interlace.datasets.load("cbpp")
    df["period"] = df["period"].astype(str)
    r = interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", df, family="binomial")
    sims = r.simulate(4000, seed=3, use_u=True).to_numpy()
    n = df["size"].to_numpy(float)
    mu = r.fittedvalues.to_numpy()
    assert np.all(np.abs(sims.mean(axis=1) - mu) < 5 * np.sqrt(mu * (1 - mu) / n / 4000) + 1e-12)
    np.testing.assert_allclose(np.mean(sims.var(axis=1, ddof=1) / (mu * (1 - mu) / n)), 1, atol=0.05)
    assert np.allclose(sims * n[:, None], np.round(sims * n[:, None]))  # whole counts of successes

"""Degenerate designs with known answers: the answer is asserted, not only the warning.

Hand derivations used here (balanced one-way layout: m groups of n rows, group means ȳᵢ,
grand mean ȳ, SSW = Σ (y − ȳᵢ)², SSB = n Σ (ȳᵢ − ȳ)², MSW = SSW/(m(n − 1)),
MSB = SSB/(m − 1)):

* β̂ of ``y ~ 1`` is ȳ at every θ (GLS with equal group weights), so also in the σ → 0
  limit; for an unbalanced layout the σ → 0 limit of the GLS weights 1/(τ² + σ²/nᵢ)
  is equal weights: β̂ → the unweighted mean of the group means.
* REML, when MSB > MSW: σ̂² = MSW, τ̂² = (MSB − MSW)/n (the ANOVA estimators);
  ML: σ̂² = MSW, τ̂² = (SSB/m − MSW)/n.
* When every group mean is equal (SSB = 0): θ̂ = 0 (a singular fit), β̂ = ȳ and σ̂² =
  SSW/(N − 1) (REML) or SSW/N (ML), the residual variance of the intercept-only model.
* With the same x in every group and y exactly a line per group, β̂ of ``y ~ x`` with
  ``(x | g)`` is the mean of the groups' intercepts and slopes at every θ.
* Complete separation in a logistic GLMM: the fitted probabilities are the 0/1
  responses and the slope runs away (R's glm: "fitted probabilities numerically 0 or 1").

Tolerances: θ stops at :data:`~interlace.objective.lmm.THETA_MAX` (10⁴) when σ → 0; there
the fixed-effects Schur complement has relative rounding ε θ² max(ZᵀZ)ᵢᵢ (2·10⁻⁷ for
groups of 10 rows, 6·10⁻⁶ for the slopes below), which bounds the agreement.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import interlace.api as smf
from interlace import fit, glmer
from interlace.errors import ConvergenceWarning, SingularFitWarning
from interlace.objective.lmm import THETA_MAX

SIGMA0 = r"Model failed to converge: the residual standard deviation is estimated at \(nearly\) 0"


def balanced(m: int = 20, n: int = 10) -> np.ndarray:
    return np.repeat(np.arange(m), n)


def rel(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


# ----------------------------------------------------------------------------- σ → 0 (θ → ∞)
@pytest.mark.parametrize("method", ["REML", "ML"])
@pytest.mark.parametrize("shift, noise", [(0.0, 0.0), (0.0, 1e-6), (1e4, 0.0)])
def test_response_constant_within_groups(method, shift, noise):
    """The issue's case: y = group number (20 × 10).  Was Intercept 9.697 with converged=True and
    no warning (lme4: 9.5001 with three warnings; with noise 1e-6 lme4 gives 9.714)."""
    g = balanced()
    y = shift + g + noise * np.random.default_rng(1).standard_normal(g.size)
    d = pd.DataFrame({"y": y, "g": g})
    with pytest.warns(ConvergenceWarning, match=SIGMA0 + r": response 'y' .*constant within the levels of 'g'"):
        res = fit("y ~ 1", d, groups="g", method=method)
    assert rel(res.fe_params["Intercept"], y.mean()) < 1e-6
    # at the bound, or (with noise 1e-6, whose optimum θ ≈ 6e6 is beyond double precision)
    # where the residual is at the rounding level of yᵀy
    assert res.theta[0] == pytest.approx(THETA_MAX, rel=1e-6) or res.theta[0] > 1e3
    assert not res.converged
    assert np.sqrt(res.scale) < 1e-3 * np.std(y)


def test_constant_within_groups_unbalanced():
    g = np.concatenate([np.repeat(np.arange(10), 3), np.repeat(np.arange(10, 20), 12)])
    d = pd.DataFrame({"y": (g ** 1.5).astype(float), "g": g})
    with pytest.warns(ConvergenceWarning, match=SIGMA0):
        res = fit("y ~ 1", d, groups="g")
    assert rel(res.fe_params["Intercept"], d.groupby("g").y.mean().mean()) < 1e-6
    assert abs(res.fe_params["Intercept"] - d.y.mean()) > 10  # not the row mean


def test_crossed_additive_without_noise():
    rng = np.random.default_rng(2)
    a, b = np.repeat(np.arange(10), 16), np.tile(np.repeat(np.arange(8), 2), 10)
    d = pd.DataFrame({"y": 5 + rng.normal(size=10)[a] + rng.normal(size=8)[b], "a": a, "b": b})
    with pytest.warns(ConvergenceWarning, match=SIGMA0):
        res = fit("y ~ 1", d, groups=["a", "b"])
    assert rel(res.fe_params["Intercept"], d.y.mean()) < 1e-5  # levels of 16 and 20 rows


def test_exact_lines_per_group_with_random_slopes():
    rng = np.random.default_rng(3)
    g = balanced()
    x = np.tile(np.arange(10.0), 20)
    alpha, beta = rng.normal(3, 1, 20), rng.normal(2, 0.5, 20)
    d = pd.DataFrame({"y": alpha[g] + beta[g] * x, "x": x, "g": g})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = fit("y ~ x", d, random="(x | g)")
    assert SIGMA0.replace("\\", "") in " ".join(res.opt_summary.messages)
    assert rel(res.fe_params, [alpha.mean(), beta.mean()]) < 1e-4


def test_sigma_zero_in_the_mixedlm_drop_in_and_the_chunked_path(tmp_path):
    g = balanced()
    d = pd.DataFrame({"y": g.astype(float), "g": g})
    with pytest.warns(ConvergenceWarning, match=SIGMA0):
        res = smf.mixedlm("y ~ 1", d, groups="g").fit()
    assert rel(res.fe_params.iloc[0], 9.5) < 1e-6
    pytest.importorskip("pyarrow")
    from interlace.scale import fit_parquet

    d.to_parquet(tmp_path / "d.parquet")
    with pytest.warns(ConvergenceWarning, match=SIGMA0):
        res = fit_parquet("y ~ 1 + (1 | g)", tmp_path / "d.parquet", batch_size=37)
    assert rel(res.fe_params["Intercept"], 9.5) < 1e-6


# ----------------------------------------------------------------------------- large but finite θ
@pytest.mark.parametrize("tau", [1.0, 1000.0])
def test_balanced_one_way_is_anova(tau):
    """REML = the ANOVA estimators and ML = their ML variant, also at θ ≈ 1000 (far from 1,
    inside the bound)."""
    rng = np.random.default_rng(4)
    m, n = 15, 6
    g = balanced(m, n)
    y = 50 + tau * rng.normal(size=m)[g] + rng.normal(size=g.size)
    d = pd.DataFrame({"y": y, "g": g})
    means = d.groupby("g").y.mean().to_numpy()
    ssw = float(np.sum((y - means[g]) ** 2))
    ssb = n * float(np.sum((means - y.mean()) ** 2))
    msw, msb = ssw / (m * (n - 1)), ssb / (m - 1)
    reml = fit("y ~ 1", d, groups="g")
    assert rel(reml.fe_params["Intercept"], y.mean()) < 1e-7
    assert rel(reml.scale, msw) < 1e-4
    assert rel(reml.variance_components["g"], (msb - msw) / n) < 1e-4  # the house LMM tolerance
    ml = fit("y ~ 1", d, groups="g", method="ML")
    assert rel(ml.scale, msw) < 1e-4
    assert rel(ml.variance_components["g"], (ssb / m - msw) / n) < 1e-4


# ----------------------------------------------------------------------------- θ → 0
@pytest.mark.parametrize("method, denom", [("REML", lambda N: N - 1), ("ML", lambda N: N)])
def test_equal_group_means_give_a_singular_fit(method, denom):
    rng = np.random.default_rng(5)
    g = balanced(12, 5)
    e = rng.normal(size=g.size)
    y = 3.0 + e - pd.Series(e).groupby(g).transform("mean").to_numpy()  # every group mean is 3
    d = pd.DataFrame({"y": y, "g": g})
    with pytest.warns(SingularFitWarning):
        res = fit("y ~ 1", d, groups="g", method=method)
    assert res.is_singular and res.theta[0] == 0.0
    assert rel(res.fe_params["Intercept"], y.mean()) < 1e-12
    assert rel(res.scale, np.sum((y - y.mean()) ** 2) / denom(g.size)) < 1e-8


# ----------------------------------------------------------------------------- perfect separation
def test_complete_separation_in_a_logistic_glmm():
    rng = np.random.default_rng(6)
    g = balanced()
    x = rng.normal(size=g.size)
    d = pd.DataFrame({"y": (x > 0).astype(float), "x": x, "g": g})
    with pytest.warns(ConvergenceWarning, match=r"fitted probabilities numerically 0 or 1 occurred"), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = glmer("y ~ x + (1 | g)", d, family="binomial")
    mu = res.fittedvalues.to_numpy()
    np.testing.assert_array_equal(mu > 0.5, d.y.to_numpy() == 1)  # every row on its side
    assert np.mean(np.abs(mu - d.y.to_numpy()) < 1e-6) > 0.9  # and almost all numerically 0 or 1
    assert res.fe_params["x"] > 50  # runs away (finite only because the search stops)

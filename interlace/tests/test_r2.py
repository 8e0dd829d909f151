"""R² and ICC against performance 0.10.2 / insight 0.19.0 (``make_r2_reference.R``).

Nakagawa's marginal and conditional R², the adjusted and unadjusted ICC and the
variance components behind them to 1e-4 relative (GLMMs: 1e-3, the README's GLMM
tolerance; the Poisson distribution-specific variance comes from a refitted null model).
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from interlace.errors import InterlaceError
from interlace.inference.r2 import variance_components
from interlace.tests.analysis_cases import fit_case, load

CASES = ["sleepstudy", "penicillin", "penicillin_crossed", "factorial", "cbpp", "grouseticks", "gamma"]


@pytest.fixture(scope="module", params=CASES)
def case(request):
    ref = load(f"r2_{request.param}")
    return ref, fit_case(ref["python"]), (1e-4 if ref["python"]["entry"] == "fit" else 1e-3)


def test_r2(case):
    ref, res, rtol = case
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r2 = res.r2_nakagawa()
    np.testing.assert_allclose(r2["conditional"], ref["r2"]["conditional"], rtol=rtol)
    np.testing.assert_allclose(r2["marginal"], ref["r2"]["marginal"], rtol=rtol, atol=1e-12)


def test_icc(case):
    ref, res, rtol = case
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        icc = res.icc()
    np.testing.assert_allclose(icc["adjusted"], ref["icc"]["adjusted"], rtol=rtol)
    np.testing.assert_allclose(icc["unadjusted"], ref["icc"]["unadjusted"], rtol=rtol)


def test_variance_components(case):
    ref, res, rtol = case
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        v = variance_components(res)
    r = ref["variances"]
    for ours, theirs in [("fixed", "var.fixed"), ("random", "var.random"), ("residual", "var.residual"),
                         ("distribution", "var.distribution"), ("dispersion", "var.dispersion")]:
        np.testing.assert_allclose(getattr(v, ours), r[theirs], rtol=rtol, atol=1e-12, err_msg=ours)
    assert set(v.intercept) == set(ref["var_intercept"])
    for g, val in ref["var_intercept"].items():
        np.testing.assert_allclose(v.intercept[g], val, rtol=rtol)


def test_poisson_null_model_warns_small_mu():
    ref = load("r2_grouseticks")
    res = fit_case(ref["python"])
    assert np.exp(ref["null_intercept"]) < 6  # insight warns: mu too close to zero
    with pytest.warns(UserWarning, match="too close to zero"):
        res.r2_nakagawa()


def test_singular_fit_has_no_conditional_r2():
    import interlace

    d = interlace.datasets.load("dyestuff2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = interlace.fit("Yield ~ 1", d, random=["(1 | Batch)"])
    assert res.is_singular
    with pytest.warns(UserWarning, match="singular"):
        r2 = res.r2_nakagawa()
    assert np.isnan(r2["conditional"]) and abs(r2["marginal"]) < 1e-12


def test_clmm_is_refused():
    ref = load("tidy_sleepstudy")
    py = dict(ref["python"], data="wine", formula="rating ~ temp + contact", random=["(1 | judge)"],
              factors=["judge"], entry="clmm")
    with pytest.raises(InterlaceError, match="linear and generalized"):
        fit_case(py).r2_nakagawa()

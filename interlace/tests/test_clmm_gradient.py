"""The exact gradient of the CLMM's Laplace approximation (``CLMMDeviance.value_and_gradient``).

A hand derivation (implicit differentiation of the conditional modes, third derivatives of the
cumulative link) checked against central differences of the objective itself (step 1e-3: a smaller one meets the
rounding of P = F(α_y − η) − F(α_{y−1} − η) far in a tail), for every link it
serves and a structured threshold; and the default optimizer (L-BFGS-B on it) against BOBYQA on
the values alone, which must reach the same optimum.  The estimates themselves are checked
against ordinal in ``test_clmm_reference.py``.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import interlace
from interlace.models.clmm import CLMM
from interlace.optimize.checks import central_gradient


@pytest.fixture(scope="module")
def wine() -> pd.DataFrame:
    w = interlace.datasets.load("wine")
    w["rating"] = pd.Categorical(w["rating"], ordered=True)
    return w


@pytest.mark.parametrize("link", ["logit", "probit", "cloglog", "loglog"])
def test_gradient_matches_differences(wine, link):
    dev = CLMM.from_formula("rating ~ temp + contact + (1 | judge)", wine, link=link).objective()
    assert dev.has_gradient
    for x in (np.array([-1.5, 1.4, 4.0, 6.0, 3.0, 1.7, 1.2]), np.array([-1.0, 1.0, 3.5, 5.0, 2.0, 1.0, 0.0])):
        f, g = dev.value_and_gradient(x)
        assert f == pytest.approx(dev(x), rel=1e-12)
        np.testing.assert_allclose(g, central_gradient(dev, x, 1e-3)[0], rtol=1e-5, atol=1e-5)


def test_gradient_structured_thresholds_and_crossed_terms(wine):
    dev = CLMM.from_formula("rating ~ temp + (1 | judge) + (1 | bottle)", wine, threshold="equidistant").objective()
    x = np.array([-1.5, 2.5, 3.0, 0.9, 0.4])
    np.testing.assert_allclose(dev.value_and_gradient(x)[1], central_gradient(dev, x, 1e-3)[0], rtol=1e-5, atol=1e-5)


def test_no_gradient_where_it_does_not_apply(wine):
    assert not CLMM.from_formula("rating ~ temp + (1 | judge)", wine, link="cauchit").objective().has_gradient
    assert not CLMM.from_formula("rating ~ temp + (1 | judge)", wine, nAGQ=5).objective().has_gradient


def test_gradient_optimizer_reaches_bobyqa_optimum(wine):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        auto = interlace.clmm("rating ~ temp + contact + (1 | judge)", wine)
        bob = interlace.clmm("rating ~ temp + contact + (1 | judge)", wine, optimizer="bobyqa")
    assert auto.opt_summary.optimizer.startswith("L-BFGS-B")
    assert bob.opt_summary.optimizer != auto.opt_summary.optimizer
    assert auto.llf >= bob.llf - 1e-8
    np.testing.assert_allclose(np.asarray(auto.params), np.asarray(bob.params), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.asarray(auto.bse), np.asarray(bob.bse), rtol=1e-3)

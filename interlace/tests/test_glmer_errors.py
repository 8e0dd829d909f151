"""GLMM input errors name the fault; separation and non-convergence are warnings, not crashes."""
import warnings

import numpy as np
import pandas as pd
import pytest

import interlace
from interlace.errors import ConvergenceWarning, DataError, FormulaError, InterlaceError


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    n = 300
    g = rng.integers(0, 15, n)
    x = rng.normal(size=n)
    eta = -0.3 + 0.8 * x + rng.normal(size=15)[g] * 0.7
    return pd.DataFrame({"y": rng.binomial(1, 1 / (1 + np.exp(-eta))).astype(float), "x": x,
                         "g": [f"g{i}" for i in g], "h": rng.integers(0, 5, n), "count": rng.poisson(3, n),
                         "yes": np.where(rng.random(n) < 0.5, "yes", "no")})


def test_unknown_family(data):
    with pytest.raises(InterlaceError, match="unknown family 'binomal'"):
        interlace.glmer("y ~ x + (1|g)", data, family="binomal")


def test_link_not_for_family(data):
    with pytest.raises(InterlaceError, match="link 'probit' is not available for family 'poisson'"):
        interlace.glmer("count ~ x + (1|g)", data, family="poisson", link="probit")


def test_response_out_of_range(data):
    with pytest.raises(DataError, match="binomial response 'count' must be 0/1 or a proportion"):
        interlace.glmer("count ~ x + (1|g)", data, family="binomial")
    bad = data.assign(count=-data["count"] - 1)
    with pytest.raises(DataError, match="poisson response must be non-negative"):
        interlace.glmer("count ~ x + (1|g)", bad, family="poisson")


def test_cbind_only_binomial(data):
    with pytest.raises(FormulaError, match="only for the binomial family"):
        interlace.glmer("cbind(count, count) ~ x + (1|g)", data, family="poisson")


def test_agq_needs_one_scalar_term(data):
    with pytest.raises(InterlaceError, match="single scalar random-effects term"):
        interlace.glmer("y ~ x + (1|g) + (1|h)", data, family="binomial", nAGQ=5)


def test_two_level_string_response(data):
    """A yes/no column is coded as R codes a factor: the first (sorted) level is the failure."""
    r1 = interlace.glmer("yes ~ x + (1|g)", data, family="binomial")
    r2 = interlace.glmer("y01 ~ x + (1|g)", data.assign(y01=(data["yes"] == "yes").astype(float)), family="binomial")
    np.testing.assert_allclose(r1.fe_params.to_numpy(), r2.fe_params.to_numpy(), rtol=1e-10)


def test_separation_is_a_warning(data):
    sep = data.assign(y=(data["x"] > 0).astype(float))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        r = interlace.glmer("y ~ x + (1|g)", sep, family="binomial")
    msgs = [str(m.message) for m in w if issubclass(m.category, ConvergenceWarning)]
    assert any("fitted probabilities numerically 0 or 1" in m for m in msgs)
    assert not any(issubclass(m.category, RuntimeWarning) for m in w)
    assert not r.converged
    assert r.fe_params["x"] > 20  # the slope runs off towards infinity

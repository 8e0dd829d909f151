"""cbpp binomial GLMM against lme4 with a converged PIRLS.

The references are ``reference/glmer/cbpp_logit.json`` and ``cbpp_agq25.json``, made by
``reference/make_glmer_reference.R`` (lme4 1.1-31) at lme4's optimum with tight controls
(``tolPwrss = 1e-13``; the JSON's ``tight_fit`` lists the candidates).  lme4's default
``tolPwrss = 1e-7`` stops PIRLS early and its Laplace objective then uses the factor
from the previous iterate (the JSON's ``default_fit``: θ 0.642070); interlace iterates to
convergence, which lme4 reproduces once tolPwrss is tightened.

With nAGQ = 25 lme4's ``logLik`` omits the saturated binomial log-likelihood
Σ [log C(n, y) + y log(y/n) + (n − y) log(1 − y/n)] (it evaluates the quadrature on deviance
residuals); interlace reports the full log-likelihood, so the test adds that sum, computed
here from the data.
"""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import gammaln, xlogy

import interlace

REF = Path(__file__).parent / "reference" / "glmer"
FORMULA = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


@pytest.fixture(scope="module")
def cbpp():
    path = Path(interlace.datasets.__file__).parent / "data" / "cbpp.csv"
    assert path.exists(), f"{path} is missing (written by make_glmer_reference.R)"
    df = pd.read_csv(path)
    df["period"] = df["period"].astype(str)
    return df


def _ref(name: str) -> dict:
    return json.loads((REF / f"{name}.json").read_text())


@pytest.mark.parametrize("engine", ["blocked", "cholmod"])
def test_cbpp_laplace(cbpp, engine):
    if engine == "cholmod" and not interlace.linalg.HAVE_CHOLMOD:
        pytest.skip("no CHOLMOD")
    ref = _ref("cbpp_logit")
    r = interlace.glmer(FORMULA, cbpp, family="binomial", engine=engine)
    np.testing.assert_allclose(r.theta, ref["theta"], rtol=1e-4)
    np.testing.assert_allclose(r.fe_params, ref["fixef"]["values"], rtol=1e-4)
    np.testing.assert_allclose(r.fe_bse, ref["se_precise"], rtol=1e-3)
    assert abs(r.llf - ref["loglik"]) < 1e-4


def test_cbpp_agq25(cbpp):
    ref = _ref("cbpp_agq25")
    r = interlace.glmer(FORMULA, cbpp, family="binomial", nAGQ=25)
    n, y = cbpp["size"].to_numpy(float), cbpp["incidence"].to_numpy(float)
    saturated = float(np.sum(gammaln(n + 1) - gammaln(y + 1) - gammaln(n - y + 1)
                             + xlogy(y, y / n) + xlogy(n - y, 1 - y / n)))
    assert abs(r.llf - (ref["loglik"] + saturated)) < 1e-3
    np.testing.assert_allclose(r.theta, ref["theta"], rtol=1e-3)

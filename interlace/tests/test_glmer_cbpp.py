"""cbpp binomial GLMM against lme4 with a converged PIRLS.

R 4.2.2, lme4 1.1-31:
    m <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, binomial,
               control = glmerControl(tolPwrss = 1e-10, optimizer = "bobyqa", optCtrl = list(rhoend = 1e-10)))
    theta 0.64226143; fixef -1.39853214 -0.99233270 -1.12867205 -1.58031379
    SE 0.23247184 0.30664221 0.32663751 0.42743594; logLik -92.02628187
lme4's default tolPwrss = 1e-7 stops PIRLS early and its Laplace objective then uses the
factor from the previous iterate (θ 0.642064, SE(Intercept) 0.231212); interlace iterates
to convergence, which lme4 reproduces once tolPwrss is tightened (above).
nAGQ = 25 (same control): lme4's logLik -50.00501527 omits the saturated log-likelihood
(-41.97835377); interlace reports the full log-likelihood.
"""
import numpy as np
import pytest

import interlace


@pytest.fixture(scope="module")
def cbpp():
    from pathlib import Path

    import pandas as pd

    path = Path(interlace.datasets.__file__).parent / "data" / "cbpp.csv"
    assert path.exists(), f"{path} is missing (written by make_glmer_reference.R)"
    df = pd.read_csv(path)
    df["period"] = df["period"].astype(str)
    return df


@pytest.mark.parametrize("engine", ["blocked", "cholmod"])
def test_cbpp_laplace(cbpp, engine):
    if engine == "cholmod" and not interlace.linalg.HAVE_CHOLMOD:
        pytest.skip("no CHOLMOD")
    r = interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, engine=engine)
    np.testing.assert_allclose(r.theta, [0.64226143], rtol=1e-4)
    np.testing.assert_allclose(r.fe_params, [-1.39853214, -0.99233270, -1.12867205, -1.58031379], rtol=1e-4)
    np.testing.assert_allclose(r.fe_bse, [0.23247184, 0.30664221, 0.32663751, 0.42743594], rtol=1e-3)
    assert abs(r.llf - (-92.02628187)) < 1e-4


def test_cbpp_agq25(cbpp):
    r = interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, nAGQ=25)
    # lme4's AGQ log-likelihood plus the saturated binomial log-likelihood
    assert abs(r.llf - (-50.00501527 - 41.97835377)) < 1e-3
    np.testing.assert_allclose(r.theta, [0.6475199145], rtol=1e-3)

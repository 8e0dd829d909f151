"""predict(..., interval=...) and conf_int(method=...) on sleepstudy.

Hand derivation of the variances (given the estimated variance parameters):
confidence: xᵀVx (+ zᵀ Var(b|y) z for a seen level); prediction: that + σ²
(+ zᵀΣz for an unseen level). Each piece is taken from quantities checked against lme4
elsewhere (cov_fe: vcov; random_effects_condvar: condVar; random_effects_cov: VarCorr).
"""
import numpy as np
import pandas as pd
import pytest
import scipy.stats as st

import interlace


@pytest.fixture(scope="module")
def res():
    return interlace.fit("Reaction ~ Days", interlace.datasets.load("sleepstudy"), random="(Days | Subject)")


def test_interval_variances(res):
    nd = pd.DataFrame({"Days": [3.0, 3.0], "Subject": [308, "NEW"]})
    x = np.array([1.0, 3.0])
    V = res.cov_fe.to_numpy()
    cv = res.random_effects_condvar["Subject"][0]  # level 308 is the first
    Sigma = res.random_effects_cov["Subject"].to_numpy()
    with pytest.warns(interlace.UnseenLevelWarning, match="1 row with a level of 'Subject' not seen"):
        conf = res.predict(nd, interval="confidence")
    with pytest.warns(interlace.UnseenLevelWarning):
        pred = res.predict(nd, interval="prediction", level=0.9)
    np.testing.assert_allclose(conf["se"] ** 2, [x @ V @ x + x @ cv @ x, x @ V @ x], rtol=1e-12)
    np.testing.assert_allclose(pred["se"] ** 2, [x @ V @ x + x @ cv @ x + res.scale,
                                                 x @ V @ x + x @ Sigma @ x + res.scale], rtol=1e-12)
    z = st.norm.isf(0.05)
    np.testing.assert_allclose(pred["upper"] - pred["predicted"], z * pred["se"], rtol=1e-12)
    with pytest.warns(interlace.UnseenLevelWarning):
        np.testing.assert_allclose(conf["predicted"], res.predict(nd), rtol=0)
    assert "unseen levels" in pred.attrs["variance_includes"]


def test_population_level_prediction(res):
    nd = pd.DataFrame({"Days": [5.0], "Subject": [308]})
    x = np.array([1.0, 5.0])
    p = res.predict(nd, include_re=False, interval="prediction")
    Sigma = res.random_effects_cov["Subject"].to_numpy()
    np.testing.assert_allclose(p["se"] ** 2, x @ res.cov_fe.to_numpy() @ x + x @ Sigma @ x + res.scale, rtol=1e-12)


def test_conf_int_method_dispatch(res):
    fe = res.conf_int()  # statsmodels' conf_int: the fixed effects with the model's df (Satterthwaite)
    assert list(fe.index) == ["Intercept", "Days"]
    np.testing.assert_allclose(fe.to_numpy(), res.fe_conf_int().to_numpy(), rtol=1e-14)
    full = res.conf_int(method="wald")  # lme4's confint(m, method = "Wald"): normal quantiles
    z = st.norm.isf(0.025)
    wald_fe = np.column_stack([res.params - z * res.bse, res.params + z * res.bse])
    np.testing.assert_allclose(full.loc[["Intercept", "Days"]].to_numpy(), wald_fe, rtol=1e-10)
    assert ".sigma" in full.index

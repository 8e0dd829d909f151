"""The statsmodels face of the model and result classes, on lme4's sleepstudy REML fit.

Reference: interlace/tests/reference/lmer/sleepstudy_reml.json, made by
``lmer(Reaction ~ Days + (Days | Subject), data = sleepstudy, REML = TRUE)``
(R 4.2.2, lme4 1.1-31) with the reference script's tight optimizer control
``ctl <- lmerControl(optimizer = "nloptwrap", optCtrl = list(xtol_abs = 1e-12,
ftol_abs = 1e-14, xtol_rel = 1e-12, maxeval = 100000))``; pasted from that fit::

    confint(m, method = "Wald", parm = "beta_")
    (Intercept) 238.02922036537288 264.7809893315951
    Days          7.43759540183294  13.4969765173599
    2 * pnorm(-abs(fixef(m) / sqrt(diag(vcov(m)))))
    (Intercept) 4.50074510194218e-297   Days 1.27467373826441e-11

(With the default control lme4 stops at a slightly different θ and its Wald
bounds move by 8e-5; the JSON reference is the tight fit.)
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats as st
from statsmodels.base.model import LikelihoodModel, LikelihoodModelResults
from statsmodels.base.wrapper import ResultsWrapper

import interlace
from interlace.tests.conftest import load_case

NAMES = ["Intercept", "Days"]
R_WALD_CI = np.array([[238.02922036537288, 264.7809893315951], [7.43759540183294, 13.4969765173599]])
R_PVALUES = np.array([4.50074510194218e-297, 1.27467373826441e-11])


@pytest.fixture(scope="module")
def ref():
    return load_case("lmer", "sleepstudy_reml")


@pytest.fixture(scope="module")
def sleep():
    return interlace.datasets.load("sleepstudy")


@pytest.fixture(scope="module")
def model(sleep):
    return interlace.CrossedLME.from_formula("Reaction ~ Days", sleep, random=["(Days | Subject)"])


@pytest.fixture(scope="module")
def res(model):
    return model.fit()


def test_from_formula_fit_equals_interlace_fit(res, sleep):
    other = interlace.fit("Reaction ~ Days", sleep, random=["(Days | Subject)"])
    np.testing.assert_array_equal(res.params, other.params)
    np.testing.assert_array_equal(res.bse, other.bse)
    np.testing.assert_array_equal(res.theta, other.theta)
    assert res.llf == other.llf and res.scale == other.scale


def test_model_is_a_statsmodels_likelihood_model(model, res):
    assert isinstance(model, LikelihoodModel)
    assert isinstance(res.model, LikelihoodModel) and res.model is model
    assert isinstance(res, ResultsWrapper)
    assert isinstance(res._results, LikelihoodModelResults)
    assert model.exog_names == NAMES and model.endog_names == "Reaction"
    assert model.nobs == 180 and model.k_fe == 2


def test_params_bse_labelled_and_equal_fe(res, ref):
    for got, fe in ((res.params, res.fe_params), (res.bse, res.fe_bse), (res.tvalues, res.fe_tvalues)):
        assert isinstance(got, pd.Series)
        assert list(got.index) == NAMES and list(fe.index) == NAMES
        np.testing.assert_allclose(got.to_numpy(), fe.to_numpy(), rtol=1e-14)
    # statsmodels' pvalues are the tests with the model's df: lmerTest's Satterthwaite t tests
    assert isinstance(res.pvalues, pd.Series) and list(res.pvalues.index) == NAMES
    satt = load_case("lmertest", "sleepstudy_reml")["satterthwaite"]
    np.testing.assert_allclose(res.fe_pvalues.to_numpy(), satt["p"], rtol=1e-3)
    np.testing.assert_allclose(res.pvalues.to_numpy(), satt["p"], rtol=1e-3)
    np.testing.assert_allclose(res.params, ref["fixef"]["values"], rtol=1e-6)
    np.testing.assert_allclose(res.bse, ref["se"], rtol=1e-5)
    z = np.array(ref["fixef"]["values"]) / np.array(ref["se"])
    np.testing.assert_allclose(res.tvalues, z, rtol=1e-5)  # lme4 "t value" 36.838, 6.771
    # with df_method="normal" (use_t False) they are Wald z, as lme4's normal approximation
    wald = interlace.fit("Reaction ~ Days", interlace.datasets.load("sleepstudy"), random="(Days | Subject)",
                         df_method="normal")
    assert not wald.use_t
    np.testing.assert_allclose(wald.pvalues, 2 * st.norm.sf(np.abs(z)), rtol=1e-3)
    np.testing.assert_allclose(wald.pvalues, R_PVALUES, rtol=1e-3)


def test_conf_int_labelled_and_equal_fe_conf_int(res):
    ci = res.conf_int()
    assert isinstance(ci, pd.DataFrame) and list(ci.index) == NAMES
    fe = res.fe_conf_int()
    assert list(fe.index) == NAMES and list(fe.columns) == ["lower", "upper"]
    # both: t quantiles with lmerTest's Satterthwaite df (17 for both coefficients)
    half = st.t.isf(0.025, 17) * np.asarray(res.bse)
    np.testing.assert_allclose(fe.to_numpy(), np.column_stack([res.params - half, res.params + half]), rtol=1e-7)
    np.testing.assert_allclose(ci.to_numpy(), fe.to_numpy(), rtol=1e-14)
    # with df_method="normal" both APIs give lme4's Wald intervals
    res = interlace.fit("Reaction ~ Days", interlace.datasets.load("sleepstudy"), random="(Days | Subject)",
                        df_method="normal")
    ci = res.conf_int()
    np.testing.assert_allclose(ci.to_numpy(), R_WALD_CI, rtol=0, atol=1e-5)
    np.testing.assert_allclose(ci.to_numpy(), res.fe_conf_int().to_numpy(), rtol=1e-14)
    # 90 % intervals: both APIs agree and are narrower by z(0.95)/z(0.975)
    np.testing.assert_allclose(res.conf_int(alpha=0.1).to_numpy(), res.fe_conf_int(alpha=0.1).to_numpy(),
                               rtol=1e-14)
    half90 = np.diff(res.fe_conf_int(alpha=0.1).to_numpy(), axis=1).ravel() / 2
    np.testing.assert_allclose(half90, st.norm.isf(0.05) * np.asarray(res.bse), rtol=1e-12)


def test_cov_params_equals_cov_fe(res, ref):
    cp = res.cov_params()
    assert isinstance(cp, pd.DataFrame)
    assert list(cp.index) == NAMES and list(cp.columns) == NAMES
    pd.testing.assert_frame_equal(cp, res.cov_fe, check_exact=False, rtol=1e-14)
    np.testing.assert_allclose(cp.to_numpy(), np.array(ref["vcov"]), rtol=1e-5)
    np.testing.assert_allclose(np.sqrt(np.diag(cp.to_numpy())), res.bse, rtol=1e-14)


def test_loglike_at_theta_is_llf(model, res, ref):
    assert model.loglike(res.theta) == pytest.approx(res.llf, abs=1e-10)
    assert res.llf == pytest.approx(ref["loglik"], abs=1e-4)
    assert res.deviance == pytest.approx(-2 * res.llf, rel=1e-14)
    np.testing.assert_allclose(res.theta, ref["theta"], rtol=1e-4)
    # the optimum: any nearby θ has a lower REML log-likelihood
    for k in range(res.theta.size):
        step = np.zeros_like(res.theta)
        step[k] = 1e-3
        assert model.loglike(res.theta + step) < res.llf and model.loglike(res.theta - step) < res.llf


def test_information_criteria(res, ref):
    assert res.df_modelwc == ref["df"] == 6
    assert res.aic == pytest.approx(ref["aic"], abs=1e-4)
    assert res.bic == pytest.approx(ref["bic"], abs=1e-4)
    assert res.nobs == ref["nobs"]
    assert res.scale == pytest.approx(ref["sigma"] ** 2, rel=1e-4)


def test_ml_model_loglike(sleep):
    d = load_case("lmer", "sleepstudy_ml")  # same model, REML = FALSE
    m = interlace.CrossedLME.from_formula("Reaction ~ Days", sleep, random=["(Days | Subject)"], reml=False)
    r = m.fit()
    assert not r.reml
    assert m.loglike(r.theta) == pytest.approx(r.llf, abs=1e-10)
    assert r.llf == pytest.approx(d["loglik"], abs=1e-4)


@pytest.mark.filterwarnings("ignore:Casting complex values to real")
def test_score_is_the_gradient_of_loglike(model, res):
    # reference: central differences of loglike (the definition of the score)
    th = res.theta * 1.1
    h = 1e-5
    fd = np.array([(model.loglike(th + h * e) - model.loglike(th - h * e)) / (2 * h) for e in np.eye(th.size)])
    assert np.all(np.abs(fd) > 0.5)  # away from the optimum the gradient is far from 0
    np.testing.assert_allclose(model.score(th), fd, rtol=1e-4)

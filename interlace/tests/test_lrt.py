"""Likelihood-ratio comparison against lme4's anova().

Reference (R 4.2.2, lme4 1.1-31):
    a <- lmer(Reaction ~ Days + (Days|Subject), sleepstudy)
    b <- lmer(Reaction ~ Days + (1|Subject), sleepstudy)
    anova(a, b)   # refits with ML
    #   logLik b -897.039321503, a -875.969672232; Chisq 42.139298542, Df 2, Pr 7.07241254723e-10
"""
import warnings

import numpy as np
import pytest

import interlace


@pytest.fixture(scope="module")
def fits():
    df = interlace.datasets.load("sleepstudy")
    a = interlace.fit("Reaction ~ Days", df, random=["(Days | Subject)"])
    b = interlace.fit("Reaction ~ Days", df, random=["(1 | Subject)"])
    return df, a, b


def test_lr_test_matches_lme4_anova(fits):
    _, a, b = fits
    with pytest.warns(UserWarning, match="refitting model"):
        t = a.compare_lr_test(b)
    assert t.refitted
    np.testing.assert_allclose(t.statistic, 42.139298542, rtol=1e-6)
    assert t.df == 2
    np.testing.assert_allclose(t.pvalue, 7.07241254723e-10, rtol=1e-4)
    lr, p, d = b.compare_lr_test(a)  # order does not matter; unpacks like statsmodels
    np.testing.assert_allclose([lr, p, d], [42.139298542, 7.07241254723e-10, 2], rtol=1e-4)


def test_ml_refit_loglik(fits):
    _, a, b = fits
    from interlace.inference.lrt import as_ml

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_allclose(as_ml(a).llf, -875.969672232, atol=1e-4)
        np.testing.assert_allclose(as_ml(b).llf, -897.039321503, atol=1e-4)
    assert a.reml and a.model.reml  # the original fit and model are untouched


def test_different_data_refused(fits):
    df, a, _ = fits
    c = interlace.fit("Reaction ~ Days", df.iloc[:-10], random=["(1 | Subject)"])
    with pytest.raises(interlace.InterlaceError, match="same data"):
        a.compare_lr_test(c)


def test_anova_table_matches_lme4(fits):
    """R: c0 <- lmer(Reaction ~ 1 + (1|Subject), sleepstudy); anova(a, b, c0)
         npar AIC            BIC            logLik          Chisq          Df Pr(>Chisq)
    c0   3    1916.54105807  1926.11992863  -955.270529037
    b    4    1802.07864301  1814.85047041  -897.039321503  116.462415068  1  3.76446147655e-27
    a    6    1763.93934446  1783.09708557  -875.969672232   42.139298542  2  7.07241254723e-10
    """
    df, a, b = fits
    c0 = interlace.fit("Reaction ~ 1", df, random=["(1 | Subject)"])
    with pytest.warns(UserWarning, match="refitting"):
        tab = interlace.anova(a=a, b=b, c0=c0)
    assert list(tab.index) == ["c0", "b", "a"]
    assert list(tab["npar"]) == [3, 4, 6]
    np.testing.assert_allclose(tab["AIC"], [1916.54105807, 1802.07864301, 1763.93934446], atol=1e-4)
    np.testing.assert_allclose(tab["BIC"], [1926.11992863, 1814.85047041, 1783.09708557], atol=1e-4)
    np.testing.assert_allclose(tab["logLik"], [-955.270529037, -897.039321503, -875.969672232], atol=1e-4)
    np.testing.assert_allclose(tab["Chisq"].iloc[1:], [116.462415068, 42.139298542], rtol=1e-6)
    assert list(tab["Df"].iloc[1:]) == [1, 2]
    np.testing.assert_allclose(tab["Pr(>Chisq)"].iloc[1:], [3.76446147655e-27, 7.07241254723e-10], rtol=1e-4)
    assert tab.attrs["models"]["c0"] == "Reaction ~ 1"


def test_anova_glmm_matches_lme4():
    """R (tolPwrss = 1e-12): a <- glmer(cbind(incidence, size-incidence) ~ period + (1|herd), cbpp, binomial)
    b <- update(a, . ~ 1 + (1|herd)); anova(a, b)
      b: npar 2, logLik -104.8313135939; a: npar 5, logLik -92.0262818715, Chisq 25.6100634447, Df 3,
      Pr 1.15093669431e-05
    """
    df = interlace.datasets.load("cbpp")
    df["period"] = df["period"].astype(str)
    a = interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", df, family="binomial")
    b = interlace.glmer("cbind(incidence, size - incidence) ~ 1 + (1 | herd)", df, family="binomial")
    tab = interlace.anova(a, b)
    assert list(tab.index) == ["m2", "m1"]
    np.testing.assert_allclose(tab["logLik"], [-104.8313135939, -92.0262818715], atol=1e-4)
    np.testing.assert_allclose(tab["Chisq"].iloc[1], 25.6100634447, rtol=1e-5)
    np.testing.assert_allclose(tab["Pr(>Chisq)"].iloc[1], 1.15093669431e-05, rtol=1e-4)

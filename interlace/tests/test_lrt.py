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

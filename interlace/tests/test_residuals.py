"""Residuals of every type and level against lme4 and nlme (make_residuals_reference.R)."""
from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

import interlace
from interlace.errors import InterlaceError

REF = os.path.join(os.path.dirname(__file__), "reference")


def ref(case):
    with open(os.path.join(REF, "residuals", case + ".json")) as fh:
        return json.load(fh)


@pytest.fixture(scope="module")
def sleep():
    return interlace.fit("Reaction ~ Days", interlace.datasets.load("sleepstudy"), random="(Days | Subject)")


@pytest.fixture(scope="module")
def cbpp():
    df = interlace.datasets.load("cbpp")
    df["period"] = df["period"].astype(str)  # a factor, as in R
    return interlace.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", df, family="binomial")


def close(a, b, rtol, atol):
    np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=rtol, atol=atol)


@pytest.mark.parametrize("kind", ["response", "pearson", "deviance", "working"])
@pytest.mark.parametrize("scaled", [False, True])
def test_lmm_types_match_lme4(sleep, kind, scaled):
    r = ref("sleepstudy_lmer")
    key = kind + ("_scaled" if scaled else "")
    close(sleep.residuals(kind, scaled=scaled), r[key], 1e-5, 1e-5 * (1 if scaled else r["sigma"]))


def test_lmm_marginal_and_standardized(sleep):
    r = ref("sleepstudy_lmer")
    close(sleep.residuals(level="marginal"), r["marginal_response"], 1e-6, 1e-6)
    expected = np.array(r["response"]) / (r["sigma"] * np.sqrt(1 - np.array(r["hat"])))
    close(sleep.residuals("standardized"), expected, 1e-4, 1e-5)
    # without a residual structure the normalized residuals are the scaled Pearson ones
    close(sleep.residuals("normalized"), r["pearson_scaled"], 1e-5, 1e-5)
    # defaults: lme4's (response for LMMs)
    assert np.array_equal(sleep.residuals().to_numpy(), sleep.resid.to_numpy())


@pytest.mark.parametrize("kind", ["response", "pearson", "deviance", "working"])
def test_glmm_types_match_lme4(cbpp, kind):
    close(cbpp.residuals(kind), ref("cbpp_glmer")[kind], 1e-4, 1e-6)


def test_glmm_marginal_and_default(cbpp):
    close(cbpp.residuals("response", level="marginal"), ref("cbpp_glmer")["marginal_response"], 1e-4, 1e-6)
    assert np.array_equal(cbpp.residuals().to_numpy(), cbpp.resid_deviance().to_numpy())
    with pytest.raises(InterlaceError, match="linear mixed models"):
        cbpp.residuals("normalized")


@pytest.mark.parametrize("level", [0, 1])
@pytest.mark.parametrize("kind", ["response", "pearson", "normalized"])
def test_nlme_lme_ar1_levels(level, kind):
    df = pd.read_csv(os.path.join(REF, "data", "nlme_ovary.csv"), dtype={"Mare": str})
    m = interlace.fit("follicles ~ s1 + c1", df, random="(1 | Mare)", correlation=interlace.AR1())
    got = m.residuals(kind, level=level, scaled=kind == "pearson")
    close(got, ref("ovary_lme_ar1")[f"level{level}_{kind}"], 1e-4, 1e-5)


@pytest.mark.parametrize("kind", ["response", "pearson", "normalized"])
def test_nlme_gls_varident(kind):
    df = pd.read_csv(os.path.join(REF, "data", "nlme_orthodont.csv"))
    m = interlace.fit("distance ~ age * Sex", df, weights=interlace.VarIdent("Sex"))
    got = m.residuals(kind, level="marginal", scaled=kind == "pearson")
    close(got, ref("orthodont_gls_varident")[f"level0_{kind}"], 1e-4, 1e-5)


def test_bad_arguments(sleep):
    with pytest.raises(InterlaceError, match="unknown residual type 'studentised'"):
        sleep.residuals("studentised")
    with pytest.raises(InterlaceError, match="level must be"):
        sleep.residuals(level="population")
    with pytest.raises(InterlaceError, match="conditional hat values"):
        sleep.residuals("standardized", level="marginal")

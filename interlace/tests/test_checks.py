"""``check_model`` / ``result.check()``: verdicts, and their figures against R.

Overdispersion figures (Bolker's ``overdisp_fun``) and VIFs (``car::vif``) come from
``reference/influence/*_checks.json`` and ``cake_vif.json`` (``make_influence_reference.R``),
computed on tight R fits: GLMM figures to 1e-3 relative, the LMM's VIFs to 1e-4.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import interlace
from interlace.diagnostics import CheckReport, check_model, overdispersion, vif
from interlace.tests.conftest import case_data, load_case


def _fit(case: str):
    d = load_case("influence", case)
    py = d["python"]
    data = case_data(d)
    for col in py.get("factors") or []:
        data[col] = data[col].astype(str)
    if py.get("family"):
        return d, interlace.glmer(py["formula"], data, family=py["family"], random=py["random"])
    return d, interlace.fit(py["formula"], data, random=py["random"])


@pytest.fixture(scope="module")
def grouse():
    return _fit("grouseticks_checks")


@pytest.fixture(scope="module")
def cbpp():
    return _fit("cbpp_checks")


@pytest.fixture(scope="module")
def cake():
    return _fit("cake_vif")


@pytest.fixture(scope="module")
def sleep():
    return interlace.fit("Reaction ~ Days", interlace.datasets.load("sleepstudy"), random="(Days | Subject)")


# ----------------------------------------------------------------------------- figures against R
@pytest.mark.parametrize("case", ["grouse", "cbpp"])
def test_overdispersion_figures(case, request):
    d, res = request.getfixturevalue(case)
    ref = d["overdispersion"]
    got = overdispersion(res)
    assert got["rdf"] == ref["rdf"] == ref["nobs"] - ref["npar"]
    np.testing.assert_allclose(got["chisq"], ref["chisq"], rtol=1e-3)
    np.testing.assert_allclose(got["ratio"], ref["ratio"], rtol=1e-3)
    np.testing.assert_allclose(got["p_value"], ref["p"], rtol=1e-3)


@pytest.mark.parametrize("case,rtol", [("grouse", 1e-3), ("cake", 1e-4)])
def test_vif_is_cars(case, rtol, request):
    d, res = request.getfixturevalue(case)
    ref = d["vif"]
    table = vif(res)
    assert list(table.index) == ref["terms"]
    assert list(table.columns) == ["GVIF", "Df", "GVIF^(1/(2*Df))"]
    np.testing.assert_allclose(table["GVIF"], ref["gvif"], rtol=rtol)
    np.testing.assert_array_equal(table["Df"], ref["df"])
    np.testing.assert_allclose(table["GVIF^(1/(2*Df))"], ref["gvif_adj"], rtol=rtol)


def test_vif_of_one_column_terms_is_the_diagonal_of_the_inverse_correlation():
    """With one column per term, VIF_j = (R⁻¹)_jj (the textbook definition)."""
    data = load_case("influence", "sleepstudy_subject")
    df = case_data(data)
    rng = np.random.default_rng(1)
    df["x1"] = rng.standard_normal(len(df))
    df["x2"] = df["x1"] + 0.5 * rng.standard_normal(len(df))
    res = interlace.fit("Reaction ~ Days + x1 + x2", df, random="(1 | Subject)")
    V = res.cov_fe.to_numpy()[1:, 1:]
    R = V / np.sqrt(np.outer(np.diag(V), np.diag(V)))
    np.testing.assert_allclose(vif(res)["GVIF"], np.diag(np.linalg.inv(R)), rtol=1e-10)


# ----------------------------------------------------------------------------- verdicts
def test_overdispersed_poisson_warns(grouse):
    d, res = grouse
    report = res.check()
    assert isinstance(report, CheckReport)
    item = report["overdispersion"]
    assert item.status == "warning" and "glmer_nb" in item.advice
    assert item.figures["ratio"] == pytest.approx(d["overdispersion"]["ratio"], rel=1e-3)
    assert report["collinearity"].status == "ok"
    assert not report.ok and report.warnings == [item]


def test_binomial_with_trials(cbpp):
    _, res = cbpp
    report = check_model(res)
    assert [i.name for i in report.items] == ["singular fit", "convergence", "overdispersion"]
    assert report.ok
    assert report.skipped == {"collinearity": "fewer than two fixed-effect terms besides the intercept"}


def test_bernoulli_response_skips_overdispersion():
    cb = interlace.datasets.load("cbpp")
    rows = [(h, str(p), int(k < i)) for h, i, s, p in zip(cb["herd"], cb["incidence"], cb["size"], cb["period"])
            for k in range(s)]
    long = pd.DataFrame(rows, columns=["herd", "period", "y"])
    res = interlace.glmer("y ~ period", long, family="binomial", random="(1 | herd)")
    report = res.check()
    assert "overdispersion" in report.skipped and "binary" in report.skipped["overdispersion"]


def test_collinear_interaction_warns(cake):
    d, res = cake
    report = res.check()
    item = report["collinearity"]
    assert item.status == "warning"
    assert "recipe:temp" in item.message and "recipe," in item.message
    assert item.figures["gvif"]["recipe"] == pytest.approx(d["vif"]["gvif"][0], rel=1e-4)
    assert res.check(vif_threshold=20)["collinearity"].status == "ok"
    assert report.skipped["overdispersion"].startswith("a linear mixed model")


def test_singular_fit_warns():
    dy = interlace.datasets.load("dyestuff2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = interlace.fit("Yield ~ 1", dy, random="(1 | Batch)")
    report = res.check()
    item = report["singular fit"]
    assert item.status == "warning" and item.figures["terms_at_boundary"] == ["Batch"]
    assert item.figures["smallest_bounded_theta"] < 1e-4
    assert report["convergence"].status == "ok"  # the singular message is not a convergence failure


def test_unconverged_fit_warns(sleep):
    data = interlace.datasets.load("sleepstudy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = interlace.fit("Reaction ~ Days", data, random="(Days | Subject)", maxiter=8)
    item = res.check()["convergence"]
    assert item.status == "warning" and not item.figures["optimizer_converged"]
    assert item.figures["evaluations"] <= 8 and "optimizer" in item.advice


def test_clean_fit_and_report_text(sleep):
    report = sleep.check()
    assert report.ok and [i.status for i in report.items] == ["ok", "ok"]
    text = str(report)
    assert text.startswith("Model checks: Reaction ~ Days (LMM, REML, n = 180)")
    assert "OK       singular fit" in text and "SKIPPED  overdispersion" in text
    assert list(report.to_frame().columns) == ["status", "message", "advice"]
    with pytest.raises(KeyError, match="checks"):
        report["normality"]
    assert repr(report) == text

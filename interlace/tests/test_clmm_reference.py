"""ordinal::clmm reference cases (``reference/clmm/*.json``, made by ``make_clmm_reference.R``).

Tolerances (issue: ordinal outcomes): coefficients, thresholds and variance components
1e-3 relative; log-likelihood 1e-3 absolute; SEs 1e-3 relative; conditional modes 1e-3.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import interlace
from interlace.tests.conftest import case_data, case_names, load_case

CASES = case_names("clmm")
RTOL = 1e-3


def _fit(d: dict, engine: str):
    py = d["python"]
    data = case_data(d)
    resp = py["formula"].split("~")[0].strip()
    data[resp] = data[resp].astype(str)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return interlace.clmm(py["formula"], data, random=py["random"], link=py["link"],
                              threshold=py["threshold"], nAGQ=py["nAGQ"], levels=py["levels"], engine=engine)


@pytest.fixture(scope="module", params=[(c, e) for c in CASES for e in ("blocked", "cholmod")],
                ids=lambda p: "-".join(p))
def fitted(request):
    case, engine = request.param
    if engine == "cholmod" and not interlace.linalg.HAVE_CHOLMOD:
        pytest.skip("no CHOLMOD")
    d = load_case("clmm", case)
    return d, _fit(d, engine)


def test_thresholds_and_coefficients(fitted):
    d, res = fitted
    np.testing.assert_allclose(res.threshold_params.to_numpy(), d["alpha"]["values"], rtol=RTOL, atol=1e-6)
    np.testing.assert_allclose(res.thresholds.to_numpy(), d["thresholds"]["values"], rtol=RTOL, atol=1e-6)
    np.testing.assert_allclose(res.fe_params.to_numpy(), d["beta"]["values"], rtol=RTOL, atol=1e-6)
    np.testing.assert_allclose(np.asarray(res.bse), d["se"], rtol=RTOL)


def test_likelihood_and_variance(fitted):
    d, res = fitted
    assert abs(res.llf - d["loglik"]) < 1e-3
    assert res.df_modelwc == d["df"]
    assert abs(res.aic - d["aic"]) < 2e-3
    for row in d["variance_components"]:
        np.testing.assert_allclose(res.variance_components[row["grp"]], row["vcov"], rtol=RTOL, atol=1e-8)
    np.testing.assert_allclose(res.cond_H, d["condHess"], rtol=1e-2)


def test_conditional_modes(fitted):
    d, res = fitted
    for g, block in d["ranef"].items():
        ours = res.random_effects[g]
        idx = {str(v): i for i, v in enumerate(ours.index)}
        rows = [idx[str(lv)] for lv in block["levels"]]
        vals = np.asarray(block["values"], float).ravel()
        np.testing.assert_allclose(ours.to_numpy()[rows], vals, rtol=RTOL, atol=1e-4)
        np.testing.assert_allclose(res.random_effects_condsd[g].to_numpy()[rows],
                                   np.asarray(block["condsd"], float).ravel(), rtol=RTOL, atol=1e-5)


def test_predict(fitted):
    d, res = fitted
    p = d["predict"]
    nd = pd.DataFrame(p["newdata"])
    np.testing.assert_allclose(res.predict(nd, type="linear", include_re=False).to_numpy(),
                               p["linear_predictor"], rtol=RTOL, atol=1e-5)
    np.testing.assert_allclose(res.predict(nd, include_re=False).to_numpy(), np.asarray(p["probs"]),
                               rtol=RTOL, atol=1e-5)
    np.testing.assert_allclose(res.predict(nd).to_numpy(), np.asarray(p["probs_with_re"]), rtol=RTOL, atol=1e-5)
    np.testing.assert_allclose(res.fittedvalues.to_numpy()[:10], d["fitted_first10"], rtol=RTOL, atol=1e-5)

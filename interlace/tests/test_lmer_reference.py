"""Every lme4 reference case (``reference/lmer/*.json``, made by ``make_lmer_reference.R``).

Tolerances (issue: the LMM core): fixed effects, SEs, variance components and
BLUPs 1e-4 relative; log-likelihood / REML criterion 1e-4 absolute;
predictions 1e-6 (relative to the response scale).
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import interlace
from interlace.tests.conftest import case_data, case_names, load_case

CASES = case_names("lmer")
RTOL = 1e-4


def _our_name(r_name: str) -> str:
    return "Intercept" if r_name == "(Intercept)" else r_name


def _match_group(r_grp: str, ours: dict) -> str:
    """Our grouping-factor key for an lme4 group name: the same name (nested factors inside out,
    ``c:(b:a)``), but one key for lme4's ``g`` and ``g.1`` (the terms of ``(x || g)``)."""
    base = r_grp if r_grp in ours else r_grp.split(".")[0]
    assert base in ours, (r_grp, list(ours))
    return base


def _coef_key(r_coef: str, names) -> str:
    c = _our_name(r_coef)
    if c in names:
        return c
    for n in names:  # factor columns: lme4 "fB" vs patsy "f[B]"
        if n.replace("[", "").replace("]", "").replace("T.", "") == c:
            return n
    raise KeyError(r_coef)


# every case on both engines with the default optimizer ("auto": L-BFGS-B with the analytic gradient)
# and with BOBYQA, and with Py-BOBYQA on the blocked engine
COMBOS = ([(c, e, o) for c in CASES for e in ("blocked", "cholmod") for o in ("auto", "bobyqa")]
          + [(c, "blocked", "pybobyqa") for c in CASES])


@pytest.fixture(scope="module", params=COMBOS, ids=lambda p: "-".join(p))
def fitted(request):
    case, engine, optimizer = request.param
    if engine == "cholmod" and not interlace.linalg.HAVE_CHOLMOD:
        pytest.skip("no CHOLMOD")
    d = load_case("lmer", case)
    py = d["python"]
    data = case_data(d)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = interlace.fit(py["formula"], data, random=py["random"], method=py["method"],
                            weights=py["weights"], offset=py["offset"], engine=engine, optimizer=optimizer)
    return d, res


def test_fixed_effects(fitted):
    d, res = fitted
    np.testing.assert_allclose(res.fe_params.to_numpy(), d["fixef"]["values"], rtol=RTOL, atol=1e-8)
    np.testing.assert_allclose(res.fe_bse.to_numpy(), d["se"], rtol=RTOL)
    np.testing.assert_allclose(res.cov_fe.to_numpy(), np.array(d["vcov"]), rtol=RTOL, atol=1e-10)


def test_likelihood(fitted):
    d, res = fitted
    assert abs(res.llf - d["loglik"]) < 1e-4
    assert abs(res.objective - d["objective"]) < 1e-4
    assert abs(res.aic - d["aic"]) < 1e-4
    assert abs(res.bic - d["bic"]) < 1e-4
    assert res.df_modelwc == d["df"]
    assert res.nobs == d["nobs"]
    if d["reml_criterion"] is not None:
        assert abs(res.reml_criterion - d["reml_criterion"]) < 1e-4


def test_variance_components(fitted):
    d, res = fitted
    covs = res.random_effects_cov
    np.testing.assert_allclose(res.sigma, d["sigma"], rtol=RTOL)
    for row in d["varcorr"]:
        if row["grp"] == "Residual":
            np.testing.assert_allclose(res.scale, row["vcov"], rtol=RTOL)
            continue
        C = covs[_match_group(row["grp"], covs)]
        i = _coef_key(row["var1"], C.index)
        j = i if row["var2"] is None else _coef_key(row["var2"], C.index)
        # a correlation estimated at exactly +-1 or a variance at 0 is compared absolutely
        np.testing.assert_allclose(C.loc[i, j], row["vcov"], rtol=RTOL, atol=1e-6 * res.scale)


def test_groups_and_singularity(fitted):
    d, res = fitted
    ng = res.ngroups
    for g, n in d["ngroups"].items():
        assert ng[_match_group(g, ng)] == n
    assert res.is_singular == d["is_singular"]
    assert res.n_dropped == d["na_dropped"]


def test_blups(fitted):
    d, res = fitted
    ours = res.random_effects
    scale = max(1.0, res.sigma)
    for g, block in d["ranef"].items():
        k = _match_group(g, ours)
        ob = ours[k]
        ob = ob.to_frame() if ob.ndim == 1 else ob
        idx = {str(v): i for i, v in enumerate(ob.index)}
        rows = [idx[lv] for lv in block["levels"]]  # lme4's level labels (a:A for cask a of batch A)
        assert len(rows) == len(ob)
        for coef, vals in block["columns"].items():
            col = ob.columns[0] if ob.shape[1] == 1 else _coef_key(coef, ob.columns)
            np.testing.assert_allclose(ob[col].to_numpy()[rows], vals, rtol=RTOL, atol=1e-6 * scale)


def test_conditional_sds(fitted):
    """lme4's ranef(m, condVar = TRUE): sqrt of the postVar diagonals."""
    d, res = fitted
    ours = res.random_effects_condsd
    # a singular fit's degenerate direction has conditional SD ∝ the θ on the boundary: lme4's is
    # exactly 0, ours a θ of ~1e-6 left by the optimizer (quickstart_slopes: 1.4e-6 σ)
    atol = (5e-6 if res.is_singular else 1e-6) * res.sigma
    for g, block in d["ranef"].items():
        k = _match_group(g, ours)
        ob = ours[k]
        ob = ob.to_frame() if ob.ndim == 1 else ob
        idx = {str(v): i for i, v in enumerate(ob.index)}
        rows = [idx[lv] for lv in block["levels"]]
        for coef, vals in block["condsd"].items():
            col = ob.columns[0] if ob.shape[1] == 1 else _coef_key(coef, ob.columns)
            np.testing.assert_allclose(ob[col].to_numpy()[rows], vals, rtol=RTOL, atol=atol)


def test_fitted_and_predict(fitted):
    d, res = fitted
    scale = np.max(np.abs(d["fitted"]))
    np.testing.assert_allclose(res.fittedvalues.to_numpy(), d["fitted"], rtol=0, atol=1e-6 * scale)
    import pandas as pd

    nd = pd.DataFrame(d["predict"]["newdata"])
    np.testing.assert_allclose(res.predict(nd).to_numpy(), d["predict"]["with_re"], rtol=0, atol=1e-6 * scale)
    np.testing.assert_allclose(res.predict(nd, include_re=False).to_numpy(), d["predict"]["fixed_only"],
                               rtol=0, atol=1e-6 * scale)
